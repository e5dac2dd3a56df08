//! The live layer, written once for every storage backend.
//!
//! A [`Db`] owns a backend's write side and an [`Engine`] over the backend's
//! sources. Queries are registered with [`Db::query`]; their handles deliver a
//! [`Update::Hydrated`] to each new subscriber and then an [`Update::Changed`]
//! after every committed write transaction that changed the query's result.
//! Writes go through [`Db::write`]: a [`WriteTx`] with a backend-neutral row API
//! (backends add their own, such as SQL); [`WriteTx::commit`] makes the
//! transaction durable, pushes the changes the backend captured through every
//! affected query, and delivers the results. A rollback — explicit or by
//! dropping the transaction — delivers nothing and touches no view.
//!
//! Backends implement [`Backend`]; `rindle_sqlite::Db` is `Db<SqliteBackend>`.
//! [`cluster::Cluster`] runs the same engine on a pool of worker threads.

pub mod cluster;
pub mod memory;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::{Rc, Weak};

pub use rindle_core::QueryId;
use rindle_core::{
    Ast, Catalog, Change, ColumnType, Engine, EngineError, Node, PushError, QueryError, QueryEvent,
    Row, SourceChange, TableSchema, Value, ViewFormat,
};

/// A storage backend: its write side, and a catalog of sources over its data.
///
/// Contract:
/// - between transactions, the catalog's sources read the last committed state;
/// - [`Backend::commit`] makes the transaction durable and returns every row
///   change it made to registered tables, in order; the sources keep reading
///   the state from before the transaction, plus each change the engine then
///   [`rindle_core::Source::apply`]s, until [`Backend::advance`] moves them to
///   the committed state;
/// - a failed commit leaves the transaction rolled back and the data unchanged.
pub trait Backend: Sized {
    /// The sources of the registered tables.
    type Catalog: Catalog;
    /// What [`Db::open`] takes (a path, for file backends).
    type Config;
    /// What [`Db::register_table`] takes (a name to introspect, or a schema).
    type TableSpec;
    /// The backend's errors.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens the backend and an empty catalog.
    fn open(config: Self::Config) -> Result<(Self, Self::Catalog), Self::Error>;

    /// The tables a freshly opened catalog already holds (a backend that
    /// persists its schemas registers them again by itself).
    fn registered(catalog: &Self::Catalog) -> Vec<TableSchema> {
        let _ = catalog;
        Vec::new()
    }

    /// Makes a table available to queries and writes, adding its source to the
    /// catalog.
    fn register_table(
        &mut self,
        catalog: &mut Self::Catalog,
        spec: Self::TableSpec,
    ) -> Result<TableSchema, Self::Error>;

    /// Starts a write transaction.
    fn begin(&mut self) -> Result<(), Self::Error>;

    /// Inserts a row (its key must be new).
    fn insert(&mut self, table: &TableSchema, row: &Row) -> Result<(), Self::Error>;

    /// Replaces the row with `row`'s primary key (it must exist).
    fn update(&mut self, table: &TableSchema, row: &Row) -> Result<(), Self::Error>;

    /// Deletes the row with `row`'s primary key (it must exist).
    fn delete(&mut self, table: &TableSchema, row: &Row) -> Result<(), Self::Error>;

    /// Commits durably; returns the captured changes as `(table, change)`.
    fn commit(&mut self) -> Result<Vec<(String, SourceChange)>, Self::Error>;

    /// Abandons the transaction.
    fn rollback(&mut self) -> Result<(), Self::Error>;

    /// Moves the catalog's sources to the last committed state.
    fn advance(&mut self, catalog: &mut Self::Catalog) -> Result<(), Self::Error>;

    /// Pins the catalog's sources at the last committed state until the next
    /// [`Backend::advance`], so the derivation after the coming commit reads
    /// the state before it. Called before each write transaction begins; a
    /// backend whose sources always hold their state between advances does
    /// nothing.
    fn hold(&mut self, catalog: &mut Self::Catalog) -> Result<(), Self::Error> {
        let _ = catalog;
        Ok(())
    }

