//! The multi-threaded live engine: one writer, a pool of IVM workers.
//!
//! Each worker thread owns an [`Engine`] over its own catalog — its own read
//! snapshot of the database — and the queries placed on it (balanced: a new
//! query goes to the worker with the fewest). Writes go through one writer.
//! Per transaction:
//!
//! 1. the writer runs the transaction, the backend capturing its changes;
//! 2. the barrier: every worker, having derived every earlier transaction,
//!    pins its snapshot at the last commit — the state before this one;
//! 3. the writer commits durably; the commit version `cv` grows by one;
//! 4. every worker derives its queries' changes from its pinned snapshot plus
//!    the captured changes, in parallel with the others, and emits its
//!    queries' events followed by a [`ClusterEvent::Progress`] marker with the
//!    `cv`: once a consumer has seen the marker of every worker, transaction
//!    `cv` is fully delivered.
//!
//! A query lives on one worker, so its events keep their order. Deriving a
//! query runs inside a panic guard: a panic or an engine error tears that
//! query down with a [`ClusterEvent::Faulted`] and nothing else changes. A
//! worker that panics outside those guards restarts at once: it reopens its
//! catalog at the last commit, re-hydrates its queries (their new `Hydrated`
//! events replace what consumers hold) and emits the progress marker of the
//! transaction it was applying. Should a worker thread die altogether, it is
//! respawned on the next operation that reaches it.
//!
//! Back-pressure: the event stream and every worker's command queue are
//! bounded. A consumer that stops reading blocks the workers on their next
//! event, which blocks the writer at its next barrier: writes slow down to the
//! consumer's pace and memory stays bounded. Nothing is dropped. Operations
//! that make a worker emit (adding a query emits its `Hydrated`) wait the same
//! way, so the thread that reads the stream must not stop reading while it
//! waits on the cluster.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rindle_core::{
    Ast, Change, Engine, EngineError, QueryEvent, QueryId, Row, SourceChange, TableSchema,
    ViewFormat,
};

use crate::{Backend, DbError, RowOp, write_row};

/// A backend whose data worker threads can read through snapshots of their
/// own.
pub trait ClusterBackend: Backend + Send + 'static {
    /// What a worker needs to open its own catalog (a path, a shared handle).
    type Reader: Clone + Send + 'static;

    /// The reader handle for workers.
    fn reader(&self) -> Self::Reader;

    /// Registers a table on the write side (the workers add it to their own
    /// catalogs with [`ClusterBackend::add_table`]).
    fn register(&mut self, spec: Self::TableSpec) -> Result<TableSchema, Self::Error>;

    /// Opens a worker's catalog holding `tables`, at the last commit.
    fn open_catalog(
        reader: &Self::Reader,
        tables: &[TableSchema],
    ) -> Result<Self::Catalog, Self::Error>;

    /// Adds a newly registered table to a worker's catalog.
    fn add_table(
        reader: &Self::Reader,
        catalog: &mut Self::Catalog,
        schema: &TableSchema,
    ) -> Result<(), Self::Error>;

    /// Moves a worker's catalog to the last committed state and holds it
    /// there until [`ClusterBackend::release`] (the barrier).
    fn pin(catalog: &mut Self::Catalog) -> Result<(), Self::Error>;

    /// A handle that interrupts whatever read the worker's catalog is
    /// running, from another thread (SQLite: `sqlite3_interrupt` on the
    /// reader connection). The interrupted read fails, and the query it was
    /// for is faulted. `None`: the backend's reads cannot be interrupted, and
    /// budgets are enforced only when the work ends.
    fn interrupter(catalog: &Self::Catalog) -> Option<Interrupter> {
        let _ = catalog;
        None
    }

    /// Lets a worker's catalog drop what [`ClusterBackend::pin`] holds once
    /// the derivation is done (SQLite: the read snapshot, so checkpoints can
    /// reset the WAL); its next read sees the last commit.
    fn release(catalog: &mut Self::Catalog) -> Result<(), Self::Error> {
        let _ = catalog;
        Ok(())
    }
}

/// What the cluster reports, in order per query.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// A query was added: its whole result, as adds, at commit version `cv`.
    Hydrated {
        /// The query.
        query: QueryId,
        /// The commit version the result reflects.
        cv: u64,
        /// The result's format, to materialize it in a view.
        format: Arc<ViewFormat>,
        /// One `Add` per top-level row.
        changes: Vec<Change>,
    },
    /// Transaction `cv` changed the query's result.
    Changed {
        /// The query.
        query: QueryId,
        /// The transaction's commit version.
        cv: u64,
        /// The changes, in order.
        changes: Vec<Change>,
        /// Time the worker spent deriving this query's changes for the
        /// transaction.
        derive_time: Duration,
    },
    /// Deriving the query failed; it has been torn down.
    Faulted {
        /// The query.
        query: QueryId,
        /// The transaction it failed on.
        cv: u64,
        /// Why.
        message: String,
    },
    /// `worker` has emitted everything transaction `cv` caused on it.
    Progress {
        /// The worker.
        worker: usize,
        /// The transaction.
        cv: u64,
    },
}

