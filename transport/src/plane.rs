//! What every public plane shares: the feeds, the limits, the boot id, the
//! shutdown signal and the counters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rindle_core::protocol::ServerMessage;
use tokio::sync::watch;

use crate::feeds::Feeds;

/// Bounds on what one connection may do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Largest client frame accepted (bytes); a larger one gets an `error`.
    /// WebSocket frames past four times this close the connection at once.
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
        }
    }
}

/// Drops matching outgoing frames before they are sent: fault injection for
/// tests of gap recovery (a real deployment sets none).
pub type FrameFilter = Arc<dyn Fn(&ServerMessage) -> bool + Send + Sync>;

/// Frames and bytes a plane has sent, and connections it has open.
#[derive(Debug, Default)]
pub struct PlaneCounters {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Frames sent.
    pub frames: AtomicU64,
    /// Bytes sent (frame payloads).
    pub bytes: AtomicU64,
}

impl PlaneCounters {
    pub(crate) fn sent(&self, bytes: usize) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
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
