//! What every public plane shares: the feeds, the limits, the boot id, the
//! shutdown signal and the counters.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rindle_core::protocol::ServerMessage;
use tokio::sync::watch;

use crate::feeds::Feeds;

/// Bounds on what one connection may do, and on how many connections one
/// address may hold open.
///
/// Build it from [`Limits::default`] and change the fields you need (the
/// struct is `#[non_exhaustive]`, so new limits can be added with a default):
///
/// ```
/// # use std::time::Duration;
/// let mut limits = rindle_transport::Limits::default();
/// limits.handshake_timeout = Duration::from_secs(5);
/// limits.max_connections_per_ip = 16;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Largest client frame accepted (bytes); a larger one gets an `error`
    /// and counts as a protocol error. A WebSocket frame or message past four
    /// times this is not read at all: it gets an `error` and the connection
    /// is closed with code 1009 (message too big). Default 64 KiB.
    pub max_frame_bytes: usize,
    /// Subscriptions per connection; one more gets an `error` and a close.
    pub max_subscriptions: usize,
    /// Protocol errors (malformed, unknown, before `init`, oversized) before
    /// the connection is closed.
    pub max_errors: u32,
    /// Sustained client messages per second; past the burst the connection
    /// gets an `error` and is closed.
    pub messages_per_second: u32,
    /// Messages allowed at once before the rate applies.
    pub message_burst: u32,
    /// Deliveries queued per connection before its subscriptions are shed.
    pub queue: usize,
    /// The `retryAfterMs` a shed subscription is told.
    pub shed_retry_after_ms: u64,
    /// How long a new connection may take to become a protocol connection:
    /// from the TCP accept to a completed WebSocket upgrade (with
    /// [`serve_ws`](crate::serve_ws)), or from the first QUIC packet to a
    /// completed QUIC handshake. Past it the connection is closed without a
    /// message and counted in [`PlaneCounters::handshake_timeouts`].
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// How long an open connection may go without sending `init` or
    /// `subscribe`; past it the connection gets an `error` and is closed
    /// (WebSocket close code 1008), counted in
    /// [`PlaneCounters::idle_timeouts`]. Default 30 s.
    pub first_message_timeout: Duration,
    /// Connections one IP address may have open at once on each plane
    /// (handshakes in progress included). One more is refused at once — a
    /// WebSocket connection gets an HTTP 503 and is closed, a QUIC connection
    /// attempt is refused — and counted in [`PlaneCounters::refused`]. With
    /// [`serve_ws`](crate::serve_ws) and [`serve_quic`](crate::serve_quic)
    /// only; a [`ws_router`](crate::ws_router) mounted elsewhere is bounded
    /// by its server. Default 64.
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_bytes: 64 * 1024,
            max_subscriptions: 256,
            max_errors: 8,
            messages_per_second: 100,
            message_burst: 200,
            queue: 4096,
            shed_retry_after_ms: 1000,
            handshake_timeout: Duration::from_secs(10),
            first_message_timeout: Duration::from_secs(30),
            max_connections_per_ip: 64,
        }
    }
}

/// Drops matching outgoing frames before they are sent: fault injection for
/// tests of gap recovery (a real deployment sets none).
pub type FrameFilter = Arc<dyn Fn(&ServerMessage) -> bool + Send + Sync>;

/// Frames and bytes a plane has sent, connections it has open, and
/// connections it refused or timed out. Every field only grows, except
/// `connections`.
#[derive(Debug, Default)]
pub struct PlaneCounters {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Frames sent.
    pub frames: AtomicU64,
    /// Bytes sent (frame payloads).
    pub bytes: AtomicU64,
    /// Connections refused because their IP address already had
    /// [`Limits::max_connections_per_ip`] open.
    pub refused: AtomicU64,
    /// Connections closed because their WebSocket upgrade or QUIC handshake
    /// did not complete within [`Limits::handshake_timeout`].
    pub handshake_timeouts: AtomicU64,
    /// Connections closed because no `init` or `subscribe` came within
    /// [`Limits::first_message_timeout`].
    pub idle_timeouts: AtomicU64,
    /// Accepts that failed (for example out of file descriptors), each
    /// followed by a back-off; WebSocket plane only.
    pub accept_errors: AtomicU64,
}

