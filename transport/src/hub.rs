//! The hub: normalized subscriptions over a [`Cluster`].
//!
//! Each materialization is one footprint query ([`footprint`]) placed on the
//! cluster, with one [`NormalizeFold`] shared by all its subscribers. A
//! thread reads the cluster's event stream: a query's changes go through its
//! fold once and the resulting operations to every attached connection; when
//! every worker has reported a transaction's progress, each connection that
//! received data for it gets `progress`. A subscriber attaching takes the
//! fold's rows as its snapshot under the same lock, so nothing is missed or
//! sent twice. A connection whose queue is full is shed (it re-subscribes).
//! A faulted query's subscribers get a retryable error; the next attach
//! rebuilds it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;

use rindle_core::protocol::{FootprintError, NormalizeFold, TableShape, footprint};
use rindle_core::{Ast, QueryId, TableSchema};
use rindle_replica::cluster::{Cluster, ClusterBackend, ClusterEvent};

use crate::feeds::{AttachRequest, Attached, Delivery, Detach, Refusal, SendOutcome, Sink, SubKey};

/// Identifies a materialization: the id of its footprint query in the
/// cluster.
pub type MatId = QueryId;

/// Why a query could not be materialized.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubError {
    /// The protocol cannot carry the query.
    Footprint(FootprintError),
    /// The engine refused the query (unknown table or column, unsupported
    /// shape) or the cluster failed.
    Query(String),
    /// No such materialization.
    Unknown(MatId),
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::Footprint(e) => e.fmt(f),
            HubError::Query(m) => f.write_str(m),
            HubError::Unknown(id) => write!(f, "no materialization {}", id.0),
        }
    }
}

impl std::error::Error for HubError {}

enum Phase {
    /// Placed on the cluster; its hydration has not arrived yet.
    Hydrating,
    Live(Box<NormalizeFold>),
    /// Torn down by a fault; the next attach rebuilds it.
    Faulted(String),
    /// The cluster refused it.
    Failed(String),
}

struct Mat {
    /// The canonical JSON of the query as given.
    key: String,
    footprint_query: Ast,
    tables: Vec<TableShape>,
    worker: usize,
    phase: Phase,
    /// The commit version the fold reflects.
    cv: u64,
    subscribers: HashMap<SubKey, Sink>,
    /// Time its worker spent deriving it, and how many transactions.
    derive_time: std::time::Duration,
    derives: u64,
}

#[derive(Default)]
struct State {
    mats: HashMap<MatId, Mat>,
    by_key: HashMap<String, MatId>,
    next: u64,
    /// Per worker: the last transaction it reported complete.
    worker_cv: Vec<u64>,
    /// Connections that got data for a transaction not yet complete on
    /// every worker.
    pending_progress: BTreeMap<u64, HashMap<u64, Sink>>,
}

/// What a hub has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Transactions' result changes folded (one per query per transaction).
    pub derived: u64,
    /// Row operations sent to subscribers (counted once per subscriber).
    pub ops_sent: u64,
    /// Queries torn down by a fault.
    pub faults: u64,
    /// Subscribers shed for falling behind.
    pub shed: u64,
}

struct Inner<B: ClusterBackend> {
    cluster: Arc<Cluster<B>>,
    stats: Mutex<HubStats>,
    state: Mutex<State>,
    changed: Condvar,
    shed_retry_after_ms: u64,
}