    /// Whether [`Backend::maintain`] should run before the next transaction.
    fn maintenance_due(&self) -> bool {
        false
    }

    /// Housekeeping between transactions, run while no source holds a
    /// snapshot (SQLite: checkpoints the WAL and truncates it, so the log
    /// stays bounded).
    fn maintain(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The commit version of the last committed transaction, as stored by
    /// [`Backend::store_cv`] (0 for a backend that does not store it).
    fn load_cv(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }

    /// Records `cv` as the commit version of the open transaction, inside it,
    /// so the counter survives restarts and never goes backwards.
    fn store_cv(&mut self, cv: u64) -> Result<(), Self::Error> {
        let _ = cv;
        Ok(())
    }
}

/// What a subscriber receives.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Update {
    /// The query's whole current result, as adds, when the subscription starts.
    Hydrated {
        /// The last committed transaction the result reflects.
        tx_id: u64,
        /// One `Add` per top-level row.
        changes: Vec<Change>,
    },
    /// A committed transaction changed the result.
    Changed {
        /// The transaction.
        tx_id: u64,
        /// The changes, in order.
        changes: Vec<Change>,
    },
    /// Maintaining the query failed; it delivers nothing more.
    Faulted {
        /// The transaction whose changes it could not derive.
        tx_id: u64,
        /// Why.
        message: String,
    },
}

/// Why a [`Db`] operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DbError<E> {
    /// The backend failed.
    Backend(E),
    /// The query could not be built or hydrated.
    Query(QueryError),
    /// A row handed to the row API does not fit its table.
    Change(PushError),
    /// The table is not registered.
    UnknownTable(String),
    /// A write transaction is already open on this database.
    Busy,
    /// The query's handle outlived its database.
    Closed,
    /// A cluster worker refused or failed an operation.
    Worker(String),
    /// A primary key with the wrong number of cells.
    KeyWidth {
        /// The table.
        table: String,
        /// The key's column count.
        expected: usize,
        /// The cells given.
        got: usize,
    },
}

impl<E: fmt::Display> fmt::Display for DbError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Backend(e) => write!(f, "{e}"),
            DbError::Query(e) => write!(f, "{e}"),
            DbError::Change(e) => write!(f, "{e}"),
            DbError::UnknownTable(t) => write!(f, "table `{t}` is not registered"),
            DbError::Busy => f.write_str("a write transaction is already open"),
            DbError::Closed => f.write_str("the database is closed"),
            DbError::Worker(e) => write!(f, "worker: {e}"),
            DbError::KeyWidth {
                table,
                expected,
                got,
            } => write!(
                f,
                "the primary key of `{table}` has {expected} columns, {got} cells were given"
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for DbError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Backend(e) => Some(e),
            DbError::Query(e) => Some(e),
            DbError::Change(e) => Some(e),
            _ => None,
        }
    }
}

type Callback = Box<dyn FnMut(&Update)>;

struct Inner<B: Backend> {
    backend: B,
    engine: Engine<B::Catalog>,
    schemas: BTreeMap<String, TableSchema>,
    tx_id: u64,
    in_tx: bool,
}

#[derive(Default)]
struct Subscribers {
    callbacks: BTreeMap<QueryId, Vec<Option<Callback>>>,
    /// Handles dropped while the database was busy; unregistered on next use.
    dropped: Vec<QueryId>,
}

/// A live database over backend `B`.
pub struct Db<B: Backend> {
    inner: Rc<RefCell<Inner<B>>>,
    subs: Rc<RefCell<Subscribers>>,
}

fn deliver(subs: &RefCell<Subscribers>, id: QueryId, update: &Update) {
    let n = subs.borrow().callbacks.get(&id).map_or(0, Vec::len);
    for i in 0..n {
        // Take the callback out while it runs, so it may use the database.
        let cb = subs
            .borrow_mut()
            .callbacks
            .get_mut(&id)
            .and_then(|v| v.get_mut(i))
            .and_then(Option::take);
        if let Some(mut cb) = cb {
            cb(update);
            if let Some(slot) = subs
                .borrow_mut()
                .callbacks
                .get_mut(&id)
                .and_then(|v| v.get_mut(i))
            {
                *slot = Some(cb);
            }
        }
    }
}