type Reply<T> = SyncSender<Result<T, String>>;

enum Cmd {
    AddTable(TableSchema, Reply<()>),
    AddQuery(QueryId, Box<Ast>, u64, Reply<Arc<ViewFormat>>),
    RemoveQuery(QueryId),
    Pin(Reply<()>),
    /// Answered once every earlier command is done: the worker holds no
    /// snapshot then.
    Sync(Reply<()>),
    Apply(u64, Arc<Vec<(String, SourceChange)>>),
    Shutdown,
}

/// Interrupts a worker's running read (see [`ClusterBackend::interrupter`]).
pub type Interrupter = Arc<dyn Fn() + Send + Sync>;

/// A query took longer than the cluster allows it (see
/// [`ClusterOptions::derive_budget`] and [`ClusterOptions::hydrate_budget`]):
/// that query alone is torn down.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetExceeded {
    /// What was cut short: "deriving" or "hydrating".
    pub what: &'static str,
    /// The budget.
    pub budget: Duration,
}

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} the query took longer than its budget of {} ms",
            self.what,
            self.budget.as_millis()
        )
    }
}

impl std::error::Error for BudgetExceeded {}

/// Test hook: called inside each query's guarded derivation with the query
/// and the transaction's cv; returning true makes the derivation panic.
pub type FaultInjector = Arc<dyn Fn(QueryId, u64) -> bool + Send + Sync>;

/// Test hook: called when a worker starts applying a transaction, outside any
/// query's guard, with the worker's index and the cv; returning true makes the
/// worker itself panic (it then restarts).
pub type WorkerKiller = Arc<dyn Fn(usize, u64) -> bool + Send + Sync>;

struct Worker {
    cmd: SyncSender<Cmd>,
    thread: Option<JoinHandle<()>>,
    queries: BTreeMap<QueryId, Ast>,
}

struct Writer<B: ClusterBackend> {
    backend: B,
    cv: u64,
}

/// Options for [`Cluster::open`].
#[derive(Clone)]
pub struct ClusterOptions {
    /// IVM worker threads (at least 1).
    pub workers: usize,
    /// Capacity of the event stream and of each worker's command queue.
    pub queue: usize,
    /// Fault injection for tests: a query's derivation panics.
    pub fault_injector: Option<FaultInjector>,
    /// Fault injection for tests: a worker panics outside any query's guard.
    pub worker_killer: Option<WorkerKiller>,
    /// The most time one query may spend deriving one transaction's changes;
    /// past it, its reads are interrupted and it alone is torn down
    /// (`Faulted`). `None`: unbounded.
    pub derive_budget: Option<Duration>,
    /// The most time hydrating one query may take; past it, its reads are
    /// interrupted and adding it fails with [`BudgetExceeded`].
    pub hydrate_budget: Option<Duration>,
}

impl ClusterOptions {
    /// `workers` threads, queues of 1024.
    pub fn new(workers: usize) -> ClusterOptions {
        ClusterOptions {
            workers: workers.max(1),
            queue: 1024,
            fault_injector: None,
            worker_killer: None,
            derive_budget: None,
            hydrate_budget: None,
        }
    }
}

/// A clock readable without locks: when something became busy, as
/// milliseconds since an epoch, plus one (0 means idle).
#[derive(Debug)]
struct Busy {
    epoch: Instant,
    since: AtomicU64,
}

impl Busy {
    fn new(epoch: Instant) -> Busy {
        Busy {
            epoch,
            since: AtomicU64::new(0),
        }
    }

    fn start(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.since.store(ms + 1, Ordering::Relaxed);
    }

    fn stop(&self) {
        self.since.store(0, Ordering::Relaxed);
    }

    fn busy_for(&self) -> Option<Duration> {
        match self.since.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1)),
            ),
        }
    }
}

/// A worker's heartbeat, written by its thread, read by anyone.
struct Beat {
    alive: AtomicBool,
    busy: Busy,
    watch: Mutex<Watch>,
}

/// What the watchdog needs to cut a worker's query short. Set and cleared
/// under its lock, so an interrupt only ever reaches the query whose
/// deadline passed.
#[derive(Default)]
struct Watch {
    deadline: Option<Instant>,
    interrupter: Option<Interrupter>,
}

impl Beat {
    fn new(epoch: Instant) -> Beat {
        Beat {
            alive: AtomicBool::new(true),
            busy: Busy::new(epoch),
            watch: Mutex::new(Watch::default()),
        }
    }

