//! Both planes end to end on loopback, over a real Cluster on SQLite:
//! snapshot, increments with their `cv`, progress, unsubscribe, re-subscribe
//! with a new epoch, gap recovery, a faulted query, and the limits.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rindle_core::protocol::{Op, ServerMessage, to_frame};
use rindle_core::{Ast, QueryId, Value, row};
use rindle_replica::cluster::ClusterOptions;
use rindle_transport::{Client, ClientEvent, FrameFilter, Limits, connect_quic_raw};
use serde_json::json;
use support::{Env, Frames, issues_query};
use tokio_tungstenite::tungstenite::Message;

async fn next(c: &mut Client) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(10), c.next_event())
        .await
        .expect("an event within 10 s")
        .expect("the client is open")
}

/// The next event that is not progress.
async fn next_data(c: &mut Client) -> ClientEvent {
    loop {
        match next(c).await {
            ClientEvent::Progress { .. } => continue,
            e => return e,
        }
    }
}

fn keys(c: &Client, qid: u64, table: &str) -> Vec<i64> {
    let r = c.replica(qid).unwrap();
    r.rows(table)
        .map(|rows| {
            rows.map(|row| match &row[0] {
                Value::Int(i) => *i,
                v => panic!("{v:?}"),
            })
            .collect()
        })
        .unwrap_or_default()
}

