//! The QUIC plane: ALPN `rindle/1`; one bidirectional control stream per
//! connection (opened by the client) carries `init`, `subscribe`,
//! `unsubscribe`, `error` and `progress`; each subscription's `nhello`,
//! `nbatch` and `queryError` go on a unidirectional stream the server opens
//! for it, each with a writer of its own so a stalled stream delays no other.
//! Every message is postcard bytes behind an unsigned LEB128 length.
//!
//! [`serve_quic`] bounds connections like the WebSocket plane: at most
//! [`Limits::max_connections_per_ip`](crate::Limits) per address (handshakes
//! included; one more is refused), the handshake done within
//! [`Limits::handshake_timeout`](crate::Limits), and `init` or `subscribe`
//! sent within [`Limits::first_message_timeout`](crate::Limits) — without
//! even a control stream by then the connection is closed with the reason
//! `idle timeout`, with one it gets an `error` first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Endpoint, RecvStream, SendStream};
use rindle_core::protocol::{ClientMessage, ServerMessage, read_varint, to_frame};
use tokio::sync::mpsc;

use crate::error::TransportError;
use crate::feeds::{ShedBox, Sink, SubKey};
use crate::plane::{IpGuard, Plane, PlaneCounters, shut};
use crate::session::{Closing, Out, Session};
use crate::tls::TlsIdentity;

/// The ALPN protocol id.
pub const ALPN: &[u8] = b"rindle/1";

/// How long a closing connection waits for its last frames to be read.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Frames a subscription's stream may have queued before it is shed.
const STREAM_QUEUE: usize = 1024;

/// Makes sure rustls has its process-wide crypto provider (ring).
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A QUIC endpoint bound to `addr`, presenting `identity`.
pub fn quic_endpoint(addr: SocketAddr, identity: &TlsIdentity) -> Result<Endpoint, TransportError> {
    install_crypto();
    let mut tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(identity.certs().to_vec(), identity.key())
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| TransportError::Tls(e.to_string()))?;
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    Endpoint::server(config, addr).map_err(|e| TransportError::Bind {
        addr,
        message: e.to_string(),
    })
}

/// Serves the QUIC plane on `endpoint` until the plane shuts down.
///
/// Refusals and timeouts are counted on [`Plane::quic_counters`].
pub async fn serve_quic(endpoint: Endpoint, plane: Plane) {
    let mut stop = plane.shutdown();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let remote = incoming.remote_address();
                let cap = plane.limits().max_connections_per_ip;
                let Some(guard) = plane.quic_ips().admit(remote.ip(), cap) else {
                    PlaneCounters::bump(&plane.quic_counters().refused);
                    tracing::debug!(%remote, cap, "quic connection refused: per-IP cap");
                    incoming.refuse();
                    continue;
                };
                tokio::spawn(handshake(incoming, guard, plane.clone()));
            }
            () = shut(&mut stop) => break,
        }
    }
    endpoint.close(0u32.into(), b"server shutting down");
    endpoint.wait_idle().await;
}

/// What the control stream's reader hands the connection.
enum Incoming {
    Message(ClientMessage),
    Malformed(String),
    Oversized(u64),
}

/// Completes the handshake within the plane's handshake timeout, then serves
/// the connection; the connection counts against its IP address throughout.
async fn handshake(incoming: quinn::Incoming, guard: IpGuard, plane: Plane) {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "quic connection not accepted");
            return;
        }
    };
    match tokio::time::timeout(plane.limits().handshake_timeout, connecting).await {
        Ok(Ok(conn)) => connection(conn, plane).await,
        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "quic handshake failed"),
        Err(_) => {
            // Dropping the handshake closes the connection.
            PlaneCounters::bump(&plane.quic_counters().handshake_timeouts);
            tracing::debug!(%remote, "quic handshake timed out");
        }
    }
    drop(guard);
}

async fn connection(conn: quinn::Connection, plane: Plane) {
    let id = plane.next_conn();
    let counters = plane.quic_counters();
    counters.connections.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(conn = id, remote = %conn.remote_address(), "quic connection open");
    let first = plane.limits().first_message_timeout;
    let deadline = tokio::time::Instant::now() + first;
    match tokio::time::timeout_at(deadline, conn.accept_bi()).await {
        Ok(Ok((control_tx, control_rx))) => {
            run(
                conn.clone(),
                id,
                control_tx,
                control_rx,
                plane.clone(),
                deadline,
            )
            .await;
        }
        Ok(Err(e)) => tracing::debug!(conn = id, error = %e, "no control stream"),
        Err(_) => {
            // No stream to say it on: the close's reason says it.
            PlaneCounters::bump(&counters.idle_timeouts);
            conn.close(0u32.into(), Closing::Idle.reason().as_bytes());
        }
    }
    counters.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(conn = id, "quic connection closed");
}