    /// Runs `f` under a deadline `budget` from now (if any); returns its
    /// value and whether the deadline passed.
    fn within<T>(&self, budget: Option<Duration>, f: impl FnOnce() -> T) -> (T, bool) {
        let Some(budget) = budget else {
            return (f(), false);
        };
        let deadline = Instant::now() + budget;
        lock(&self.watch).deadline = Some(deadline);
        let value = f();
        lock(&self.watch).deadline = None;
        (value, Instant::now() >= deadline)
    }
}

/// Interrupts the reads of every worker past its deadline (or of all of
/// them once the cluster is cancelled), every 20 ms, until `stop`.
fn watchdog(beats: Vec<Arc<Beat>>, cancelled: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let all = cancelled.load(Ordering::SeqCst);
        for b in &beats {
            let w = lock(&b.watch);
            if (all || w.deadline.is_some_and(|d| now >= d))
                && let Some(i) = &w.interrupter
            {
                i();
            }
        }
    }
}

/// Marks a worker thread down when it ends, however it ends.
struct AliveGuard(Arc<Beat>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.busy.stop();
        self.0.alive.store(false, Ordering::SeqCst);
    }
}

/// A worker's state, as [`Cluster::worker_health`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerHealth {
    /// The worker's index.
    pub index: usize,
    /// Its thread is running (a dead one is respawned by the next operation
    /// that reaches it).
    pub alive: bool,
    /// How long it has been working on its current command, if it is.
    pub busy_for: Option<Duration>,
}

/// The writer's state, as [`Cluster::writer_health`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterHealth {
    /// How long the current transaction has held the writer, if one does.
    pub busy_for: Option<Duration>,
    /// Why the last transaction failed in the backend (beginning, recording
    /// or committing it — not a statement of its own), until one commits.
    pub failing: Option<String>,
}