async fn lifecycle(quic: bool) {
    let env = Env::start(Limits::default(), None, ClusterOptions::new(2)).await;
    env.lease("L1", &issues_query());
    let mut c = env.client(quic).await;
    c.init("client-a").await.unwrap();
    c.subscribe(1, "L1").await.unwrap();
    // Snapshot: the open issue and its comment; the closed issue's is not
    // part of the footprint.
    assert_eq!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 1, cv: 2 }
    );
    assert_eq!(c.epoch(1), Some(1));
    assert_eq!(keys(&c, 1, "issue"), [1]);
    assert_eq!(keys(&c, 1, "comment"), [10]);

    // An increment, stamped with the transaction's cv, and progress. On
    // WebSocket progress follows the data; on QUIC it travels on the control
    // stream and may overtake the subscription's stream.
    let cv = env.write(vec![("comment", row![11, 1, "me too"])]).await;
    let mut batch = None;
    let mut progress = false;
    while batch.is_none() || !progress {
        match next(&mut c).await {
            ClientEvent::Progress { cv_min } if cv_min >= cv => {
                assert!(quic || batch.is_some(), "progress before its data");
                progress = true;
            }
            ClientEvent::Progress { .. } => {}
            e => batch = Some(e),
        }
    }
    assert_eq!(
        batch.unwrap(),
        ClientEvent::Batch {
            query_id: 1,
            ops: vec![Op::Add {
                table: "comment".into(),
                row: row![11, 1, "me too"]
            }],
            cv,
        }
    );
    // A write outside the footprint sends nothing; the next one continues.
    env.write(vec![("comment", row![21, 2, "closed issue"])])
        .await;
    let cv = env.write(vec![("issue", row![3, "new", true])]).await;
    assert_eq!(
        next_data(&mut c).await,
        ClientEvent::Batch {
            query_id: 1,
            ops: vec![Op::Add {
                table: "issue".into(),
                row: row![3, "new", true]
            }],
            cv,
        }
    );
    assert_eq!(c.cv(1), Some(cv));

    // Unsubscribe: nothing more for query 1. A second subscription (another
    // query id, same lease) is the probe that later writes were delivered.
    c.unsubscribe(1).await.unwrap();
    c.subscribe(2, "L1").await.unwrap();
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 2, .. }
    ));
    let cv = env.write(vec![("comment", row![12, 3, "first"])]).await;
    match next_data(&mut c).await {
        ClientEvent::Batch {
            query_id: 2,
            cv: got,
            ..
        } => assert_eq!(got, cv),
        e => panic!("expected query 2's batch, got {e:?}"),
    }
    assert!(c.replica(1).is_none());

    // Re-subscribe query id 2 on the same connection: a new epoch, a fresh
    // snapshot with everything so far.
    c.subscribe(2, "L1").await.unwrap();
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 2, .. }
    ));
    assert_eq!(c.epoch(2), Some(2));
    assert_eq!(keys(&c, 2, "issue"), [1, 3]);
    assert_eq!(keys(&c, 2, "comment"), [10, 11, 12]);
    let cv = env.write(vec![("comment", row![13, 1, "again"])]).await;
    match next_data(&mut c).await {
        ClientEvent::Batch {
            query_id: 2,
            cv: got,
            ..
        } => assert_eq!(got, cv),
        e => panic!("expected a batch of the new epoch, got {e:?}"),
    }
    assert_eq!(keys(&c, 2, "comment"), [10, 11, 12, 13]);

    // A bad lease: a queryError, not retryable; the connection goes on.
    c.subscribe(3, "nope").await.unwrap();
    match next_data(&mut c).await {
        ClientEvent::QueryError(q) => {
            assert_eq!(
                (q.query_id, q.code.as_deref(), q.retryable),
                (3, Some("lease"), Some(false))
            );
        }
        e => panic!("expected a queryError, got {e:?}"),
    }
    let cv = env
        .write(vec![("comment", row![14, 1, "still here"])])
        .await;
    assert!(
        matches!(next_data(&mut c).await, ClientEvent::Batch { query_id: 2, cv: got, .. } if got == cv)
    );
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_snapshot_increments_unsubscribe_and_resubscribe() {
    lifecycle(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_snapshot_increments_unsubscribe_and_resubscribe() {
    lifecycle(true).await;
}

async fn gap_recovery(quic: bool) {
    // Loses query 7's batch with seq 2, once.
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let filter: FrameFilter = Arc::new(move |m: &ServerMessage| {
        matches!(m, ServerMessage::NBatch(b) if b.query_id == 7 && b.batch.seq == 2)
            && !d.swap(true, Ordering::SeqCst)
    });
    let env = Env::start(Limits::default(), Some(filter), ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let mut c = env.client(quic).await;
    c.init("client-gap").await.unwrap();
    c.subscribe(7, "L").await.unwrap();
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 7, .. }
    ));
    for id in 30..33 {
        env.write(vec![("comment", row![id, 1, "x"])]).await;
    }
    // seq 1 applies; seq 2 is lost; seq 3 is a gap: the client re-subscribes
    // and a fresh snapshot of the new epoch brings everything.
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Batch { query_id: 7, .. }
    ));
    match next_data(&mut c).await {
        ClientEvent::Resubscribing {
            query_id: 7,
            reason,
        } => {
            assert!(reason.contains("expected seq 2, got 3"), "{reason}")
        }
        e => panic!("expected a re-subscribe, got {e:?}"),
    }
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 7, .. }
    ));
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(c.epoch(7), Some(2));
    assert_eq!(keys(&c, 7, "comment"), [10, 30, 31, 32]);
    let cv = env.write(vec![("comment", row![33, 1, "after"])]).await;
    assert!(
        matches!(next_data(&mut c).await, ClientEvent::Batch { query_id: 7, cv: got, .. } if got == cv)
    );
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_gap_recovery_resubscribes() {
    gap_recovery(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_gap_recovery_resubscribes() {
    gap_recovery(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulted_query_gets_a_retryable_error_and_rebuilds_on_resubscribe() {
    // The footprint query (the first materialization, id 1) panics at cv 4.
    let mut options = ClusterOptions::new(2);
    options.fault_injector = Some(Arc::new(|q: QueryId, cv| q == QueryId(1) && cv == 4));
    let env = Env::start(Limits::default(), None, options).await;
    env.lease("L", &issues_query());
    let other: Ast = serde_json::from_value(json!({"table": "issue"})).unwrap();
    env.lease("all", &other);
    let mut c = env.client(false).await;
    c.init("c").await.unwrap();
    c.subscribe(1, "L").await.unwrap();
    c.subscribe(2, "all").await.unwrap();
    for _ in 0..2 {
        assert!(matches!(
            next_data(&mut c).await,
            ClientEvent::Snapshot { .. }
        ));
    }
    env.write(vec![("comment", row![40, 1, "x"])]).await; // cv 3
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Batch { query_id: 1, .. }
    ));
    env.write(vec![("issue", row![4, "boom", true])]).await; // cv 4: query 1 faults
    let mut faulted = false;
    let mut other_batch = false;
    while !(faulted && other_batch) {
        match next_data(&mut c).await {
            ClientEvent::QueryError(q) => {
                assert_eq!(
                    (q.query_id, q.code.as_deref(), q.retryable),
                    (1, Some("faulted"), Some(true))
                );
                faulted = true;
            }
            ClientEvent::Batch { query_id: 2, .. } => other_batch = true,
            e => panic!("unexpected {e:?}"),
        }
    }
    // Subscribing again rebuilds the query from the current data.
    c.subscribe(1, "L").await.unwrap();
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 1, .. }
    ));
    assert_eq!(keys(&c, 1, "issue"), [1, 4]);
    assert_eq!(keys(&c, 1, "comment"), [10, 40]);
    let _ = env.stop.send(true);
}