impl<B: Backend> Db<B> {
    /// Opens a database.
    pub fn open(config: impl Into<B::Config>) -> Result<Db<B>, DbError<B::Error>> {
        let (mut backend, catalog) = B::open(config.into()).map_err(DbError::Backend)?;
        let schemas = B::registered(&catalog)
            .into_iter()
            .map(|s| (s.name().to_string(), s))
            .collect();
        let tx_id = backend.load_cv().map_err(DbError::Backend)?;
        Ok(Db {
            inner: Rc::new(RefCell::new(Inner {
                backend,
                engine: Engine::new(catalog),
                schemas,
                tx_id,
                in_tx: false,
            })),
            subs: Rc::new(RefCell::new(Subscribers::default())),
        })
    }

    fn inner(&self) -> Result<std::cell::RefMut<'_, Inner<B>>, DbError<B::Error>> {
        let mut inner = self.inner.try_borrow_mut().map_err(|_| DbError::Busy)?;
        let dropped = std::mem::take(&mut self.subs.borrow_mut().dropped);
        for id in dropped {
            inner.engine.remove_query(id);
        }
        Ok(inner)
    }

    /// Registers a table; returns its schema.
    pub fn register_table(
        &self,
        spec: impl Into<B::TableSpec>,
    ) -> Result<TableSchema, DbError<B::Error>> {
        let mut inner = self.inner()?;
        let Inner {
            backend, engine, ..
        } = &mut *inner;
        let schema = backend
            .register_table(engine.catalog_mut(), spec.into())
            .map_err(DbError::Backend)?;
        inner
            .schemas
            .insert(schema.name().to_string(), schema.clone());
        Ok(schema)
    }

    /// The schemas of the registered tables, by name.
    pub fn tables(&self) -> Vec<TableSchema> {
        self.inner.borrow().schemas.values().cloned().collect()
    }

    /// The id of the last committed write transaction (0 before the first;
    /// a backend that stores it resumes from it when reopened).
    pub fn tx_id(&self) -> u64 {
        self.inner.borrow().tx_id
    }

    /// Registers and hydrates a query. Dropping the handle unregisters it.
    pub fn query(&self, id: QueryId, ast: &Ast) -> Result<QueryHandle<B>, DbError<B::Error>> {
        let mut inner = self.inner()?;
        inner.engine.add_query(id, ast).map_err(DbError::Query)?;
        self.subs.borrow_mut().callbacks.insert(id, Vec::new());
        Ok(QueryHandle {
            id,
            inner: Rc::downgrade(&self.inner),
            subs: self.subs.clone(),
        })
    }

    /// Opens the write transaction (one at a time).
    pub fn write(&self) -> Result<WriteTx<'_, B>, DbError<B::Error>> {
        let mut inner = self.inner()?;
        if inner.in_tx {
            return Err(DbError::Busy);
        }
        let Inner {
            backend, engine, ..
        } = &mut *inner;
        if backend.maintenance_due() {
            backend
                .advance(engine.catalog_mut())
                .map_err(DbError::Backend)?;
            backend.maintain().map_err(DbError::Backend)?;
        }
        backend
            .hold(engine.catalog_mut())
            .map_err(DbError::Backend)?;
        inner.backend.begin().map_err(DbError::Backend)?;
        inner.in_tx = true;
        Ok(WriteTx {
            db: self,
            done: false,
        })
    }

    /// Runs `f` with the backend (for backend-specific reads and maintenance).
    pub fn with_backend<T>(&self, f: impl FnOnce(&mut B) -> T) -> Result<T, DbError<B::Error>> {
        let mut inner = self.inner()?;
        Ok(f(&mut inner.backend))
    }
}