/// The multi-threaded live engine. Shareable across threads.
pub struct Cluster<B: ClusterBackend> {
    /// The writer's cv, readable without waiting for a transaction.
    committed: AtomicU64,
    beats: Vec<Arc<Beat>>,
    cancelled: Arc<AtomicBool>,
    stop_watchdog: Arc<AtomicBool>,
    writer_busy: Busy,
    writer_failure: Mutex<Option<String>>,
    writer: Mutex<Writer<B>>,
    faults: Faults,
    workers: Mutex<Vec<Worker>>,
    schemas: Mutex<BTreeMap<String, TableSchema>>,
    reader: B::Reader,
    events: SyncSender<ClusterEvent>,
    options: ClusterOptions,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Queries torn down by their workers, for the cluster to forget.
type Faults = Arc<Mutex<Vec<QueryId>>>;

struct WorkerSetup<B: ClusterBackend> {
    index: usize,
    beat: Arc<Beat>,
    derive_budget: Option<Duration>,
    hydrate_budget: Option<Duration>,
    reader: B::Reader,
    tables: Vec<TableSchema>,
    events: SyncSender<ClusterEvent>,
    queue: usize,
    injector: Option<FaultInjector>,
    killer: Option<WorkerKiller>,
    faults: Faults,
}

fn spawn_worker<B: ClusterBackend>(setup: WorkerSetup<B>) -> (SyncSender<Cmd>, JoinHandle<()>) {
    let (tx, rx) = sync_channel::<Cmd>(setup.queue);
    let thread = std::thread::Builder::new()
        .name(format!("rindle-ivm-{}", setup.index))
        .spawn(move || worker_loop::<B>(&setup, &rx))
        .expect("spawning a worker thread");
    (tx, thread)
}

/// What a worker must remember across a restart.
#[derive(Default)]
struct Memory {
    /// Its queries, to re-hydrate.
    queries: BTreeMap<QueryId, Ast>,
    /// The last transaction it started applying.
    cv: u64,
    /// The tables registered since it started.
    tables: Vec<TableSchema>,
}

/// Runs a worker, restarting it after a panic that escaped every query's
/// guard: it reopens its catalog at the last commit, re-hydrates its queries
/// (new `Hydrated` events replace what consumers hold) and emits the progress
/// marker of the transaction it was applying.
fn worker_loop<B: ClusterBackend>(setup: &WorkerSetup<B>, rx: &Receiver<Cmd>) {
    setup.beat.alive.store(true, Ordering::SeqCst);
    let _alive = AliveGuard(setup.beat.clone());
    let mut memory = Memory {
        tables: setup.tables.clone(),
        ..Memory::default()
    };
    let mut restarted = false;
    loop {
        let run = catch_unwind(AssertUnwindSafe(|| {
            worker_run(setup, rx, &mut memory, restarted)
        }));
        match run {
            Ok(()) => return,
            Err(_) => restarted = true,
        }
    }
}

fn worker_run<B: ClusterBackend>(
    setup: &WorkerSetup<B>,
    rx: &Receiver<Cmd>,
    memory: &mut Memory,
    restarted: bool,
) {
    let (index, reader, events) = (setup.index, &setup.reader, &setup.events);
    let injector = setup.injector.as_ref();
    let catalog = match B::open_catalog(reader, &memory.tables) {
        Ok(c) => c,
        Err(_) => return,
    };
    lock(&setup.beat.watch).interrupter = B::interrupter(&catalog);
    let mut engine = Engine::new(catalog);
    if restarted {
        let cv = memory.cv;
        let queries: Vec<(QueryId, Ast)> = memory
            .queries
            .iter()
            .map(|(q, a)| (*q, a.clone()))
            .collect();
        for (id, ast) in queries {
            match (engine.add_query(id, &ast), engine.format(id).cloned()) {
                (Ok(nodes), Some(format)) => {
                    let _ = events.send(ClusterEvent::Hydrated {
                        query: id,
                        cv,
                        format,
                        changes: nodes.into_iter().map(Change::Add).collect(),
                    });
                }
                (r, _) => {
                    memory.queries.remove(&id);
                    lock(&setup.faults).push(id);
                    let message = r
                        .err()
                        .map_or_else(|| "the query vanished".into(), |e| e.to_string());
                    let _ = events.send(ClusterEvent::Faulted {
                        query: id,
                        cv,
                        message,
                    });
                }
            }
        }
        let _ = B::release(engine.catalog_mut());
        let _ = events.send(ClusterEvent::Progress { worker: index, cv });
    }
    while let Ok(cmd) = rx.recv() {
        setup.beat.busy.start();
        let _done = BusyGuard(&setup.beat.busy);
        match cmd {
            Cmd::AddTable(schema, reply) => {
                let r =
                    B::add_table(reader, engine.catalog_mut(), &schema).map_err(|e| e.to_string());
                if r.is_ok() {
                    memory.tables.push(schema);
                }
                let _ = B::release(engine.catalog_mut());
                let _ = reply.send(r);
            }
            Cmd::AddQuery(id, ast, cv, reply) => {
                let (added, late) = setup.beat.within(setup.hydrate_budget, || {
                    catch_unwind(AssertUnwindSafe(|| engine.add_query(id, &ast)))
                });
                if matches!(added, Ok(Ok(_))) {
                    memory.queries.insert(id, (*ast).clone());
                }
                let r = match added {
                    Ok(Ok(nodes)) => match engine.format(id).cloned() {
                        Some(format) => {
                            let _ = events.send(ClusterEvent::Hydrated {
                                query: id,
                                cv,
                                format: format.clone(),
                                changes: nodes.into_iter().map(Change::Add).collect(),
                            });
                            Ok(format)
                        }
                        None => Err("the query vanished".to_string()),
                    },
                    Ok(Err(_)) if late => Err(BudgetExceeded {
                        what: "hydrating",
                        budget: setup.hydrate_budget.unwrap_or_default(),
                    }
                    .to_string()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(p) => Err(format!("hydrating panicked: {}", panic_message(&*p))),
                };
                let _ = B::release(engine.catalog_mut());
                let _ = reply.send(r);
            }
            Cmd::RemoveQuery(id) => {
                engine.remove_query(id);
                memory.queries.remove(&id);
            }
            Cmd::Pin(reply) => {
                let _ = reply.send(B::pin(engine.catalog_mut()).map_err(|e| e.to_string()));
            }
            Cmd::Sync(reply) => {
                let _ = reply.send(Ok(()));
            }
            Cmd::Apply(cv, changes) => {
                memory.cv = cv;
                if setup.killer.as_ref().is_some_and(|k| k(index, cv)) {
                    panic!("injected worker failure");
                }
                let mut spent: HashMap<QueryId, Duration> = HashMap::new();
                for (table, change) in changes.iter() {
                    let mut isolate =
                        |q: QueryId, derive: &mut dyn FnMut() -> Result<(), EngineError>| {
                            let started = Instant::now();
                            let so_far = spent.get(&q).copied().unwrap_or_default();
                            let left = setup.derive_budget.map(|b| b.saturating_sub(so_far));
                            let (r, late) = setup.beat.within(left, || {
                                catch_unwind(AssertUnwindSafe(|| {
                                    if injector.is_some_and(|f| f(q, cv)) {
                                        panic!("injected fault");
                                    }
                                    derive()
                                }))
                            });
                            let r = match r {
                                Ok(Err(_)) if late => Err(EngineError::Source(
                                    rindle_core::SourceError::Backend(Box::new(BudgetExceeded {
                                        what: "deriving",
                                        budget: setup.derive_budget.unwrap_or_default(),
                                    })),
                                )),
                                Ok(r) => r,
                                Err(_) => Err(EngineError::Internal("deriving the query panicked")),
                            };
                            *spent.entry(q).or_default() += started.elapsed();
                            r
                        };
                    if let Err(e) = engine.push_isolated(table, change.clone(), &mut isolate) {
                        // The worker's state and the backend disagree about the
                        // table: its queries here can no longer be trusted.
                        for q in engine.queries_reading(table) {
                            engine.fault_query(
                                q,
                                EngineError::Internal(
                                    "a committed change contradicted the worker's state",
                                ),
                            );
                        }
                        let _ = e;
                    }
                }
                // The derivation is done: its snapshot may go.
                let _ = B::release(engine.catalog_mut());
                for event in engine.drain() {
                    let e = match event {
                        QueryEvent::Changed { query, changes } => ClusterEvent::Changed {
                            query,
                            cv,
                            changes,
                            derive_time: spent.get(&query).copied().unwrap_or_default(),
                        },
                        QueryEvent::Faulted { query, error } => {
                            memory.queries.remove(&query);
                            lock(&setup.faults).push(query);
                            ClusterEvent::Faulted {
                                query,
                                cv,
                                message: error.to_string(),
                            }
                        }
                        _ => continue,
                    };
                    if events.send(e).is_err() {
                        return;
                    }
                }
                if events
                    .send(ClusterEvent::Progress { worker: index, cv })
                    .is_err()
                {
                    return;
                }
            }
            Cmd::Shutdown => return,
        }
    }
}

/// Marks the end of a command however it ends.
struct BusyGuard<'a>(&'a Busy);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Why a cluster operation failed.
pub type ClusterError<E> = DbError<E>;

/// An opened cluster and its event stream.
pub type Opened<B> = (Cluster<B>, Receiver<ClusterEvent>);

impl<B: ClusterBackend> Cluster<B> {
    /// Opens the backend and starts the workers; returns the cluster and its
    /// event stream.
    pub fn open(
        config: impl Into<B::Config>,
        options: ClusterOptions,
    ) -> Result<Opened<B>, ClusterError<B::Error>> {
        // Queries live on the workers, each with a catalog of its own.
        let (mut backend, catalog) = B::open(config.into()).map_err(DbError::Backend)?;
        let cv = backend.load_cv().map_err(DbError::Backend)?;
        let schemas: BTreeMap<String, TableSchema> = B::registered(&catalog)
            .into_iter()
            .map(|s| (s.name().to_string(), s))
            .collect();
        drop(catalog);
        let reader = backend.reader();
        let (events, rx) = sync_channel(options.queue.max(1));
        let tables: Vec<TableSchema> = schemas.values().cloned().collect();
        let faults = Faults::default();
        let epoch = Instant::now();
        let beats: Vec<Arc<Beat>> = (0..options.workers.max(1))
            .map(|_| Arc::new(Beat::new(epoch)))
            .collect();
        let cancelled = Arc::new(AtomicBool::new(false));
        let stop_watchdog = Arc::new(AtomicBool::new(false));
        {
            let (beats, cancelled, stop) =
                (beats.clone(), cancelled.clone(), stop_watchdog.clone());
            std::thread::Builder::new()
                .name("rindle-watchdog".into())
                .spawn(move || watchdog(beats, cancelled, stop))
                .map_err(|e| DbError::Worker(format!("starting the watchdog: {e}")))?;
        }
        let workers = (0..options.workers.max(1))
            .map(|i| {
                let (cmd, thread) = spawn_worker::<B>(WorkerSetup {
                    index: i,
                    beat: beats[i].clone(),
                    derive_budget: options.derive_budget,
                    hydrate_budget: options.hydrate_budget,
                    reader: reader.clone(),
                    tables: tables.clone(),
                    events: events.clone(),
                    queue: options.queue.max(1),
                    injector: options.fault_injector.clone(),
                    killer: options.worker_killer.clone(),
                    faults: faults.clone(),
                });
                Worker {
                    cmd,
                    thread: Some(thread),
                    queries: BTreeMap::new(),
                }
            })
            .collect();
        Ok((
            Cluster {
                beats,
                cancelled,
                stop_watchdog,
                writer_busy: Busy::new(epoch),
                writer_failure: Mutex::new(None),
                writer: Mutex::new(Writer { backend, cv }),
                committed: AtomicU64::new(cv),
                faults,
                workers: Mutex::new(workers),
                schemas: Mutex::new(schemas),
                reader,
                events,
                options,
            },
            rx,
        ))
    }