async fn run(
    conn: quinn::Connection,
    id: u64,
    mut control: SendStream,
    control_rx: RecvStream,
    plane: Plane,
    first_message_by: tokio::time::Instant,
) {
    let (in_tx, mut in_rx) = mpsc::channel(64);
    let max = plane.limits().max_frame_bytes as u64;
    tokio::spawn(read_control(control_rx, in_tx, max));
    let (tx, mut rx) = mpsc::channel(plane.limits().queue.max(1));
    let shed = Arc::new(ShedBox::default());
    let sink = Sink::new(id, tx, shed.clone());
    let mut session = Session::new(plane.clone(), sink.clone());
    let mut streams: HashMap<SubKey, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut writers = tokio::task::JoinSet::new();
    let mut stop = plane.shutdown();
    let idle = tokio::time::sleep_until(first_message_by);
    tokio::pin!(idle);
    let mut reason: Option<&'static [u8]> = None;
    loop {
        let outs = tokio::select! {
            incoming = in_rx.recv() => match incoming {
                Some(Incoming::Message(m)) => session.on_message(m),
                Some(Incoming::Malformed(e)) => session.abuse(format!("malformed message: {e}"), None),
                Some(Incoming::Oversized(len)) => {
                    // The stream cannot be resynchronized past an unread frame.
                    let mut o = session.oversized(len as usize);
                    reason = Some(b"oversized frame");
                    o.truncate(1);
                    o
                }
                None => break,
            },
            Some(d) = rx.recv() => session.on_delivery(d),
            () = shed.notify.notified() => {
                let keys = shed.keys.lock().map(|mut k| std::mem::take(&mut *k)).unwrap_or_default();
                session.on_shed(keys)
            }
            () = &mut idle, if !session.engaged() => {
                PlaneCounters::bump(&plane.quic_counters().idle_timeouts);
                session.idle()
            }
            () = shut(&mut stop) => {
                reason = Some(b"server shutting down");
                Vec::new()
            }
        };
        for out in outs {
            match out {
                Out::Control(msg) => {
                    if let Some(bytes) = encode(&plane, &msg)
                        && control.write_all(&bytes).await.is_err()
                    {
                        reason = Some(b"control stream failed");
                    }
                }
                Out::Sub { key, msg, last } => {
                    let Some(bytes) = encode(&plane, &msg) else {
                        continue;
                    };
                    let writer = match streams.get(&key) {
                        Some(w) => w.clone(),
                        None => {
                            let (wtx, wrx) = mpsc::channel(STREAM_QUEUE);
                            writers.spawn(write_stream(conn.clone(), wrx));
                            streams.insert(key, wtx.clone());
                            wtx
                        }
                    };
                    if writer.try_send(bytes).is_err() {
                        // The client is not reading this stream: shed it.
                        streams.remove(&key);
                        sink.shed(key, plane.limits().shed_retry_after_ms);
                    }
                    if last {
                        // Dropping the sender finishes the stream once its
                        // queue is written.
                        streams.remove(&key);
                    }
                }
                Out::End { key } => {
                    streams.remove(&key);
                }
            }
        }
        // Reap finished stream writers.
        while writers.try_join_next().is_some() {}
        if let Some(why) = session.closing() {
            reason = reason.or(Some(why.reason().as_bytes()));
        }
        if let Some(r) = reason {
            // Let the last frames (the error saying why) reach the client
            // before the connection goes.
            let _ = control.finish();
            drop(streams);
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while writers.join_next().await.is_some() {}
                let _ = control.stopped().await;
            })
            .await;
            conn.close(0u32.into(), r);
            break;
        }
    }
}

fn encode(plane: &Plane, msg: &ServerMessage) -> Option<Vec<u8>> {
    if !plane.keep(msg) {
        return None;
    }
    match to_frame(msg) {
        Ok(bytes) => {
            plane.quic_counters().sent(bytes.len());
            Some(bytes)
        }
        Err(e) => {
            tracing::error!(error = %e, "a server message did not encode");
            None
        }
    }
}

/// One subscription's stream: opened on its first frame, finished when the
/// sender is dropped.
async fn write_stream(conn: quinn::Connection, mut rx: mpsc::Receiver<Vec<u8>>) {
    let Some(first) = rx.recv().await else { return };
    let Ok(mut stream) = conn.open_uni().await else {
        return;
    };
    if stream.write_all(&first).await.is_err() {
        return;
    }
    while let Some(bytes) = rx.recv().await {
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = stream.finish();
    // Until the client has read it all (or the connection goes): a closing
    // connection waits for this so its last frames are not discarded.
    let _ = stream.stopped().await;
}

async fn read_control(mut rx: RecvStream, out: mpsc::Sender<Incoming>, max: u64) {
    let mut reader = FrameReader::new(max);
    loop {
        match reader.next(&mut rx).await {
            Ok(Some(bytes)) => {
                let msg = match rindle_core::protocol::from_compact::<ClientMessage>(&bytes) {
                    Ok(m) => Incoming::Message(m),
                    Err(e) => Incoming::Malformed(e.to_string()),
                };
                if out.send(msg).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(FrameError::Oversized(len)) => {
                let _ = out.send(Incoming::Oversized(len)).await;
                return;
            }
            Err(FrameError::Malformed(e)) => {
                let _ = out.send(Incoming::Malformed(e)).await;
                return;
            }
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    Oversized(u64),
    Malformed(String),
}

/// Reads varint-length-prefixed frames from a QUIC stream.
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    max: u64,
}

impl FrameReader {
    pub(crate) fn new(max: u64) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            max,
        }
    }

    /// The next frame's bytes; `None` at a clean end of stream.
    pub(crate) async fn next(
        &mut self,
        rx: &mut RecvStream,
    ) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            match read_varint(&self.buf) {
                Err(e) => return Err(FrameError::Malformed(e.to_string())),
                Ok(Some((len, used))) => {
                    if len > self.max {
                        return Err(FrameError::Oversized(len));
                    }
                    let end = used + len as usize;
                    if self.buf.len() >= end {
                        let frame = self.buf[used..end].to_vec();
                        self.buf.drain(..end);
                        return Ok(Some(frame));
                    }
                }
                Ok(None) => {}
            }
            let mut chunk = [0u8; 16 * 1024];
            match rx.read(&mut chunk).await {
                Ok(Some(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(None) if self.buf.is_empty() => return Ok(None),
                Ok(None) => {
                    return Err(FrameError::Malformed(
                        "the stream ended inside a frame".into(),
                    ));
                }
                Err(e) => return Err(FrameError::Malformed(e.to_string())),
            }
        }
    }
}
