//! The WebSocket plane: one protocol message per JSON text frame; how
//! connections are bounded and closed is on [`serve_ws`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::any;
use axum::serve::{IncomingStream, Listener};
use axum::{Extension, Router};
use futures_util::SinkExt;
use rindle_core::protocol::ServerMessage;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tokio_tungstenite::tungstenite;

use crate::feeds::{ShedBox, Sink};
use crate::plane::{IpGuard, Limits, Plane, PlaneCounters, shut};
use crate::session::{Closing, Out, Session};

/// How long a connection the server closed keeps reading (and discarding)
/// what its client still sends, so the close frame is not lost to a reset.
const LINGER: Duration = Duration::from_secs(2);

/// At most this much is read and discarded while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// How long the server waits for its close frame (or the echo of the
/// client's) to be written.
const CLOSE_WRITE: Duration = Duration::from_secs(2);

/// What a connection over the per-IP cap is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
content-type: text/plain\r\ncontent-length: 28\r\n\r\ntoo many connections from ip";

/// The largest frame or message read at all, for a plane's limits; a
/// larger one closes the connection with 1009. Between
/// [`Limits::max_frame_bytes`] and this, a frame is read, discarded and
/// answered with an `error`.
fn hard_cap(limits: &Limits) -> usize {
    limits.max_frame_bytes.saturating_mul(4)
}

/// A router answering WebSocket upgrades on `/` (and any path) with the
/// protocol; mount it in an axum app or serve it with [`serve_ws`].
///
/// Mounted elsewhere, the connections are bounded by frame size, message
/// rate, subscriptions and [`Limits::first_message_timeout`]; the handshake
/// timeout, the per-IP cap and lingering closes come with [`serve_ws`].
pub fn ws_router(plane: Plane) -> Router {
    Router::new()
        .route("/", any(upgrade))
        .fallback(upgrade)
        .with_state(plane)
}

/// Serves the WebSocket plane on `listener` until the plane shuts down.
///
/// It accepts the TCP connections itself, so that it can bound them: at
/// most [`Limits::max_connections_per_ip`] open per address (one more gets
/// an HTTP 503 and is closed at once), the upgrade done within
/// [`Limits::handshake_timeout`] (or the connection is closed), and failed
/// accepts (out of file descriptors) retried after a back-off of 50 ms
/// doubling up to 500 ms instead of at once. Every connection, also through
/// a [`ws_router`] mounted elsewhere, must send `init` or `subscribe` within
/// [`Limits::first_message_timeout`]. Refusals, timeouts and failed accepts
/// are counted on [`Plane::ws_counters`].
///
/// A connection the server closes gets a close frame with a code and a
/// reason: 1009 for a frame or message too big to read (past four times
/// [`Limits::max_frame_bytes`]) or for an oversized frame that uses up the
/// error budget, 1002 for a violation of RFC 6455 (an unmasked frame, a bad
/// opcode …) or too many protocol errors, 1007 for a text frame that is not
/// UTF-8, 1008 for the message-rate and subscription limits and the
/// first-message timeout, 1001 when the server shuts down. All but the last
/// are preceded by an `error` message saying what happened. A closing
/// connection then reads and discards what its client is still sending, for
/// up to 2 s, so that the close frame reaches the client instead of being
/// destroyed by the reset that closing a socket with unread data sends.
///
/// With a [`TcpListener`] it does not fail (failed accepts are retried): it
/// resolves `Ok` once the plane has shut down and every connection has
/// closed.
pub async fn serve_ws(listener: TcpListener, plane: Plane) -> io::Result<()> {
    let mut stop = plane.shutdown();
    let listener = Accepting {
        listener,
        plane: plane.clone(),
        backoff: Backoff::default(),
    };
    let app = ws_router(plane).into_make_service_with_connect_info::<WsConn>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shut(&mut stop).await })
        .await
}