impl PlaneCounters {
    pub(crate) fn sent(&self, bytes: usize) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Adds one to `counter` (one of this struct's fields).
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Connections open per IP address on one plane.
#[derive(Debug, Default)]
pub(crate) struct IpTable(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl IpTable {
    /// Counts a connection from `ip` unless `cap` are open already; the
    /// guard uncounts it when dropped.
    pub(crate) fn admit(&self, ip: IpAddr, cap: usize) -> Option<IpGuard> {
        let ip = canonical(ip);
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.get(&ip).copied().unwrap_or(0);
        if n >= cap {
            return None;
        }
        open.insert(ip, n + 1);
        Some(IpGuard {
            table: self.0.clone(),
            ip,
        })
    }

    /// Connections counted for `ip` now.
    #[cfg(test)]
    pub(crate) fn open(&self, ip: IpAddr) -> usize {
        let open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&canonical(ip)).copied().unwrap_or(0)
    }
}

/// An IPv4 address seen through a dual-stack socket counts as itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One counted connection in an [`IpTable`].
#[derive(Debug)]
pub(crate) struct IpGuard {
    table: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut open = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

struct Inner {
    feeds: Arc<dyn Feeds>,
    limits: Limits,
    boot_id: Arc<str>,
    filter: Option<FrameFilter>,
    shutdown: watch::Receiver<bool>,
    ws: PlaneCounters,
    quic: PlaneCounters,
    ws_ips: IpTable,
    quic_ips: IpTable,
    next_conn: AtomicU64,
}

/// The shared state of the public planes; cheap to clone.
#[derive(Clone)]
pub struct Plane(Arc<Inner>);

impl fmt::Debug for Plane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plane")
            .field("boot_id", &self.0.boot_id)
            .field("limits", &self.0.limits)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Plane`].
pub struct PlaneBuilder {
    feeds: Arc<dyn Feeds>,
    limits: Limits,
    boot_id: Arc<str>,
    filter: Option<FrameFilter>,
}

impl PlaneBuilder {
    /// The limits (default: [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> PlaneBuilder {
        self.limits = limits;
        self
    }

    /// Drops outgoing frames `filter` returns true for (fault injection).
    pub fn frame_filter(mut self, filter: FrameFilter) -> PlaneBuilder {
        self.filter = Some(filter);
        self
    }

    /// The plane, and the sender that shuts it down (send `true`): every
    /// connection closes cleanly and the serve loops return.
    pub fn build(self) -> (Plane, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let plane = Plane(Arc::new(Inner {
            feeds: self.feeds,
            limits: self.limits,
            boot_id: self.boot_id,
            filter: self.filter,
            shutdown: rx,
            ws: PlaneCounters::default(),
            quic: PlaneCounters::default(),
            ws_ips: IpTable::default(),
            quic_ips: IpTable::default(),
            next_conn: AtomicU64::new(1),
        }));
        (plane, tx)
    }
}

impl Plane {
    /// Starts building a plane serving `feeds`, announcing `boot_id` in every
    /// `nhello`.
    pub fn builder(feeds: Arc<dyn Feeds>, boot_id: &str) -> PlaneBuilder {
        PlaneBuilder {
            feeds,
            limits: Limits::default(),
            boot_id: Arc::from(boot_id),
            filter: None,
        }
    }

    pub(crate) fn feeds(&self) -> &dyn Feeds {
        &*self.0.feeds
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// The boot id.
    pub fn boot_id(&self) -> &str {
        &self.0.boot_id
    }

    /// The WebSocket plane's counters.
    pub fn ws_counters(&self) -> &PlaneCounters {
        &self.0.ws
    }

    /// The QUIC plane's counters.
    pub fn quic_counters(&self) -> &PlaneCounters {
        &self.0.quic
    }

    /// Open connections per IP address on the WebSocket plane.
    pub(crate) fn ws_ips(&self) -> &IpTable {
        &self.0.ws_ips
    }

    /// Open connections per IP address on the QUIC plane.
    pub(crate) fn quic_ips(&self) -> &IpTable {
        &self.0.quic_ips
    }

    pub(crate) fn keep(&self, msg: &ServerMessage) -> bool {
        self.0.filter.as_ref().is_none_or(|f| !f(msg))
    }

    pub(crate) fn shutdown(&self) -> watch::Receiver<bool> {
        self.0.shutdown.clone()
    }

    pub(crate) fn next_conn(&self) -> u64 {
        self.0.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Resolves when `rx` has seen `true` (or its sender is gone).
pub(crate) async fn shut(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn the_ip_table_caps_counts_and_releases() {
        let table = IpTable::default();
        let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        let b = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let first = table.admit(a, 2).expect("under the cap");
        let second = table.admit(mapped, 2).expect("under the cap");
        assert!(
            table.admit(a, 2).is_none(),
            "the mapped address is the same IP"
        );
        assert!(table.admit(b, 0).is_none(), "a cap of 0 admits nothing");
        let other = table
            .admit(b, 2)
            .expect("another address has its own count");
        assert_eq!(table.open(a), 2);
        drop(first);
        assert_eq!(table.open(a), 1);
        let third = table.admit(a, 2).expect("a slot was released");
        drop((second, third, other));
        assert_eq!((table.open(a), table.open(b)), (0, 0));
        assert!(table.0.lock().unwrap().is_empty(), "no entries left behind");
    }
}
