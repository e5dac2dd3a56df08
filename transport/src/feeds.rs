//! What a transport needs from whatever maintains the queries: attach a
//! subscriber by lease, then receive its deliveries on the connection's
//! channel.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rindle_core::protocol::{Op, TableShape};
use tokio::sync::{Notify, mpsc};

/// Identifies one attachment (one subscribe of one query id on one
/// connection); unique for the process's life.
pub type SubKey = u64;

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_key() -> SubKey {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// Something for a connection to send.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Delivery {
    /// One transaction's row operations for an attachment.
    Batch {
        /// The attachment.
        key: SubKey,
        /// The operations (never empty).
        ops: Arc<[Op]>,
        /// The transaction's commit version.
        cv: u64,
    },
    /// The attachment's query faulted; it is detached.
    Faulted {
        /// The attachment.
        key: SubKey,
        /// Why.
        message: String,
    },
    /// The attachment was ended by the feed (its materialization removed).
    Ended {
        /// The attachment.
        key: SubKey,
        /// Why.
        message: String,
    },
    /// Every data frame up to `cv` has been delivered to this connection.
    Progress {
        /// The commit version.
        cv: u64,
    },
}

/// The result of [`Sink::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued for the connection.
    Sent,
    /// The connection's queue is full: it is not keeping up.
    Full,
    /// The connection is gone.
    Closed,
}

#[derive(Debug, Default)]
pub(crate) struct ShedBox {
    pub(crate) keys: Mutex<Vec<(SubKey, u64)>>,
    pub(crate) notify: Notify,
}

/// A connection's delivery channel, handed to the feed at attach time.
#[derive(Clone, Debug)]
pub struct Sink {
    conn: u64,
    tx: mpsc::Sender<Delivery>,
    shed: Arc<ShedBox>,
}

impl Sink {
    pub(crate) fn new(conn: u64, tx: mpsc::Sender<Delivery>, shed: Arc<ShedBox>) -> Sink {
        Sink { conn, tx, shed }
    }

    /// The connection's id (unique for the process's life).
    pub fn conn(&self) -> u64 {
        self.conn
    }

    /// Queues a delivery without waiting.
    pub fn send(&self, d: Delivery) -> SendOutcome {
        match self.tx.try_send(d) {
            Ok(()) => SendOutcome::Sent,
            Err(mpsc::error::TrySendError::Full(_)) => SendOutcome::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => SendOutcome::Closed,
        }
    }

    /// Tells the connection its attachment `key` was dropped because it fell
    /// behind (the subscriber gets a retryable `shed` error). Works when the
    /// queue is full.
    pub fn shed(&self, key: SubKey, retry_after_ms: u64) {
        if let Ok(mut keys) = self.shed.keys.lock() {
            keys.push((key, retry_after_ms));
        }
        self.shed.notify.notify_one();
    }
}

/// A subscribe request.
#[derive(Debug)]
pub struct AttachRequest<'a> {
    /// The connection's `init` client id.
    pub client_id: &'a str,
    /// The lease token presented.
    pub lease_token: &'a str,
    /// The attachment's key: every delivery for it carries this.
    pub key: SubKey,
    /// Where deliveries go.
    pub sink: Sink,
}

/// An accepted subscribe: the footprint's tables, its rows now, and a guard
/// that detaches when dropped.
pub struct Attached {
    /// Every base table the query touches.
    pub tables: Vec<TableShape>,
    /// The snapshot: the footprint's rows as adds.
    pub snapshot: Vec<Op>,
    /// The commit version the snapshot reflects; every later delivery for
    /// the attachment has a higher one.
    pub cv: u64,
    /// Detaches on drop.
    pub guard: Detach,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("tables", &self.tables)
            .field("snapshot", &self.snapshot.len())
            .field("cv", &self.cv)
            .finish_non_exhaustive()
    }
}

/// Runs its action once, when dropped.
pub struct Detach(Option<Box<dyn FnOnce() + Send>>);

impl Detach {
    /// A guard running `f` on drop.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Detach {
        Detach(Some(Box::new(f)))
    }

    /// A guard that does nothing.
    pub fn none() -> Detach {
        Detach(None)
    }
}

impl Drop for Detach {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// A refused subscribe, sent to the client as `queryError`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What went wrong.
    pub message: String,
    /// A machine-readable code (`lease`, `faulted`, `shed`, …).
    pub code: Option<String>,
    /// Whether subscribing again may succeed.
    pub retryable: bool,
    /// How long to wait first.
    pub retry_after_ms: Option<u64>,
}

impl Refusal {
    /// A bad or expired lease: not retryable.
    pub fn lease(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            code: Some("lease".into()),
            retryable: false,
            retry_after_ms: None,
        }
    }
}

/// The source of subscriptions a transport serves: resolves a lease and
/// attaches the connection's sink to the materialization behind it.
pub trait Feeds: Send + Sync + 'static {
    /// Attaches a subscriber, or refuses it.
    fn attach(&self, req: AttachRequest<'_>) -> Result<Attached, Refusal>;
}