    /// The commit version of the last committed transaction (resumed from
    /// the backend when it stores it: it never goes backwards).
    pub fn cv(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    /// Runs `f` with the writer's backend, between transactions (settings,
    /// statistics).
    pub fn with_backend<T>(&self, f: impl FnOnce(&mut B) -> T) -> T {
        f(&mut lock(&self.writer).backend)
    }

    /// Runs the backend's maintenance now if it is due (SQLite: a WAL over
    /// its bound is checkpointed and truncated), after every worker has
    /// finished what it was doing. Returns whether it ran.
    pub fn maintain_if_due(&self) -> Result<bool, ClusterError<B::Error>> {
        let mut w = lock(&self.writer);
        self.maintain_locked(&mut w)
    }

    fn maintain_locked(&self, w: &mut Writer<B>) -> Result<bool, ClusterError<B::Error>> {
        if !w.backend.maintenance_due() {
            return Ok(false);
        }
        // Every worker finishes its derivations and lets go of its snapshot.
        self.round_trip(Cmd::Sync);
        w.backend.maintain().map_err(DbError::Backend)?;
        Ok(true)
    }

    /// Sends every worker the command `make` builds around a reply channel
    /// and waits for each answer (a worker answers once every command queued
    /// before is done).
    fn round_trip(&self, make: fn(Reply<()>) -> Cmd) {
        let mut workers = self.workers();
        let mut waits = Vec::with_capacity(workers.len());
        for i in 0..workers.len() {
            let (reply, wait) = sync_channel(1);
            if self
                .send(&mut workers, i, &move || make(reply.clone()))
                .is_ok()
            {
                waits.push(wait);
            }
        }
        drop(workers);
        for wait in waits {
            let _ = wait.recv();
        }
    }

    /// The number of worker threads.
    pub fn worker_count(&self) -> usize {
        self.beats.len()
    }

    /// Every worker's state, read without waiting on any of them.
    pub fn worker_health(&self) -> Vec<WorkerHealth> {
        self.beats
            .iter()
            .enumerate()
            .map(|(index, b)| WorkerHealth {
                index,
                alive: b.alive.load(Ordering::SeqCst),
                busy_for: b.busy.busy_for(),
            })
            .collect()
    }

    /// The writer's state, read without waiting on it.
    pub fn writer_health(&self) -> WriterHealth {
        WriterHealth {
            busy_for: self.writer_busy.busy_for(),
            failing: lock(&self.writer_failure).clone(),
        }
    }

    /// The workers, with the queries their threads have torn down forgotten.
    fn workers(&self) -> MutexGuard<'_, Vec<Worker>> {
        let mut workers = lock(&self.workers);
        for q in lock(&self.faults).drain(..) {
            for w in workers.iter_mut() {
                w.queries.remove(&q);
            }
        }
        workers
    }