/// A raw WebSocket connection speaking JSON by hand.
async fn raw_ws(
    url: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn recv_json<S>(ws: &mut S) -> Option<serde_json::Value>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame")
        {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_bad_input_gets_errors_then_a_close_and_spares_other_connections() {
    let mut limits = Limits::default();
    limits.max_frame_bytes = 1024;
    limits.max_errors = 5;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    // A well-behaved client on another connection.
    let mut good = env.client(false).await;
    good.init("good").await.unwrap();
    good.subscribe(1, "L").await.unwrap();
    assert!(matches!(
        next_data(&mut good).await,
        ClientEvent::Snapshot { .. }
    ));

    let mut ws = raw_ws(&env.ws).await;
    let cases: [(Message, &str); 5] = [
        (
            Message::text(r#"{"t":"subscribe","queryId":1,"leaseToken":"L","mode":"normalized"}"#),
            "init",
        ),
        (Message::text("{not json"), "malformed"),
        (Message::text(r#"{"t":"teleport"}"#), "unknown message type"),
        (
            Message::text(format!(
                r#"{{"t":"init","clientID":"{}"}}"#,
                "x".repeat(2000)
            )),
            "limit",
        ),
        (Message::binary(vec![1u8, 2, 3]), "binary"),
    ];
    for (i, (frame, needle)) in cases.into_iter().enumerate() {
        ws.send(frame).await.unwrap();
        let reply = recv_json(&mut ws).await.expect("an error frame");
        assert_eq!(reply["t"], "error", "{reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(message.contains(needle), "case {i}: {message}");
    }
    // The fifth error closed the connection.
    assert_eq!(recv_json(&mut ws).await, None);

    // A frame past the hard cap is not read: an error, then the close.
    let mut ws = raw_ws(&env.ws).await;
    let _ = ws.send(Message::text("x".repeat(8 * 1024))).await;
    let reply = recv_json(&mut ws).await.expect("an error frame");
    assert_eq!(reply["t"], "error", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("limit"),
        "{reply}"
    );
    assert_eq!(recv_json(&mut ws).await, None);

    // The good client never noticed.
    let cv = env.write(vec![("comment", row![50, 1, "ok"])]).await;
    assert!(matches!(next_data(&mut good).await, ClientEvent::Batch { cv: got, .. } if got == cv));
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_subscriptions_get_an_error_and_a_close_on_both_planes() {
    let mut limits = Limits::default();
    limits.max_subscriptions = 2;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    for quic in [false, true] {
        let mut c = env.client(quic).await;
        c.init("greedy").await.unwrap();
        for q in 1..=3 {
            c.subscribe(q, "L").await.unwrap();
        }
        // Two snapshots and the error (in that order on WebSocket; on QUIC
        // the control stream's error may come first), then the close.
        let (mut snapshots, mut errors) = (0, 0);
        loop {
            match next(&mut c).await {
                ClientEvent::Snapshot { .. } => snapshots += 1,
                ClientEvent::Error(e) => {
                    assert!(e.message.contains("subscriptions"), "{}", e.message);
                    assert!(quic || snapshots == 2);
                    errors += 1;
                }
                ClientEvent::Closed => break,
                e => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!((snapshots, errors), (2, 1), "quic: {quic}");
    }
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_bad_input_gets_errors_and_oversized_frames_close() {
    let mut limits = Limits::default();
    limits.max_frame_bytes = 1024;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    // A wrong pin is refused in the handshake.
    let wrong = "00".repeat(32);
    assert!(connect_quic_raw(env.quic, &wrong).await.is_err());

    let conn = connect_quic_raw(env.quic, &env.pin).await.unwrap();
    let (mut tx, mut rx) = conn.open_bi().await.unwrap();
    let mut frames = Frames::default();
    // Before init.
    let sub =
        rindle_core::protocol::ClientMessage::Unsubscribe(rindle_core::protocol::Unsubscribe {
            query_id: 1,
        });
    tx.write_all(&to_frame(&sub).unwrap()).await.unwrap();
    assert!(
        matches!(frames.next(&mut rx).await, Some(ServerMessage::Error(e)) if e.message.contains("init"))
    );
    // Malformed postcard.
    tx.write_all(&[3, 0xff, 0xff, 0xff]).await.unwrap();
    assert!(
        matches!(frames.next(&mut rx).await, Some(ServerMessage::Error(e)) if e.message.contains("malformed"))
    );
    // An oversized length prefix: an error, then the connection closes.
    let mut big = Vec::new();
    rindle_core::protocol::write_varint(1 << 20, &mut big);
    tx.write_all(&big).await.unwrap();
    assert!(
        matches!(frames.next(&mut rx).await, Some(ServerMessage::Error(e)) if e.message.contains("limit"))
    );
    assert!(frames.next(&mut rx).await.is_none());
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections_cleanly() {
    let env = Env::start(Limits::default(), None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let mut c = env.client(false).await;
    c.init("c").await.unwrap();
    c.subscribe(1, "L").await.unwrap();
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { .. }
    ));
    assert_eq!(
        env.plane.ws_counters().connections.load(Ordering::Relaxed),
        1
    );
    env.stop.send(true).unwrap();
    assert_eq!(next(&mut c).await, ClientEvent::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_is_closed_on_both_planes_and_others_keep_working() {
    let mut limits = Limits::default();
    limits.messages_per_second = 1;
    limits.message_burst = 4;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let mut good = env.client(true).await;
    good.init("good").await.unwrap();
    good.subscribe(1, "L").await.unwrap();
    assert!(matches!(
        next_data(&mut good).await,
        ClientEvent::Snapshot { .. }
    ));
    for quic in [false, true] {
        let mut c = env.client(quic).await;
        c.init("flood").await.unwrap();
        for _ in 0..10 {
            // Unsubscribing nothing is harmless, but it is a message.
            c.unsubscribe(99).await.unwrap();
        }
        let mut closed_for_rate = false;
        loop {
            match next(&mut c).await {
                ClientEvent::Error(e) if e.message.contains("per second") => closed_for_rate = true,
                ClientEvent::Error(_) => {}
                ClientEvent::Closed => break,
                e => panic!("unexpected {e:?}"),
            }
        }
        assert!(closed_for_rate, "quic: {quic}");
    }
    let cv = env
        .write(vec![("comment", row![60, 1, "unaffected"])])
        .await;
    assert!(matches!(next_data(&mut good).await, ClientEvent::Batch { cv: got, .. } if got == cv));
    let _ = env.stop.send(true);
}
