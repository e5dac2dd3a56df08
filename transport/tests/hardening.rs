//! The public planes against an attacker on loopback: oversized and
//! malformed WebSocket frames get an `error` and a close frame saying why;
//! connections that never upgrade, never finish their QUIC handshake or never
//! send a first message are closed after their timeouts; an IP address over
//! its connection cap is refused while its other connections keep working;
//! and each refusal and timeout is counted on the plane's counters.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rindle_core::protocol::ServerMessage;
use rindle_core::row;
use rindle_replica::cluster::ClusterOptions;
use rindle_transport::{ALPN, Client, ClientEvent, Limits, connect_quic_raw};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{Value, json};
use support::{Env, Frames, issues_query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

/// The short timeouts the tests configure.
const SHORT: Duration = Duration::from_millis(200);

async fn within<F: IntoFuture>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what} within {BOUND:?}"))
}

/// Waits until `counter` has reached `at_least`.
async fn counted(counter: &AtomicU64, at_least: u64, what: &str) {
    within(what, async {
        while counter.load(Ordering::Relaxed) < at_least {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

type RawWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn raw_ws(url: &str) -> RawWs {
    within(
        "a websocket connection",
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("the upgrade succeeds")
    .0
}

/// How a connection ended, as a raw WebSocket client saw it.
#[derive(Debug)]
struct Ended {
    /// The `error` messages' texts, in order.
    errors: Vec<String>,
    /// The close frame's code; `None` when the connection ended without one.
    code: Option<CloseCode>,
    /// The close frame's reason.
    reason: String,
}

/// Reads until the connection ends.
async fn until_close<S, E>(ws: &mut S) -> Ended
where
    S: StreamExt<Item = Result<Message, E>> + Unpin,
{
    let mut errors = Vec::new();
    loop {
        match within("the next frame", ws.next()).await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON from the server");
                if v["t"] == "error" {
                    errors.push(v["message"].as_str().unwrap_or_default().to_owned());
                }
            }
            Some(Ok(Message::Close(Some(f)))) => {
                return Ended {
                    errors,
                    code: Some(f.code),
                    reason: f.reason.to_string(),
                };
            }
            Some(Ok(Message::Close(None))) | Some(Err(_)) | None => {
                return Ended {
                    errors,
                    code: None,
                    reason: String::new(),
                };
            }
            Some(Ok(_)) => {}
        }
    }
}

/// The next JSON message that is not progress.
async fn next_json(ws: &mut RawWs) -> Value {
    loop {
        match within("the next frame", ws.next()).await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON from the server");
                if v["t"] != "progress" {
                    return v;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Subscribes a raw WebSocket client to lease `L` as query 1 and reads the
/// snapshot.
async fn raw_subscribe(ws: &mut RawWs, client_id: &str) {
    let init = json!({"t": "init", "clientID": client_id}).to_string();
    let sub = json!({"t": "subscribe", "queryId": 1, "leaseToken": "L", "mode": "normalized"});
    within("sending init", ws.send(Message::text(init)))
        .await
        .unwrap();
    within("sending subscribe", ws.send(Message::text(sub.to_string())))
        .await
        .unwrap();
    assert_eq!(next_json(ws).await["t"], "nhello");
    let snapshot = next_json(ws).await;
    assert_eq!(
        (&snapshot["t"], &snapshot["batch"]["seq"]),
        (&json!("nbatch"), &json!(0))
    );
}

async fn next(c: &mut Client) -> ClientEvent {
    within("a client event", c.next_event())
        .await
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

/// A client subscribed to lease `L` as query 1, its snapshot read.
async fn subscribed(env: &Env, quic: bool, client_id: &str) -> Client {
    let mut c = env.client(quic).await;
    c.init(client_id).await.unwrap();
    c.subscribe(1, "L").await.unwrap();
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 1, .. }
    ));
    c
}

/// A TCP connection upgraded to WebSocket by hand, so the test can write
/// frames no WebSocket library would.
async fn upgraded_by_hand(addr: SocketAddr) -> TcpStream {
    let mut tcp = within("a TCP connection", TcpStream::connect(addr))
        .await
        .unwrap();
    let request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    within("sending the upgrade", tcp.write_all(request.as_bytes()))
        .await
        .unwrap();
    // Byte by byte: nothing past the response's head may be consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = within("the upgrade response", tcp.read(&mut byte))
            .await
            .unwrap();
        assert_eq!(n, 1, "the server hung up during the upgrade");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

/// The (opcode, payload) of each whole frame in `bytes`, as a server sends
/// them (unmasked).
fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, head) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if bytes.len() < head + len {
            break;
        }
        frames.push((opcode, bytes[head..head + len].to_vec()));
        bytes = &bytes[head + len..];
    }
    frames
}

/// Reads until the server closes `tcp`; what it sent before that.
async fn closed_by_server(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within("the server closing the connection", tcp.read(&mut buf)).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_a_huge_frame_gets_an_error_and_close_1009_and_spares_others() {
    let env = Env::start(Limits::default(), None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let mut good = subscribed(&env, false, "good").await;

    // 300 KiB: past the 256 KiB the default 64 KiB limit reads at most.
    let mut ws = raw_ws(&env.ws).await;
    let _ = within(
        "sending 300 KiB",
        ws.send(Message::text("x".repeat(300 * 1024))),
    )
    .await;
    let ended = until_close(&mut ws).await;
    assert_eq!(ended.code, Some(CloseCode::Size), "{ended:?}");
    assert!(!ended.reason.is_empty(), "{ended:?}");
    assert!(
        ended.errors.iter().any(|e| e.contains("limit")),
        "{ended:?}"
    );

    // The same by hand, to see the TCP connection end: after the error and
    // the close frame, a clean end of stream — not a reset, which on a real
    // network can destroy the close frame before the client reads it.
    let mut tcp = upgraded_by_hand(env.ws_addr()).await;
    let len = 300 * 1024u64;
    let mut frame = vec![0x81, 0xff];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]); // a zero mask
    frame.resize(frame.len() + len as usize, b'x');
    let _ = within("sending 300 KiB", tcp.write_all(&frame)).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match within("the server closing the connection", tcp.read(&mut buf)).await {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    let frames = server_frames(&got);
    let opcodes: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
    assert_eq!(opcodes, [0x1, 0x8], "an error, then the close");
    assert_eq!(frames[1].1[..2], 1009u16.to_be_bytes());
    assert!(end.is_ok(), "the connection was reset: {end:?}");

    // Over the limit but within what is read: an error, and when that uses
    // up the error budget, the close says the frame was too big.
    let mut limits = Limits::default();
    limits.max_frame_bytes = 1024;
    limits.max_errors = 1;
    let small = Env::start(limits, None, ClusterOptions::new(1)).await;
    let mut ws = raw_ws(&small.ws).await;
    within("sending 2 KiB", ws.send(Message::text("x".repeat(2048))))
        .await
        .unwrap();
    let ended = until_close(&mut ws).await;
    assert_eq!(ended.code, Some(CloseCode::Size), "{ended:?}");
    assert_eq!(ended.errors.len(), 1, "{ended:?}");
    let _ = small.stop.send(true);

    // The good client never noticed.
    let cv = env.write(vec![("comment", row![70, 1, "ok"])]).await;
    assert!(matches!(next_data(&mut good).await, ClientEvent::Batch { cv: got, .. } if got == cv));
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_protocol_violations_get_an_error_and_a_close_with_a_reason() {
    let env = Env::start(Limits::default(), None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let mut good = subscribed(&env, false, "good").await;

    // An unmasked client frame (RFC 6455 §5.1): 1002, protocol error.
    let mut tcp = upgraded_by_hand(env.ws_addr()).await;
    within(
        "an unmasked frame",
        tcp.write_all(&[0x81, 0x05, b'h', b'e', b'l', b'l', b'o']),
    )
    .await
    .unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    let ended = until_close(&mut ws).await;
    assert_eq!(ended.code, Some(CloseCode::Protocol), "{ended:?}");
    assert!(!ended.reason.is_empty(), "{ended:?}");
    assert_eq!(ended.errors.len(), 1, "{ended:?}");

    // A text frame that is not UTF-8 (masked with a zero key): 1007.
    let mut tcp = upgraded_by_hand(env.ws_addr()).await;
    within(
        "a text frame that is not UTF-8",
        tcp.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe]),
    )
    .await
    .unwrap();
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    let ended = until_close(&mut ws).await;
    assert_eq!(ended.code, Some(CloseCode::Invalid), "{ended:?}");
    assert_eq!(ended.errors.len(), 1, "{ended:?}");

    let cv = env.write(vec![("comment", row![71, 1, "ok"])]).await;
    assert!(matches!(next_data(&mut good).await, ClientEvent::Batch { cv: got, .. } if got == cv));
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_that_never_upgrade_are_closed_after_the_handshake_timeout() {
    let mut limits = Limits::default();
    limits.handshake_timeout = SHORT;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let counters = env.plane.ws_counters();

    // TCP only: not a byte sent.
    let started = Instant::now();
    let mut silent = within("a TCP connection", TcpStream::connect(env.ws_addr()))
        .await
        .unwrap();
    assert!(closed_by_server(&mut silent).await.is_empty());
    assert!(started.elapsed() >= SHORT / 2, "{:?}", started.elapsed());
    counted(&counters.handshake_timeouts, 1, "a handshake timeout").await;

    // Half a request, the rest never sent (slowloris).
    let mut slow = within("a TCP connection", TcpStream::connect(env.ws_addr()))
        .await
        .unwrap();
    within(
        "half a request",
        slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
    )
    .await
    .unwrap();
    closed_by_server(&mut slow).await;
    counted(
        &counters.handshake_timeouts,
        2,
        "a second handshake timeout",
    )
    .await;

    // An upgraded connection outlives the handshake timeout.
    let mut c = env.client(false).await;
    c.init("patient").await.unwrap();
    tokio::time::sleep(SHORT * 2).await;
    c.subscribe(1, "L").await.unwrap();
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 1, .. }
    ));
    assert_eq!(counters.handshake_timeouts.load(Ordering::Relaxed), 2);
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_an_upgraded_connection_that_sends_nothing_gets_an_error_then_a_close() {
    let mut limits = Limits::default();
    limits.first_message_timeout = SHORT;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let counters = env.plane.ws_counters();

    // A ping is not a first message.
    let started = Instant::now();
    let mut ws = raw_ws(&env.ws).await;
    within("a ping", ws.send(Message::Ping(vec![1u8].into())))
        .await
        .unwrap();
    let ended = until_close(&mut ws).await;
    assert!(started.elapsed() >= SHORT / 2, "{:?}", started.elapsed());
    assert_eq!(ended.code, Some(CloseCode::Policy), "{ended:?}");
    assert_eq!(ended.errors.len(), 1, "{ended:?}");
    assert!(ended.errors[0].contains("init"), "{ended:?}");
    counted(&counters.idle_timeouts, 1, "an idle timeout").await;

    // A client that sent init in time stays open past the timeout.
    let mut c = env.client(false).await;
    c.init("prompt").await.unwrap();
    tokio::time::sleep(SHORT * 2).await;
    c.subscribe(1, "L").await.unwrap();
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 1, .. }
    ));
    assert_eq!(counters.idle_timeouts.load(Ordering::Relaxed), 1);
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_a_third_connection_from_one_ip_is_refused_over_a_cap_of_two() {
    let mut limits = Limits::default();
    limits.max_connections_per_ip = 2;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let counters = env.plane.ws_counters();
    let mut first = raw_ws(&env.ws).await;
    raw_subscribe(&mut first, "first").await;
    let mut second = raw_ws(&env.ws).await;
    raw_subscribe(&mut second, "second").await;

    let third = within(
        "the third connection's answer",
        tokio_tungstenite::connect_async(&env.ws),
    )
    .await;
    assert!(
        third.is_err(),
        "a third connection from 127.0.0.1 was upgraded"
    );
    assert_eq!(counters.refused.load(Ordering::Relaxed), 1);

    // The first two still work.
    let cv = env.write(vec![("comment", row![72, 1, "ok"])]).await;
    for ws in [&mut first, &mut second] {
        let batch = next_json(ws).await;
        assert_eq!(batch["t"], "nbatch", "{batch}");
        assert_eq!(batch["batch"]["cv"], cv, "{batch}");
    }

    // Once one closes, its slot is free again.
    within("closing the first", first.close(None))
        .await
        .unwrap();
    let _ = until_close(&mut first).await;
    let mut again = within("a connection in the freed slot", async {
        loop {
            match tokio_tungstenite::connect_async(&env.ws).await {
                Ok((ws, _)) => break ws,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    raw_subscribe(&mut again, "again").await;
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_a_third_connection_from_one_ip_is_refused_over_a_cap_of_two() {
    let mut limits = Limits::default();
    limits.max_connections_per_ip = 2;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let counters = env.plane.quic_counters();
    let mut first = subscribed(&env, true, "first").await;
    let second = within("a QUIC connection", connect_quic_raw(env.quic, &env.pin))
        .await
        .unwrap();

    let third = within(
        "the third connection's answer",
        connect_quic_raw(env.quic, &env.pin),
    )
    .await;
    assert!(
        third.is_err(),
        "a third connection from 127.0.0.1 was accepted"
    );
    assert_eq!(counters.refused.load(Ordering::Relaxed), 1);

    // The first still works.
    let cv = env.write(vec![("comment", row![73, 1, "ok"])]).await;
    assert!(matches!(next_data(&mut first).await, ClientEvent::Batch { cv: got, .. } if got == cv));

    // Once the second closes, its slot is free again.
    second.close(0u32.into(), b"done");
    let again = within("a connection in the freed slot", async {
        loop {
            match connect_quic_raw(env.quic, &env.pin).await {
                Ok(conn) => break conn,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    again.close(0u32.into(), b"done");
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_a_connection_without_a_first_message_is_closed_after_the_idle_timeout() {
    let mut limits = Limits::default();
    limits.first_message_timeout = SHORT;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let counters = env.plane.quic_counters();

    // No control stream at all: closed, saying why.
    let started = Instant::now();
    let conn = within("a QUIC connection", connect_quic_raw(env.quic, &env.pin))
        .await
        .unwrap();
    match within("the server closing", conn.closed()).await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert!(
                String::from_utf8_lossy(&close.reason).contains("idle"),
                "{close:?}"
            );
        }
        e => panic!("expected the server to close the connection, got {e:?}"),
    }
    assert!(started.elapsed() >= SHORT / 2, "{:?}", started.elapsed());
    counted(&counters.idle_timeouts, 1, "an idle timeout").await;

    // A control stream with half a length prefix: an error, then the close.
    let conn = within("a QUIC connection", connect_quic_raw(env.quic, &env.pin))
        .await
        .unwrap();
    let (mut tx, mut rx) = within("a control stream", conn.open_bi()).await.unwrap();
    within("half a length prefix", tx.write_all(&[0x80]))
        .await
        .unwrap();
    let mut frames = Frames::default();
    match frames.next(&mut rx).await {
        Some(ServerMessage::Error(e)) => assert!(e.message.contains("init"), "{}", e.message),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(frames.next(&mut rx).await.is_none());
    within("the server closing", conn.closed()).await;
    counted(&counters.idle_timeouts, 2, "a second idle timeout").await;

    // A client that sent init in time stays open past the timeout.
    let mut c = env.client(true).await;
    c.init("prompt").await.unwrap();
    tokio::time::sleep(SHORT * 2).await;
    c.subscribe(1, "L").await.unwrap();
    assert!(matches!(
        next_data(&mut c).await,
        ClientEvent::Snapshot { query_id: 1, .. }
    ));
    assert_eq!(counters.idle_timeouts.load(Ordering::Relaxed), 2);
    let _ = env.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_a_stalled_handshake_is_closed_after_the_handshake_timeout() {
    let mut limits = Limits::default();
    limits.handshake_timeout = SHORT;
    let env = Env::start(limits, None, ClusterOptions::new(1)).await;
    env.lease("L", &issues_query());
    let counters = env.plane.quic_counters();

    // A client that takes 1.5 s to check the server's certificate: the
    // server never gets its Finished within the timeout.
    let addr = env.quic;
    let stalled = tokio::task::spawn_blocking(move || stalled_handshake(addr, SHORT * 15));
    counted(&counters.handshake_timeouts, 1, "a handshake timeout").await;
    let closed = within("the stalled client", stalled).await.unwrap();
    assert!(closed, "the stalled connection was kept open");

    // Handshakes that do not stall are unaffected.
    let mut c = subscribed(&env, true, "prompt").await;
    let cv = env.write(vec![("comment", row![74, 1, "ok"])]).await;
    assert!(matches!(next_data(&mut c).await, ClientEvent::Batch { cv: got, .. } if got == cv));
    assert_eq!(counters.handshake_timeouts.load(Ordering::Relaxed), 1);
    let _ = env.stop.send(true);
}

/// Connects to `addr` from a runtime of its own, whose certificate check
/// blocks for `stall`; whether the server closed the connection (the client
/// may see its own half of the handshake complete before it learns that).
fn stalled_handshake(addr: SocketAddr, stall: Duration) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Stalling { stall, provider }))
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let connecting = endpoint.connect(addr, "localhost").unwrap();
        let closed = match within("the stalled handshake's end", connecting).await {
            Err(_) => true,
            Ok(conn) => tokio::time::timeout(BOUND, conn.closed()).await.is_ok(),
        };
        endpoint.close(0u32.into(), b"done");
        closed
    })
}

/// Accepts any certificate, slowly.
#[derive(Debug)]
struct Stalling {
    stall: Duration,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Stalling {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        std::thread::sleep(self.stall);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