    /// Sends a command to worker `i`, respawning it first if its thread died.
    fn send(&self, workers: &mut [Worker], i: usize, make: &dyn Fn() -> Cmd) -> Result<(), String> {
        if workers[i].cmd.send(make()).is_ok() {
            return Ok(());
        }
        self.respawn(workers, i)?;
        workers[i]
            .cmd
            .send(make())
            .map_err(|_| "worker unavailable".to_string())
    }

    fn respawn(&self, workers: &mut [Worker], i: usize) -> Result<(), String> {
        if let Some(t) = workers[i].thread.take() {
            let _ = t.join();
        }
        let tables: Vec<TableSchema> = lock(&self.schemas).values().cloned().collect();
        self.beats[i].alive.store(true, Ordering::SeqCst);
        let (cmd, thread) = spawn_worker::<B>(WorkerSetup {
            index: i,
            beat: self.beats[i].clone(),
            derive_budget: self.options.derive_budget,
            hydrate_budget: self.options.hydrate_budget,
            reader: self.reader.clone(),
            tables,
            events: self.events.clone(),
            queue: self.options.queue.max(1),
            injector: self.options.fault_injector.clone(),
            killer: self.options.worker_killer.clone(),
            faults: self.faults.clone(),
        });
        workers[i].cmd = cmd;
        workers[i].thread = Some(thread);
        let cv = lock(&self.writer).cv;
        let queries: Vec<(QueryId, Ast)> = workers[i]
            .queries
            .iter()
            .map(|(q, a)| (*q, a.clone()))
            .collect();
        for (q, ast) in queries {
            let (reply, wait) = sync_channel(1);
            workers[i]
                .cmd
                .send(Cmd::AddQuery(q, Box::new(ast), cv, reply))
                .map_err(|_| "worker unavailable".to_string())?;
            if wait.recv().map_err(|_| "worker died".to_string())?.is_err() {
                workers[i].queries.remove(&q);
            }
        }
        Ok(())
    }