/// A registered query. Dropping it unregisters the query's pipeline.
pub struct QueryHandle<B: Backend> {
    id: QueryId,
    inner: Weak<RefCell<Inner<B>>>,
    subs: Rc<RefCell<Subscribers>>,
}

impl<B: Backend> QueryHandle<B> {
    /// The query's id.
    pub fn id(&self) -> QueryId {
        self.id
    }

    /// The query's result format.
    pub fn format(&self) -> Result<std::sync::Arc<ViewFormat>, DbError<B::Error>> {
        let inner = self.inner.upgrade().ok_or(DbError::Closed)?;
        let inner = inner.try_borrow().map_err(|_| DbError::Busy)?;
        inner.engine.format(self.id).cloned().ok_or(DbError::Closed)
    }

    /// The query's current result, read from its pipeline.
    pub fn current(&self) -> Result<Vec<Node>, DbError<B::Error>> {
        let inner = self.inner.upgrade().ok_or(DbError::Closed)?;
        let mut inner = inner.try_borrow_mut().map_err(|_| DbError::Busy)?;
        match inner.engine.read(self.id) {
            Some(r) => r.map_err(|e: EngineError| DbError::Query(QueryError::Engine(e))),
            None => Err(DbError::Closed),
        }
    }

    /// Adds a subscriber: it is called at once with [`Update::Hydrated`], then
    /// with [`Update::Changed`] after every committed transaction that changes
    /// the result.
    pub fn subscribe(
        &self,
        callback: impl FnMut(&Update) + 'static,
    ) -> Result<(), DbError<B::Error>> {
        let nodes = self.current()?;
        let tx_id = self.inner.upgrade().map_or(0, |i| i.borrow().tx_id);
        let mut cb: Callback = Box::new(callback);
        cb(&Update::Hydrated {
            tx_id,
            changes: nodes.into_iter().map(Change::Add).collect(),
        });
        self.subs
            .borrow_mut()
            .callbacks
            .entry(self.id)
            .or_default()
            .push(Some(cb));
        Ok(())
    }
}

impl<B: Backend> Drop for QueryHandle<B> {
    fn drop(&mut self) {
        let mut subs = self.subs.borrow_mut();
        subs.callbacks.remove(&self.id);
        if let Some(inner) = self.inner.upgrade() {
            match inner.try_borrow_mut() {
                Ok(mut inner) => {
                    inner.engine.remove_query(self.id);
                }
                Err(_) => subs.dropped.push(self.id),
            }
        }
    }
}

/// A backend's row operation (insert, update or delete).
pub(crate) type RowOp<B> = fn(&mut B, &TableSchema, &Row) -> Result<(), <B as Backend>::Error>;

/// The row API's one path into a backend: the row is checked against its
/// table and normalized (see [`TableSchema::normalize`]) first.
pub(crate) fn write_row<B: Backend>(
    backend: &mut B,
    schema: &TableSchema,
    row: &Row,
    op: RowOp<B>,
) -> Result<(), DbError<B::Error>> {
    schema
        .check_row(row)
        .map_err(|e| DbError::Change(PushError::Change(e)))?;
    op(backend, schema, &schema.normalize(row.clone())).map_err(DbError::Backend)
}

/// The open write transaction. Dropping it without committing rolls it back.
pub struct WriteTx<'db, B: Backend> {
    db: &'db Db<B>,
    done: bool,
}

/// What a commit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The transaction's id (one more than the previous commit's).
    pub tx_id: u64,
    /// Row changes captured in registered tables.
    pub changes: usize,
    /// Queries whose result changed.
    pub queries_changed: usize,
}

