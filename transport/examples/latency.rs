//! Commit-to-client latency on loopback, per plane: a Cluster on SQLite (2
//! workers) with an issue tracker, one WebSocket and one QUIC subscriber to
//! "open issues with their comments", then `N` single-comment transactions;
//! for each, the time from the start of the write to the batch arriving at
//! each client (both subscribed, so both run every time).
//!
//! `cargo run --release -p rindle-transport --example latency [-- N]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rindle_core::row;
use rindle_replica::cluster::ClusterOptions;
use rindle_transport::{Client, ClientEvent, Limits};
use support::{Env, issues_query};

async fn batch_arrives(c: &mut Client, cv: u64) -> Instant {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), c.next_event())
            .await
            .expect("an event")
            .expect("open");
        if let ClientEvent::Batch { cv: got, .. } = ev
            && got == cv
        {
            return Instant::now();
        }
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: i64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let env = Env::start(Limits::default(), None, ClusterOptions::new(2)).await;
    env.lease("L", &issues_query());
    let mut ws = env.client(false).await;
    let mut quic = env.client(true).await;
    for c in [&mut ws, &mut quic] {
        c.init("bench").await.unwrap();
        c.subscribe(1, "L").await.unwrap();
        while !matches!(c.next_event().await, Some(ClientEvent::Snapshot { .. })) {}
    }
    let (mut w, mut q) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        let cv = env
            .write(vec![("comment", row![1000 + i, 1, "bench"])])
            .await;
        let (tw, tq) = tokio::join!(batch_arrives(&mut ws, cv), batch_arrives(&mut quic, cv));
        w.push(tw - t0);
        q.push(tq - t0);
    }
    let total = started.elapsed();
    let report = |name: &str, v: &mut Vec<Duration>| {
        let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
        eprintln!("{name:>9}: p50 {p50:>9.2?}  p99 {p99:>9.2?}");
    };
    eprintln!(
        "{n} transactions in {total:.2?} ({:.0} tx/s, each waited for by both clients)",
        n as f64 / total.as_secs_f64()
    );
    report("websocket", &mut w);
    report("quic", &mut q);
    let _ = env.stop.send(true);
}