    /// Registers a table with the writer and every worker.
    pub fn register_table(
        &self,
        spec: impl Into<B::TableSpec>,
    ) -> Result<TableSchema, ClusterError<B::Error>> {
        let mut w = lock(&self.writer);
        let schema = w.backend.register(spec.into()).map_err(DbError::Backend)?;
        lock(&self.schemas).insert(schema.name().to_string(), schema.clone());
        let mut workers = self.workers();
        for i in 0..workers.len() {
            let (reply, wait) = sync_channel(1);
            let s = schema.clone();
            let reply2 = reply.clone();
            self.send(&mut workers, i, &move || {
                Cmd::AddTable(s.clone(), reply2.clone())
            })
            .map_err(DbError::Worker)?;
            drop(reply);
            let _ = wait.recv();
        }
        Ok(schema)
    }

    /// Places a query on the least-loaded worker and hydrates it there; its
    /// `Hydrated` event follows on the stream. Returns the worker and the
    /// query's result format.
    pub fn add_query(
        &self,
        id: QueryId,
        ast: &Ast,
    ) -> Result<(usize, Arc<ViewFormat>), ClusterError<B::Error>> {
        let w = lock(&self.writer);
        let cv = w.cv;
        let mut workers = self.workers();
        if workers.iter().any(|wk| wk.queries.contains_key(&id)) {
            return Err(DbError::Query(rindle_core::QueryError::DuplicateId(id)));
        }
        let i = (0..workers.len())
            .min_by_key(|&i| workers[i].queries.len())
            .unwrap_or(0);
        let (reply, wait) = sync_channel(1);
        let ast2 = ast.clone();
        self.send(&mut workers, i, &move || {
            Cmd::AddQuery(id, Box::new(ast2.clone()), cv, reply.clone())
        })
        .map_err(DbError::Worker)?;
        drop(w);
        match wait.recv() {
            Ok(Ok(format)) => {
                workers[i].queries.insert(id, ast.clone());
                Ok((i, format))
            }
            Ok(Err(msg)) => Err(DbError::Worker(msg)),
            Err(_) => Err(DbError::Closed),
        }
    }

    /// Removes a query; false if it was not placed.
    pub fn remove_query(&self, id: QueryId) -> bool {
        let mut workers = self.workers();
        for i in 0..workers.len() {
            if workers[i].queries.remove(&id).is_some() {
                let _ = self.send(&mut workers, i, &move || Cmd::RemoveQuery(id));
                return true;
            }
        }
        false
    }

