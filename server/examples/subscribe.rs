//! Subscribes to a materialization over the WebSocket plane and prints every
//! event, with the subscription's table copies after each one.
//!
//! `cargo run -p rindle-server --example subscribe -- ws://127.0.0.1:7601/ <leaseToken>`

use std::io::Write;

use rindle_transport::{Client, ClientEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: subscribe <ws-url> <leaseToken>")?;
    let lease = args
        .next()
        .ok_or("usage: subscribe <ws-url> <leaseToken>")?;
    let mut client = Client::connect_ws(&url).await?;
    client.init("example-subscriber").await?;
    client.subscribe(1, &lease).await?;
    while let Some(event) = client.next_event().await {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{event:?}")?;
        if matches!(
            event,
            ClientEvent::Snapshot { .. } | ClientEvent::Batch { .. }
        ) && let Some(replica) = client.replica(1)
        {
            for table in replica.tables() {
                let rows = replica.rows(&table.name).map_or(0, |r| r.count());
                writeln!(out, "  {}: {rows} rows", table.name)?;
            }
        }
        if event == ClientEvent::Closed {
            break;
        }
    }
    Ok(())
}
