//! The WebSocket plane: one protocol message per JSON text frame.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;
use rindle_core::protocol::ServerMessage;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::feeds::{ShedBox, Sink};
use crate::plane::{Plane, shut};
use crate::session::{Out, Session};

/// A router answering WebSocket upgrades on `/` (and any path) with the
/// protocol; mount it in an axum app or serve it with [`serve_ws`].
pub fn ws_router(plane: Plane) -> Router {
    Router::new()
        .route("/", any(upgrade))
        .fallback(upgrade)
        .with_state(plane)
}

/// Serves the WebSocket plane on `listener` until the plane shuts down.
pub async fn serve_ws(listener: TcpListener, plane: Plane) -> std::io::Result<()> {
    let mut stop = plane.shutdown();
    // Batches are small writes that must leave at once: without TCP_NODELAY,
    // Nagle's algorithm met the client's delayed ACK and held one now and
    // then for ~40 ms (seen by the daemon benchmark).
    let listener = axum::serve::ListenerExt::tap_io(listener, |s| {
        let _ = s.set_nodelay(true);
    });
    axum::serve(listener, ws_router(plane))
        .with_graceful_shutdown(async move { shut(&mut stop).await })
        .await
}

async fn upgrade(State(plane): State<Plane>, ws: WebSocketUpgrade) -> Response {
    let hard_cap = plane.limits().max_frame_bytes.saturating_mul(4);
    ws.max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .on_upgrade(move |socket| connection(socket, plane))
}

async fn connection(mut socket: WebSocket, plane: Plane) {
    let conn = plane.next_conn();
    let counters = plane.ws_counters();
    counters.connections.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(plane.limits().queue.max(1));
    let shed = Arc::new(ShedBox::default());
    let mut session = Session::new(plane.clone(), Sink::new(conn, tx, shed.clone()));
    let mut stop = plane.shutdown();
    tracing::debug!(conn, "websocket connection open");
    let mut close = None;
    loop {
        let outs = tokio::select! {
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(text))) => session.on_text(text.as_str()),
                Some(Ok(Message::Binary(bytes))) => session.abuse(
                    format!("a {}-byte binary frame; the protocol uses JSON text frames", bytes.len()),
                    None,
                ),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(conn, error = %e, "websocket read failed");
                    break;
                }
            },
            Some(d) = rx.recv() => session.on_delivery(d),
            () = shed.notify.notified() => {
                let keys = shed.keys.lock().map(|mut k| std::mem::take(&mut *k)).unwrap_or_default();
                session.on_shed(keys)
            }
            () = shut(&mut stop) => {
                close = Some((1001, "server shutting down"));
                Vec::new()
            }
        };
        if send_all(&mut socket, &plane, outs).await.is_err() {
            break;
        }
        if session.closing() {
            close = Some((1008, "protocol limits exceeded"));
        }
        if let Some((code, reason)) = close {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
            break;
        }
    }
    counters.connections.fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(
        conn,
        subscriptions = session.subscriptions(),
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