    /// Runs a write transaction: `f` writes through the [`ClusterTx`]; if it
    /// returns `Ok`, the transaction commits (barrier, durable commit, then
    /// the workers derive) and its commit version is returned with `f`'s
    /// value; if it returns `Err` or panics, the transaction rolls back and
    /// nothing is delivered.
    pub fn transaction<T, E>(
        &self,
        f: impl FnOnce(&mut ClusterTx<'_, B>) -> Result<T, E>,
    ) -> Result<(u64, T), TxError<E, B::Error>> {
        let mut w = lock(&self.writer);
        self.writer_busy.start();
        let _done = BusyGuard(&self.writer_busy);
        let result = self.transaction_locked(&mut w, f);
        match &result {
            Ok(_) => *lock(&self.writer_failure) = None,
            Err(TxError::Db(e)) => *lock(&self.writer_failure) = Some(e.to_string()),
            Err(_) => {}
        }
        result
    }

    fn transaction_locked<T, E>(
        &self,
        w: &mut Writer<B>,
        f: impl FnOnce(&mut ClusterTx<'_, B>) -> Result<T, E>,
    ) -> Result<(u64, T), TxError<E, B::Error>> {
        self.maintain_locked(w).map_err(TxError::Db)?;
        w.backend
            .begin()
            .map_err(|e| TxError::Db(DbError::Backend(e)))?;
        let schemas = lock(&self.schemas).clone();
        let result = catch_unwind(AssertUnwindSafe(|| {
            f(&mut ClusterTx {
                cv: w.cv + 1,
                backend: &mut w.backend,
                schemas: &schemas,
            })
        }));
        let value = match result {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                let _ = w.backend.rollback();
                return Err(TxError::Aborted(e));
            }
            Err(p) => {
                let _ = w.backend.rollback();
                std::panic::resume_unwind(p);
            }
        };
        let next = w.cv + 1;
        if let Err(e) = w.backend.store_cv(next) {
            let _ = w.backend.rollback();
            return Err(TxError::Db(DbError::Backend(e)));
        }
        // The barrier: every worker pins the state before this commit.
        self.round_trip(Cmd::Pin);
        let changes = w
            .backend
            .commit()
            .map_err(|e| TxError::Db(DbError::Backend(e)))?;
        w.cv += 1;
        self.committed.store(w.cv, Ordering::SeqCst);
        let cv = w.cv;
        let changes = Arc::new(changes);
        let mut workers = self.workers();
        for i in 0..workers.len() {
            let c = changes.clone();
            let _ = self.send(&mut workers, i, &move || Cmd::Apply(cv, c.clone()));
        }
        Ok((cv, value))
    }
}

impl<B: ClusterBackend> Cluster<B> {
    /// Cuts every worker's current and future reads short: each query being
    /// derived or hydrated fails (and is torn down) at its next read. For a
    /// shutdown that must not wait on long derivations.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Stops the workers, waiting at most `timeout` for them to finish what
    /// is queued; then cancels what they are still doing (see
    /// [`Cluster::cancel`]) and waits up to `grace` more. Returns whether
    /// every worker stopped; one that did not (stuck outside any read) is
    /// left to end on its own. Keep reading the event stream meanwhile.
    pub fn shutdown_within(self, timeout: Duration, grace: Duration) -> bool {
        let handles: Vec<JoinHandle<()>> = {
            let mut workers = self.workers();
            for w in workers.iter_mut() {
                // Closing the queue (even a full one): the worker ends once
                // it has done what is queued.
                w.cmd = sync_channel(0).0;
            }
            workers.iter_mut().filter_map(|w| w.thread.take()).collect()
        };
        let finished = |until: Instant| {
            while Instant::now() < until {
                if handles.iter().all(JoinHandle::is_finished) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            handles.iter().all(JoinHandle::is_finished)
        };
        let mut done = finished(Instant::now() + timeout);
        if !done {
            self.cancel();
            done = finished(Instant::now() + grace);
        }
        drop(self);
        if done {
            for h in handles {
                let _ = h.join();
            }
        }
        done
    }

    /// Stops the workers and waits for them. They finish the commands already
    /// queued, so keep reading the event stream until this returns.
    pub fn shutdown(self) {
        let handles: Vec<JoinHandle<()>> = {
            let mut workers = self.workers();
            for w in workers.iter_mut() {
                let _ = w.cmd.send(Cmd::Shutdown);
            }
            workers.iter_mut().filter_map(|w| w.thread.take()).collect()
        };
        drop(self);
        for h in handles {
            let _ = h.join();
        }
    }
}

impl<B: ClusterBackend> Drop for Cluster<B> {
    /// Closes the workers' queues without waiting: a worker exits once its
    /// queue is drained, or at once if the event stream is gone. (Waiting here
    /// could hang on a full stream nobody reads; [`Cluster::shutdown`] waits.)
    fn drop(&mut self) {
        self.stop_watchdog.store(true, Ordering::SeqCst);
        let mut workers = self.workers();
        for w in workers.iter_mut() {
            let _ = w.cmd.try_send(Cmd::Shutdown);
            w.thread.take();
        }
    }
}

/// Why a cluster transaction did not commit.
#[derive(Debug)]
#[non_exhaustive]
pub enum TxError<E, B> {
    /// The transaction's closure returned this error; it was rolled back.
    Aborted(E),
    /// The cluster or backend failed.
    Db(DbError<B>),
}

impl<E: std::fmt::Display, B: std::fmt::Display> std::fmt::Display for TxError<E, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxError::Aborted(e) => write!(f, "transaction aborted: {e}"),
            TxError::Db(e) => write!(f, "{e}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display, B: std::fmt::Debug + std::fmt::Display>
    std::error::Error for TxError<E, B>
{
}

/// The open transaction inside [`Cluster::transaction`].
pub struct ClusterTx<'a, B: ClusterBackend> {
    backend: &'a mut B,
    schemas: &'a BTreeMap<String, TableSchema>,
    cv: u64,
}

impl<B: ClusterBackend> ClusterTx<'_, B> {
    /// The commit version this transaction gets if it commits (transactions
    /// are serialized, so it is known while writing).
    pub fn cv(&self) -> u64 {
        self.cv
    }

    fn row_op(&mut self, table: &str, row: &Row, op: RowOp<B>) -> Result<(), DbError<B::Error>> {
        let schema = self
            .schemas
            .get(table)
            .ok_or_else(|| DbError::UnknownTable(table.into()))?;
        write_row(self.backend, schema, row, op)
    }

    /// Inserts a row.
    pub fn insert(&mut self, table: &str, row: Row) -> Result<(), DbError<B::Error>> {
        self.row_op(table, &row, B::insert)
    }

    /// Replaces the row with the same primary key.
    pub fn update(&mut self, table: &str, row: Row) -> Result<(), DbError<B::Error>> {
        self.row_op(table, &row, B::update)
    }

    /// Deletes the row with this row's primary key.
    pub fn delete(&mut self, table: &str, row: Row) -> Result<(), DbError<B::Error>> {
        self.row_op(table, &row, B::delete)
    }

    /// The backend, for backend-specific writes (SQL).
    pub fn backend(&mut self) -> &mut B {
        self.backend
    }
}