/// Normalized subscriptions over a cluster. Cheap to clone.
pub struct Hub<B: ClusterBackend> {
    inner: Arc<Inner<B>>,
    pump: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl<B: ClusterBackend> Clone for Hub<B> {
    fn clone(&self) -> Self {
        Hub {
            inner: self.inner.clone(),
            pump: self.pump.clone(),
        }
    }
}

impl<B: ClusterBackend> fmt::Debug for Hub<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B: ClusterBackend> Hub<B>
where
    B::Error: fmt::Display,
    Cluster<B>: Send + Sync,
{
    /// Starts the hub over `cluster`, taking its event stream.
    pub fn start(cluster: Arc<Cluster<B>>, events: Receiver<ClusterEvent>) -> Hub<B> {
        let workers = cluster.worker_count();
        let cv = cluster.cv();
        let inner = Arc::new(Inner {
            cluster,
            stats: Mutex::new(HubStats::default()),
            state: Mutex::new(State {
                worker_cv: vec![cv; workers],
                ..State::default()
            }),
            changed: Condvar::new(),
            shed_retry_after_ms: 1000,
        });
        let weak = Arc::downgrade(&inner);
        let pump = std::thread::Builder::new()
            .name("rindle-hub".into())
            .spawn(move || pump(weak, events))
            .ok();
        Hub {
            inner,
            pump: Arc::new(Mutex::new(pump)),
        }
    }

    /// The cluster.
    pub fn cluster(&self) -> &Arc<Cluster<B>> {
        &self.inner.cluster
    }

    /// Materializes `ast` for normalized subscription, or finds it already
    /// materialized (the same query, whatever the key order of its JSON).
    /// Returns its id and whether it was reused; waits for its hydration.
    pub fn materialize(
        &self,
        ast: &Ast,
        schemas: &[TableSchema],
    ) -> Result<(MatId, bool), HubError> {
        let key = serde_json::to_string(ast).map_err(|e| HubError::Query(e.to_string()))?;
        let fp = footprint(ast).map_err(HubError::Footprint)?;
        let tables = fp.shapes(schemas).map_err(HubError::Footprint)?;
        let id = {
            let mut st = lock(&self.inner.state);
            if let Some(&id) = st.by_key.get(&key) {
                drop(st);
                self.wait_built(id)?;
                return Ok((id, true));
            }
            st.next += 1;
            let id = QueryId(st.next);
            st.by_key.insert(key.clone(), id);
            st.mats.insert(
                id,
                Mat {
                    key,
                    footprint_query: fp.query.clone(),
                    tables,
                    worker: 0,
                    phase: Phase::Hydrating,
                    cv: 0,
                    subscribers: HashMap::new(),
                    derive_time: std::time::Duration::ZERO,
                    derives: 0,
                },
            );
            id
        };
        self.place(id, &fp.query)?;
        Ok((id, false))
    }

    /// Puts the footprint query on the cluster and waits for its hydration.
    fn place(&self, id: MatId, query: &Ast) -> Result<(), HubError> {
        match self.inner.cluster.add_query(id, query) {
            Ok((worker, _)) => {
                if let Some(m) = lock(&self.inner.state).mats.get_mut(&id) {
                    m.worker = worker;
                }
                self.wait_built(id)
            }
            Err(e) => {
                let message = e.to_string();
                let mut st = lock(&self.inner.state);
                if let Some(m) = st.mats.remove(&id) {
                    st.by_key.remove(&m.key);
                }
                self.inner.changed.notify_all();
                Err(HubError::Query(message))
            }
        }
    }

    fn wait_built(&self, id: MatId) -> Result<(), HubError> {
        let mut st = lock(&self.inner.state);
        loop {
            match st.mats.get(&id).map(|m| &m.phase) {
                None => return Err(HubError::Unknown(id)),
                Some(Phase::Hydrating) => {
                    st = self
                        .inner
                        .changed
                        .wait(st)
                        .unwrap_or_else(|p| p.into_inner());
                }
                Some(Phase::Failed(m)) => return Err(HubError::Query(m.clone())),
                Some(_) => return Ok(()),
            }
        }
    }

    /// Removes a materialization: its query leaves the cluster and its
    /// subscribers get a (non-retryable) `queryError`. False if unknown.
    pub fn dematerialize(&self, id: MatId) -> bool {
        let removed = {
            let mut st = lock(&self.inner.state);
            let Some(m) = st.mats.remove(&id) else {
                return false;
            };
            st.by_key.remove(&m.key);
            m
        };
        self.inner.cluster.remove_query(id);
        for (key, sink) in removed.subscribers {
            sink.send(Delivery::Ended {
                key,
                message: "the materialization was removed".into(),
            });
        }
        true
    }

    /// How many subscribers a materialization has.
    pub fn subscribers(&self, id: MatId) -> Option<usize> {
        lock(&self.inner.state)
            .mats
            .get(&id)
            .map(|m| m.subscribers.len())
    }

    /// Counters since start.
    pub fn stats(&self) -> HubStats {
        *self.inner.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Per materialization: the time its worker spent deriving it and over
    /// how many transactions.
    pub fn derive_times(&self) -> Vec<(MatId, std::time::Duration, u64)> {
        lock(&self.inner.state)
            .mats
            .iter()
            .map(|(&id, m)| (id, m.derive_time, m.derives))
            .collect()
    }

    /// Materializations live now.
    pub fn materializations(&self) -> usize {
        lock(&self.inner.state).mats.len()
    }

    /// Attaches a subscriber to materialization `id` (the lease already
    /// resolved by the caller). A faulted materialization is rebuilt first.
    pub fn attach(&self, id: MatId, req: AttachRequest<'_>) -> Result<Attached, Refusal> {
        let faulted = matches!(
            lock(&self.inner.state).mats.get(&id).map(|m| &m.phase),
            Some(Phase::Faulted(_))
        );
        if faulted {
            let query = {
                let mut st = lock(&self.inner.state);
                match st.mats.get_mut(&id) {
                    Some(m) if matches!(m.phase, Phase::Faulted(_)) => {
                        m.phase = Phase::Hydrating;
                        Some(m.footprint_query.clone())
                    }
                    _ => None,
                }
            };
            if let Some(q) = query {
                self.place(id, &q).map_err(|e| Refusal {
                    message: format!("rebuilding the faulted query failed: {e}"),
                    code: Some("faulted".into()),
                    retryable: true,
                    retry_after_ms: Some(1000),
                })?;
            }
        }
        self.wait_built(id)
            .map_err(|e| Refusal::lease(e.to_string()))?;
        let mut st = lock(&self.inner.state);
        let worker_cv = st.worker_cv.clone();
        let Some(m) = st.mats.get_mut(&id) else {
            return Err(Refusal::lease("the materialization was removed"));
        };
        let snapshot = match &m.phase {
            Phase::Live(fold) => fold.snapshot(),
            Phase::Faulted(msg) | Phase::Failed(msg) => {
                return Err(Refusal {
                    message: msg.clone(),
                    code: Some("faulted".into()),
                    retryable: true,
                    retry_after_ms: Some(1000),
                });
            }
            Phase::Hydrating => return Err(Refusal::lease("the query is not built")),
        };
        // The fold reflects every transaction its worker has finished.
        let cv = m.cv.max(worker_cv.get(m.worker).copied().unwrap_or(0));
        m.subscribers.insert(req.key, req.sink);
        let weak: Weak<Inner<B>> = Arc::downgrade(&self.inner);
        let key = req.key;
        Ok(Attached {
            tables: m.tables.clone(),
            snapshot,
            cv,
            guard: Detach::new(move || {
                if let Some(inner) = weak.upgrade()
                    && let Some(m) = lock(&inner.state).mats.get_mut(&id)
                {
                    m.subscribers.remove(&key);
                }
            }),
        })
    }

    /// Stops reading the cluster's events (they end when the cluster shuts
    /// down) and waits for the reader.
    pub fn join(&self) {
        let handle = self.pump.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

fn pump<B: ClusterBackend>(weak: Weak<Inner<B>>, events: Receiver<ClusterEvent>)
where
    Cluster<B>: Send + Sync,
{
    for event in events.iter() {
        let Some(inner) = weak.upgrade() else { return };
        let mut st = lock(&inner.state);
        match event {
            ClusterEvent::Hydrated {
                query,
                cv,
                format,
                changes,
            } => {
                if let Some(m) = st.mats.get_mut(&query) {
                    m.phase = match NormalizeFold::new(format) {
                        Ok(mut fold) => match fold.apply(&changes) {
                            Ok(_) => Phase::Live(Box::new(fold)),
                            Err(e) => Phase::Failed(e.to_string()),
                        },
                        Err(e) => Phase::Failed(e.to_string()),
                    };
                    m.cv = cv;
                }
                inner.changed.notify_all();
            }
            ClusterEvent::Changed {
                query,
                cv,
                changes,
                derive_time,
            } => {
                let mut delivered = Vec::new();
                let mut stats = inner.stats.lock().unwrap_or_else(|p| p.into_inner());
                stats.derived += 1;
                if let Some(m) = st.mats.get_mut(&query) {
                    m.derive_time += derive_time;
                    m.derives += 1;
                    let Phase::Live(fold) = &mut m.phase else {
                        continue;
                    };
                    match fold.apply(&changes) {
                        Ok(ops) => {
                            m.cv = cv;
                            if !ops.is_empty() {
                                let ops: Arc<[_]> = ops.into();
                                let mut shed = Vec::new();
                                for (&key, sink) in &m.subscribers {
                                    match sink.send(Delivery::Batch {
                                        key,
                                        ops: ops.clone(),
                                        cv,
                                    }) {
                                        SendOutcome::Sent => {
                                            stats.ops_sent += ops.len() as u64;
                                            delivered.push(sink.clone());
                                        }
                                        SendOutcome::Full => {
                                            stats.shed += 1;
                                            sink.shed(key, inner.shed_retry_after_ms);
                                            shed.push(key);
                                        }
                                        SendOutcome::Closed => shed.push(key),
                                    }
                                }
                                for key in shed {
                                    m.subscribers.remove(&key);
                                }
                            }
                        }
                        Err(e) => {
                            stats.faults += 1;
                            let message = format!("the query's fold failed: {e}");
                            fault(m, message);
                            // Not under the lock: the cluster's workers may be
                            // waiting for this thread to read their events.
                            let cluster = inner.cluster.clone();
                            std::thread::spawn(move || cluster.remove_query(query));
                        }
                    }
                }
                let pending = st.pending_progress.entry(cv).or_default();
                for sink in delivered {
                    pending.insert(sink.conn(), sink);
                }
            }
            ClusterEvent::Faulted { query, message, .. } => {
                inner.stats.lock().unwrap_or_else(|p| p.into_inner()).faults += 1;
                if let Some(m) = st.mats.get_mut(&query) {
                    fault(m, message);
                }
            }
            ClusterEvent::Progress { worker, cv } => {
                if let Some(w) = st.worker_cv.get_mut(worker) {
                    *w = (*w).max(cv);
                }
                let done = st.worker_cv.iter().copied().min().unwrap_or(cv);
                let ready: Vec<u64> = st
                    .pending_progress
                    .range(..=done)
                    .map(|(k, _)| *k)
                    .collect();
                let mut conns: HashMap<u64, (Sink, u64)> = HashMap::new();
                for c in ready {
                    if let Some(sinks) = st.pending_progress.remove(&c) {
                        for (conn, sink) in sinks {
                            conns.insert(conn, (sink, done));
                        }
                    }
                }
                for (sink, cv) in conns.into_values() {
                    sink.send(Delivery::Progress { cv });
                }
            }
            _ => {}
        }
    }
}

fn fault(m: &mut Mat, message: String) {
    tracing::warn!(query = %m.key, %message, "query faulted");
    for (key, sink) in m.subscribers.drain() {
        sink.send(Delivery::Faulted {
            key,
            message: message.clone(),
        });
    }
    m.phase = Phase::Faulted(message);
}