impl<B: Backend> WriteTx<'_, B> {
    fn schema(&self, table: &str) -> Result<TableSchema, DbError<B::Error>> {
        self.db
            .inner
            .borrow()
            .schemas
            .get(table)
            .cloned()
            .ok_or_else(|| DbError::UnknownTable(table.into()))
    }

    fn row_op(&mut self, table: &str, row: &Row, op: RowOp<B>) -> Result<(), DbError<B::Error>> {
        let schema = self.schema(table)?;
        let mut inner = self.db.inner()?;
        write_row(&mut inner.backend, &schema, row, op)
    }

    /// Inserts a row into a registered table.
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

    /// Deletes the row with this primary key (its cells in key order).
    pub fn delete_key(&mut self, table: &str, key: &[Value]) -> Result<(), DbError<B::Error>> {
        let schema = self.schema(table)?;
        let pk = schema.primary_key();
        if key.len() != pk.len() {
            return Err(DbError::KeyWidth {
                table: table.into(),
                expected: pk.len(),
                got: key.len(),
            });
        }
        // Backends find the row by its key alone; the other cells only need
        // to pass the row check.
        let mut cells: Vec<Value> = schema
            .columns()
            .iter()
            .map(|c| match c.ty {
                _ if c.nullable => Value::Null,
                ColumnType::Integer => Value::Int(0),
                ColumnType::Real => Value::Float(0.0),
                ColumnType::Boolean => Value::Bool(false),
                _ => Value::text(""),
            })
            .collect();
        for (&i, v) in pk.iter().zip(key) {
            cells[i] = v.clone();
        }
        self.row_op(table, &Row::new(cells), B::delete)
    }

    /// Runs `f` with the backend inside this transaction (backend-specific
    /// writes, such as SQL).
    pub fn with_backend<T>(&mut self, f: impl FnOnce(&mut B) -> T) -> Result<T, DbError<B::Error>> {
        let mut inner = self.db.inner()?;
        Ok(f(&mut inner.backend))
    }

    /// Commits durably, derives every affected query's changes and delivers
    /// them to the subscribers.
    pub fn commit(mut self) -> Result<Committed, DbError<B::Error>> {
        self.done = true;
        let (tx_id, n, events) = {
            let mut inner = self.db.inner()?;
            inner.in_tx = false;
            let next = inner.tx_id + 1;
            if let Err(e) = inner.backend.store_cv(next) {
                let _ = inner.backend.rollback();
                return Err(DbError::Backend(e));
            }
            let changes = inner.backend.commit().map_err(DbError::Backend)?;
            inner.tx_id += 1;
            let tx_id = inner.tx_id;
            let n = changes.len();
            for (table, change) in changes {
                if inner.engine.push(&table, change).is_err() {
                    // The backend and the engine disagree about the table: the
                    // queries reading it can no longer be trusted.
                    for id in inner.engine.queries_reading(&table) {
                        inner.engine.fault_query(
                            id,
                            EngineError::Internal(
                                "a committed change contradicted the engine's state",
                            ),
                        );
                    }
                }
            }
            let Inner {
                backend, engine, ..
            } = &mut *inner;
            let advanced = backend.advance(engine.catalog_mut());
            let events = engine.drain();
            advanced.map_err(DbError::Backend)?;
            (tx_id, n, events)
        };
        let mut changed = 0;
        for event in events {
            match event {
                QueryEvent::Changed { query, changes } => {
                    changed += 1;
                    deliver(&self.db.subs, query, &Update::Changed { tx_id, changes });
                }
                QueryEvent::Faulted { query, error } => deliver(
                    &self.db.subs,
                    query,
                    &Update::Faulted {
                        tx_id,
                        message: error.to_string(),
                    },
                ),
                _ => {}
            }
        }
        Ok(Committed {
            tx_id,
            changes: n,
            queries_changed: changed,
        })
    }

    /// Abandons the transaction: nothing is delivered, no view changes.
    pub fn rollback(mut self) -> Result<(), DbError<B::Error>> {
        self.done = true;
        let mut inner = self.db.inner()?;
        inner.in_tx = false;
        inner.backend.rollback().map_err(DbError::Backend)
    }
}

impl<B: Backend> Drop for WriteTx<'_, B> {
    fn drop(&mut self) {
        if !self.done
            && let Ok(mut inner) = self.db.inner.try_borrow_mut()
        {
            inner.in_tx = false;
            let _ = inner.backend.rollback();
        }
    }
}