/// What the connection's IO and its WebSocket handler share.
#[derive(Debug, Default)]
struct ConnFlags {
    /// The upgrade completed: the handshake deadline no longer applies.
    upgraded: AtomicBool,
    /// The server closed the connection: linger before dropping it.
    linger: AtomicBool,
}

/// The connection's flags, handed to the handler as connect info.
#[derive(Clone, Debug)]
struct WsConn(Arc<ConnFlags>);

impl Connected<IncomingStream<'_, Accepting>> for WsConn {
    fn connect_info(stream: IncomingStream<'_, Accepting>) -> WsConn {
        WsConn(stream.io().flags.clone())
    }
}

/// The listener [`serve_ws`] hands axum: per-IP caps and back-off.
struct Accepting {
    listener: TcpListener,
    plane: Plane,
    backoff: Backoff,
}

impl Listener for Accepting {
    type Io = PlaneIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (PlaneIo, SocketAddr) {
        let counters = self.plane.ws_counters();
        loop {
            let listener = &self.listener;
            let (stream, addr) =
                accept_with_backoff(|| listener.accept(), &mut self.backoff, counters).await;
            // Batches are small writes that must leave at once: without
            // TCP_NODELAY, Nagle's algorithm met the client's delayed ACK and
            // held one now and then for ~40 ms (seen by the daemon benchmark).
            let _ = stream.set_nodelay(true);
            let cap = self.plane.limits().max_connections_per_ip;
            match self.plane.ws_ips().admit(addr.ip(), cap) {
                Some(guard) => return (PlaneIo::new(stream, guard, &self.plane), addr),
                None => {
                    PlaneCounters::bump(&counters.refused);
                    tracing::debug!(%addr, cap, "websocket connection refused: per-IP cap");
                    // Best effort, never waiting: the socket closes now.
                    let _ = stream.try_write(REFUSED);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Exponential back-off between failed accepts.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_millis(500);

    /// The delay before the next attempt: 50 ms, doubling up to 500 ms.
    fn delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Backoff::MAX);
        delay
    }

    fn reset(&mut self) {
        self.next = Backoff::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            next: Backoff::FIRST,
        }
    }
}

/// Accepts with `accept` until it succeeds. An error of the connection
/// being accepted (reset or aborted before it was accepted) is retried at
/// once; any other (EMFILE, ENFILE, ENOBUFS …) is counted and retried after
/// the back-off's delay, so an exhausted process does not spin.
async fn accept_with_backoff<T, F, Fut>(
    mut accept: F,
    backoff: &mut Backoff,
    counters: &PlaneCounters,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = io::Result<T>>,
{
    loop {
        match accept().await {
            Ok(accepted) => {
                backoff.reset();
                return accepted;
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                PlaneCounters::bump(&counters.accept_errors);
                let delay = backoff.delay();
                tracing::warn!(error = %e, delay_ms = delay.as_millis() as u64, "accept failed; backing off");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One accepted TCP connection: counted against its IP address until it is
/// dropped, failing every read and write once the handshake deadline passes
/// without an upgrade (hyper then drops it), and lingering when the server
/// closed it.
struct PlaneIo {
    stream: Option<TcpStream>,
    flags: Arc<ConnFlags>,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
    guard: Option<IpGuard>,
    plane: Plane,
}

impl PlaneIo {
    fn new(stream: TcpStream, guard: IpGuard, plane: &Plane) -> PlaneIo {
        PlaneIo {
            stream: Some(stream),
            flags: Arc::default(),
            deadline: Some(Box::pin(tokio::time::sleep(
                plane.limits().handshake_timeout,
            ))),
            timed_out: false,
            guard: Some(guard),
            plane: plane.clone(),
        }
    }

    /// The stream, or the error every operation gets once the handshake
    /// deadline has passed without an upgrade.
    fn stream(&mut self, cx: &mut Context<'_>) -> io::Result<Pin<&mut TcpStream>> {
        if let Some(deadline) = self.deadline.as_mut() {
            if self.flags.upgraded.load(Ordering::Acquire) {
                self.deadline = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                self.deadline = None;
                self.timed_out = true;
                PlaneCounters::bump(&self.plane.ws_counters().handshake_timeouts);
                tracing::debug!("websocket handshake timed out");
            }
        }
        if self.timed_out {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the websocket upgrade did not complete in time",
            ));
        }
        match self.stream.as_mut() {
            Some(s) => Ok(Pin::new(s)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for PlaneIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream(cx) {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for PlaneIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream(cx) {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream(cx) {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream(cx) {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream(cx) {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for PlaneIo {
    fn drop(&mut self) {
        if !self.flags.linger.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(stream) = self.stream.take() {
            runtime.spawn(linger(stream, self.guard.take()));
        }
    }
}

/// Sends FIN after what was written (the close frame), then reads and
/// discards what the client still sends — until it closes, [`LINGER`] has
/// passed or [`LINGER_BYTES`] were read — so that closing does not reset the
/// connection under the close frame. The connection stays counted against
/// its IP address until then.
async fn linger(mut stream: TcpStream, guard: Option<IpGuard>) {
    let _ = tokio::time::timeout(LINGER, async {
        let _ = stream.shutdown().await;
        let mut buf = [0u8; 8192];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    drop(guard);
}

async fn upgrade(
    State(plane): State<Plane>,
    conn: Option<Extension<ConnectInfo<WsConn>>>,
    ws: WebSocketUpgrade,
) -> Response {
    // tungstenite refuses a frame or message past the hard cap before
    // reading its payload; below it the plane's own limit decides.
    let cap = hard_cap(plane.limits());
    let flags = conn.map(|Extension(ConnectInfo(WsConn(flags)))| flags);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| async move {
            if let Some(flags) = &flags {
                flags.upgraded.store(true, Ordering::Release);
            }
            connection(socket, plane, flags).await;
        })
}

/// Why reading a frame failed, as far as the client is told.
enum ReadFailure {
    /// Tell the client (an `error` message and a close frame).
    Refuse(Vec<Out>),
    /// The connection is gone, or failed below the WebSocket layer.
    Gone,
}

/// Classifies a failed read.
fn read_failure(session: &mut Session, e: axum::Error) -> ReadFailure {
    use tungstenite::error::{Error as WsError, ProtocolError};
    let e = match e.into_inner().downcast::<WsError>() {
        Ok(e) => *e,
        Err(other) => {
            tracing::debug!(error = %other, "websocket read failed");
            return ReadFailure::Gone;
        }
    };
    match e {
        WsError::Capacity(c) => ReadFailure::Refuse(session.unreadable(&c.to_string())),
        WsError::Utf8(detail) => ReadFailure::Refuse(session.violation(
            Closing::InvalidData,
            &format!("a text frame that is not UTF-8: {detail}"),
        )),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => ReadFailure::Gone,
        WsError::Protocol(p) => ReadFailure::Refuse(
            session.violation(Closing::Protocol, &format!("websocket protocol error: {p}")),
        ),
        e => {
            tracing::debug!(error = %e, "websocket read failed");
            ReadFailure::Gone
        }
    }
}

/// The close code for why the session is closing.
fn close_code(why: Closing) -> u16 {
    match why {
        Closing::Policy | Closing::Idle => 1008,
        Closing::TooBig => 1009,
        Closing::Protocol => 1002,
        Closing::InvalidData => 1007,
    }
}

async fn connection(mut socket: WebSocket, plane: Plane, flags: Option<Arc<ConnFlags>>) {
    let conn = plane.next_conn();
    let counters = plane.ws_counters();
    counters.connections.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(plane.limits().queue.max(1));
    let shed = Arc::new(ShedBox::default());
    let mut session = Session::new(plane.clone(), Sink::new(conn, tx, shed.clone()));
    let mut stop = plane.shutdown();
    let idle = tokio::time::sleep(plane.limits().first_message_timeout);
    tokio::pin!(idle);
    tracing::debug!(conn, "websocket connection open");
    let mut close: Option<(u16, &'static str)> = None;
    loop {
        let outs = tokio::select! {
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(text))) => session.on_text(text.as_str()),
                Some(Ok(Message::Binary(bytes))) => session.abuse(
                    format!("a {}-byte binary frame; the protocol uses JSON text frames", bytes.len()),
                    None,
                ),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) => {
                    // Echo the client's close (tungstenite queued it).
                    let _ = tokio::time::timeout(CLOSE_WRITE, socket.flush()).await;
                    break;
                }
                None => break,
                Some(Err(e)) => match read_failure(&mut session, e) {
                    ReadFailure::Refuse(outs) => outs,
                    ReadFailure::Gone => break,
                },
            },
            Some(d) = rx.recv() => session.on_delivery(d),
            () = shed.notify.notified() => {
                let keys = shed.keys.lock().map(|mut k| std::mem::take(&mut *k)).unwrap_or_default();
                session.on_shed(keys)
            }
            () = &mut idle, if !session.engaged() => {
                PlaneCounters::bump(&counters.idle_timeouts);
                session.idle()
            }
            () = shut(&mut stop) => {
                close = Some((1001, "server shutting down"));
                Vec::new()
            }
        };
        if send_all(&mut socket, &plane, outs).await.is_err() {
            break;
        }
        if let Some(why) = session.closing() {
            close = close.or(Some((close_code(why), why.reason())));
        }
        if let Some((code, reason)) = close {
            if let Some(flags) = &flags {
                flags.linger.store(true, Ordering::Release);
            }
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = tokio::time::timeout(CLOSE_WRITE, socket.send(frame)).await;
            break;
        }
    }
    counters.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(
        conn,
        subscriptions = session.subscriptions(),
        close = ?close,
        "websocket connection closed"
    );
}

async fn send_all(socket: &mut WebSocket, plane: &Plane, outs: Vec<Out>) -> Result<(), ()> {
    for out in outs {
        let msg = match out {
            Out::Control(m) | Out::Sub { msg: m, .. } => m,
            Out::End { .. } => continue,
        };
        send(socket, plane, &msg).await?;
    }
    Ok(())
}

async fn send(socket: &mut WebSocket, plane: &Plane, msg: &ServerMessage) -> Result<(), ()> {
    if !plane.keep(msg) {
        return Ok(());
    }
    let text = serde_json::to_string(msg).map_err(|e| {
        tracing::error!(error = %e, "a server message did not encode");
    })?;
    plane.ws_counters().sent(text.len());
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn the_backoff_doubles_from_50_to_500_ms_and_resets() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..6).map(|_| b.delay().as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.delay(), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn failed_accepts_back_off_instead_of_spinning() {
        let counters = PlaneCounters::default();
        let mut backoff = Backoff::default();
        // Three EMFILEs, one connection reset, then a connection.
        let mut calls = 0u32;
        let started = Instant::now();
        let got = accept_with_backoff(
            || {
                calls += 1;
                let result = match calls {
                    1..=3 => Err(io::Error::from_raw_os_error(24)), // EMFILE
                    4 => Err(io::ErrorKind::ConnectionAborted.into()),
                    _ => Ok(calls),
                };
                async move { result }
            },
            &mut backoff,
            &counters,
        )
        .await;
        let elapsed = started.elapsed();
        assert_eq!(got, 5);
        assert_eq!(counters.accept_errors.load(Ordering::Relaxed), 3);
        // 50 + 100 + 200 ms of back-off; the aborted connection none.
        assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        // A success resets the back-off.
        assert_eq!(backoff.delay(), Duration::from_millis(50));
    }
}
