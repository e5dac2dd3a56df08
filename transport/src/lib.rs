//! The normalized subscription protocol (PROTOCOL.md) over WebSocket and QUIC.
//!
//! - [`Plane`]: what the public planes share — the [`Feeds`] that resolve
//!   leases and deliver row operations, the [`Limits`], the boot id;
//! - [`serve_ws`] / [`ws_router`]: JSON text frames over WebSocket (axum);
//! - [`serve_quic`] / [`quic_endpoint`]: postcard frames over QUIC (quinn +
//!   rustls, ALPN `rindle/1`), a stream per subscription, certificates from
//!   PEM files or generated ([`TlsIdentity`]);
//! - [`Hub`]: normalized subscriptions over a [`rindle_replica::cluster::Cluster`]
//!   — one footprint query and fold per materialization, fanned out;
//! - [`Client`]: either plane from Rust, frames validated by core's
//!   subscriber, table copies kept current, gaps recovered by re-subscribing.
//!
//! The protocol's state machines live in `rindle_core::protocol`; this crate
//! only carries them.

mod client;
mod error;
mod feeds;
mod hub;
mod plane;
mod quic;
mod session;
mod tls;
mod ws;

pub use client::{Client, ClientEvent, connect_quic_raw};
pub use error::TransportError;
pub use feeds::{
    AttachRequest, Attached, Delivery, Detach, Feeds, Refusal, SendOutcome, Sink, SubKey,
};
pub use hub::{Hub, HubError, HubStats, MatId};
pub use plane::{FrameFilter, Limits, Plane, PlaneBuilder, PlaneCounters};
pub use quic::{ALPN, quic_endpoint, serve_quic};
pub use tls::{TlsIdentity, cert_sha256_hex};
pub use ws::{serve_ws, ws_router};
