//! Rindle's C ABI: open a database (memory, SQLite file, redb file), register
//! tables, register live queries from AST JSON, subscribe with a callback that
//! receives each update as JSON, write (SQL on SQLite; the row API on every
//! backend), read a view as JSON.
//!
//! This module is the safe layer every C entry point calls; the entry points
//! themselves, and all unsafe code, are in `ffi` (see `include/rindle.h`).
//! JSON shapes are documented in the crate README.

mod ffi;

use std::cell::Cell;
use std::sync::Arc;

use rindle_core::{Ast, Change, ChangeJson, QueryId, ResultJson, RowSeed, Value, ViewFormat};
use rindle_redb::{RedbBackend, RedbError};
use rindle_replica::memory::{MemoryBackend, MemoryError};
use rindle_replica::{Backend, Db, DbError, QueryHandle, Update};
use rindle_sqlite::{SqlWrite, SqliteBackend, SqliteError};
use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub use ffi::*;

/// What a call returned: `RINDLE_OK` (0) or the kind of failure; the message
/// is in `rindle_last_error()`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RindleStatus {
    /// Success.
    RindleOk = 0,
    /// A null pointer, a string that is not UTF-8, or an argument out of range.
    RindleErrArgument = 1,
    /// Malformed JSON, or JSON of the wrong shape.
    RindleErrJson = 2,
    /// The query names an unknown table or column, or is of an unsupported shape.
    RindleErrQuery = 3,
    /// A row does not fit its table: unknown column, wrong type, null in a
    /// NOT NULL column, wrong width.
    RindleErrRow = 4,
    /// A duplicate primary key, or no row with the key to update or delete.
    RindleErrConstraint = 5,
    /// SQLite refused the SQL.
    RindleErrSql = 6,
    /// The operation is not available on this backend (SQL on memory or redb).
    RindleErrUnsupported = 7,
    /// The database is in use (a call from inside a subscription callback
    /// that needs the database).
    RindleErrBusy = 8,
    /// The handle was used on a thread other than the one that opened its
    /// database.
    RindleErrThread = 9,
    /// The table definition was refused, or the table is not registered.
    RindleErrSchema = 10,
    /// Storage failed (I/O, a corrupt file).
    RindleErrStorage = 11,
    /// A bug in Rindle (a caught panic); the handle should be closed.
    RindleErrInternal = 12,
}

/// A failure: its status and message.
#[derive(Debug, Clone)]
pub struct Error {
    /// The kind.
    pub status: RindleStatus,
    /// What went wrong, for people.
    pub message: String,
}

impl Error {
    fn new(status: RindleStatus, message: impl std::fmt::Display) -> Error {
        Error {
            status,
            message: message.to_string(),
        }
    }

    fn json(e: serde_json::Error) -> Error {
        Error::new(RindleStatus::RindleErrJson, e)
    }
}

/// How each backend's errors map to statuses.
trait Classify: std::fmt::Display {
    fn status(&self) -> RindleStatus;
}

impl Classify for MemoryError {
    fn status(&self) -> RindleStatus {
        match self {
            MemoryError::DuplicateKey { .. } | MemoryError::NoSuchRow { .. } => {
                RindleStatus::RindleErrConstraint
            }
            MemoryError::Busy | MemoryError::NoTransaction => RindleStatus::RindleErrBusy,
            _ => RindleStatus::RindleErrSchema,
        }
    }
}

impl Classify for SqliteError {
    fn status(&self) -> RindleStatus {
        match self {
            SqliteError::Sqlite(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
            {
                RindleStatus::RindleErrConstraint
            }
            SqliteError::Sqlite(_) | SqliteError::NotReadOnly => RindleStatus::RindleErrSql,
            SqliteError::NoSuchRow { .. } => RindleStatus::RindleErrConstraint,
            SqliteError::Value { .. } => RindleStatus::RindleErrRow,
            SqliteError::Refused { .. } => RindleStatus::RindleErrSchema,
            SqliteError::Busy | SqliteError::NoTransaction => RindleStatus::RindleErrBusy,
            _ => RindleStatus::RindleErrStorage,
        }
    }
}

impl Classify for RedbError {
    fn status(&self) -> RindleStatus {
        match self {
            RedbError::DuplicateKey { .. } | RedbError::NoSuchRow { .. } => {
                RindleStatus::RindleErrConstraint
            }
            RedbError::SchemaMismatch { .. } => RindleStatus::RindleErrSchema,
            RedbError::Busy | RedbError::NoTransaction => RindleStatus::RindleErrBusy,
            _ => RindleStatus::RindleErrStorage,
        }
    }
}

impl<E: Classify> From<DbError<E>> for Error {
    fn from(e: DbError<E>) -> Error {
        let status = match &e {
            DbError::Backend(b) => b.status(),
            DbError::Query(_) => RindleStatus::RindleErrQuery,
            DbError::Change(_) | DbError::KeyWidth { .. } => RindleStatus::RindleErrRow,
            DbError::UnknownTable(_) => RindleStatus::RindleErrSchema,
            DbError::Busy | DbError::Closed => RindleStatus::RindleErrBusy,
            _ => RindleStatus::RindleErrInternal,
        };
        Error::new(status, e)
    }
}

enum AnyDb {
    Memory(Db<MemoryBackend>),
    Sqlite(Db<SqliteBackend>),
    Redb(Db<RedbBackend>),
}

enum AnyHandle {
    Memory(QueryHandle<MemoryBackend>),
    Sqlite(QueryHandle<SqliteBackend>),
    Redb(QueryHandle<RedbBackend>),
}

/// An open database of any backend.
pub struct Database {
    db: AnyDb,
    next_query: Cell<u64>,
}

/// A registered live query.
pub struct LiveQuery {
    handle: AnyHandle,
    format: Arc<ViewFormat>,
}

/// A table definition: `{"name": ..., "columns": [{"name", "type",
/// "nullable"}], "primaryKey": [...]}` for memory and redb; `{"name": ...,
/// "createSql": ...}` (or the name of an existing table) for SQLite.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TableDef {
    name: String,
    #[serde(default)]
    columns: Option<Vec<rindle_core::Column>>,
    #[serde(default)]
    primary_key: Option<Vec<String>>,
    #[serde(default)]
    create_sql: Option<String>,
}

impl TableDef {
    fn schema(&self) -> Result<rindle_core::TableSchema, Error> {
        let (Some(columns), Some(pk)) = (&self.columns, &self.primary_key) else {
            return Err(Error::new(
                RindleStatus::RindleErrSchema,
                format!(
                    "table `{}`: this backend needs \"columns\" and \"primaryKey\"",
                    self.name
                ),
            ));
        };
        if self.create_sql.is_some() {
            return Err(Error::new(
                RindleStatus::RindleErrUnsupported,
                "\"createSql\" is for SQLite databases",
            ));
        }
        let pk: Vec<&str> = pk.iter().map(String::as_str).collect();
        rindle_core::TableSchema::new(&self.name, columns.clone(), &pk)
            .map_err(|e| Error::new(RindleStatus::RindleErrSchema, e))
    }
}

/// One write of the row API.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteOp {
    op: OpKind,
    table: String,
    row: Json,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum OpKind {
    Insert,
    Update,
    Delete,
}

fn apply_ops<B: Backend>(db: &Db<B>, ops: &[WriteOp]) -> Result<u64, Error>
where
    B::Error: Classify,
{
    let tables = db.tables();
    let mut tx = db.write()?;
    for op in ops {
        let schema = tables
            .iter()
            .find(|t| t.name() == op.table)
            .ok_or_else(|| {
                Error::new(
                    RindleStatus::RindleErrSchema,
                    format!("table `{}` is not registered", op.table),
                )
            })?;
        let row = RowSeed::new(schema)
            .deserialize(&op.row)
            .map_err(|e| Error::new(RindleStatus::RindleErrRow, e))?;
        match op.op {
            OpKind::Insert => tx.insert(&op.table, row)?,
            OpKind::Update => tx.update(&op.table, row)?,
            OpKind::Delete => tx.delete_key(&op.table, &schema.key_of(&row))?,
        }
    }
    // Dropping `tx` on an error above rolls the whole batch back.
    Ok(tx.commit()?.tx_id)
}

fn register<B: Backend>(db: &Db<B>, spec: B::TableSpec) -> Result<(), Error>
where
    B::Error: Classify,
{
    db.register_table(spec)?;
    Ok(())
}

fn add_query<B: Backend>(
    db: &Db<B>,
    id: QueryId,
    ast: &Ast,
) -> Result<(QueryHandle<B>, Arc<ViewFormat>), Error>
where
    B::Error: Classify,
{
    let handle = db.query(id, ast)?;
    let format = handle.format()?;
    Ok((handle, format))
}

impl Database {
    fn new(db: AnyDb) -> Database {
        Database {
            db,
            next_query: Cell::new(1),
        }
    }

    /// A database in memory: nothing persists.
    pub fn open_memory() -> Result<Database, Error> {
        Ok(Database::new(AnyDb::Memory(Db::open(())?)))
    }

    /// The SQLite database at `path` (created when missing).
    pub fn open_sqlite(path: &str) -> Result<Database, Error> {
        Ok(Database::new(AnyDb::Sqlite(Db::open(path)?)))
    }

    /// The redb database at `path` (created when missing).
    pub fn open_redb(path: &str) -> Result<Database, Error> {
        Ok(Database::new(AnyDb::Redb(Db::open(
            std::path::PathBuf::from(path),
        )?)))
    }

    /// Registers a table from its JSON definition (see [`Database`]'s
    /// module docs and the README).
    pub fn register_table(&self, json: &str) -> Result<(), Error> {
        let def: TableDef = serde_json::from_str(json).map_err(Error::json)?;
        match &self.db {
            AnyDb::Memory(db) => register(db, def.schema()?),
            AnyDb::Redb(db) => register(db, def.schema()?),
            AnyDb::Sqlite(db) => {
                if def.columns.is_some() || def.primary_key.is_some() {
                    return Err(Error::new(
                        RindleStatus::RindleErrUnsupported,
                        "SQLite tables are declared in SQL: give \"createSql\" or create the table first",
                    ));
                }
                if let Some(sql) = &def.create_sql {
                    let mut tx = db.write()?;
                    tx.execute_batch(sql)?;
                    tx.commit()?;
                }
                register(db, def.name)
            }
        }
    }

    /// Runs SQL in one committed transaction (SQLite only): with `params` (a
    /// JSON array of scalars) one statement, without them any number of
    /// `;`-separated statements. Returns the transaction id.
    pub fn execute_sql(&self, sql: &str, params: Option<&str>) -> Result<u64, Error> {
        let AnyDb::Sqlite(db) = &self.db else {
            return Err(Error::new(
                RindleStatus::RindleErrUnsupported,
                "SQL runs on SQLite databases; use rindle_write on this one",
            ));
        };
        let params: Option<Vec<Value>> = params
            .map(|p| serde_json::from_str(p).map_err(Error::json))
            .transpose()?;
        let mut tx = db.write()?;
        match params {
            Some(params) => {
                tx.execute(sql, &params)?;
            }
            None => tx.execute_batch(sql)?,
        }
        Ok(tx.commit()?.tx_id)
    }

    /// Applies a JSON array of row writes (`{"op": "insert" | "update" |
    /// "delete", "table": ..., "row": {...} | [...]}`) in one transaction,
    /// all or none. Returns the transaction id.
    pub fn write(&self, json: &str) -> Result<u64, Error> {
        let ops: Vec<WriteOp> = serde_json::from_str(json).map_err(Error::json)?;
        match &self.db {
            AnyDb::Memory(db) => apply_ops(db, &ops),
            AnyDb::Sqlite(db) => apply_ops(db, &ops),
            AnyDb::Redb(db) => apply_ops(db, &ops),
        }
    }

    /// Registers and hydrates a live query from its AST JSON (QUERY.md).
    pub fn query(&self, ast_json: &str) -> Result<LiveQuery, Error> {
        let ast: Ast = serde_json::from_str(ast_json).map_err(Error::json)?;
        let id = QueryId(self.next_query.get());
        self.next_query.set(id.0 + 1);
        let (handle, format) = match &self.db {
            AnyDb::Memory(db) => {
                let (h, f) = add_query(db, id, &ast)?;
                (AnyHandle::Memory(h), f)
            }
            AnyDb::Sqlite(db) => {
                let (h, f) = add_query(db, id, &ast)?;
                (AnyHandle::Sqlite(h), f)
            }
            AnyDb::Redb(db) => {
                let (h, f) = add_query(db, id, &ast)?;
                (AnyHandle::Redb(h), f)
            }
        };
        Ok(LiveQuery { handle, format })
    }
}

/// An update as JSON: `{"type":"hydrated","txId":n,"data":[...]}`,
/// `{"type":"changed","txId":n,"changes":[...]}` or
/// `{"type":"faulted","txId":n,"message":"..."}`.
pub fn update_json(format: &ViewFormat, update: &Update) -> String {
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "camelCase")]
    enum Out<'a> {
        Hydrated {
            #[serde(rename = "txId")]
            tx_id: u64,
            data: ResultJson<'a>,
        },
        Changed {
            #[serde(rename = "txId")]
            tx_id: u64,
            changes: Vec<ChangeJson<'a>>,
        },
        Faulted {
            #[serde(rename = "txId")]
            tx_id: u64,
            message: &'a str,
        },
    }
    let nodes: Vec<_>;
    let out = match update {
        Update::Hydrated { tx_id, changes } => {
            nodes = changes
                .iter()
                .filter_map(|c| match c {
                    Change::Add(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            Out::Hydrated {
                tx_id: *tx_id,
                data: ResultJson::new(format, &nodes),
            }
        }
        Update::Changed { tx_id, changes } => Out::Changed {
            tx_id: *tx_id,
            changes: changes.iter().map(|c| ChangeJson::new(format, c)).collect(),
        },
        Update::Faulted { tx_id, message } => Out::Faulted {
            tx_id: *tx_id,
            message,
        },
        _ => Out::Faulted {
            tx_id: 0,
            message: "an update this binding does not know",
        },
    };
    serde_json::to_string(&out).unwrap_or_default()
}

impl LiveQuery {
    /// Calls `callback` with the hydrated result now, then with every change.
    pub fn subscribe(&self, mut callback: impl FnMut(&str) + 'static) -> Result<(), Error> {
        let format = self.format.clone();
        let f = move |u: &Update| callback(&update_json(&format, u));
        match &self.handle {
            AnyHandle::Memory(h) => h.subscribe(f)?,
            AnyHandle::Sqlite(h) => h.subscribe(f)?,
            AnyHandle::Redb(h) => h.subscribe(f)?,
        }
        Ok(())
    }

    /// The query's current result as JSON.
    pub fn read(&self) -> Result<String, Error> {
        let nodes = match &self.handle {
            AnyHandle::Memory(h) => h.current()?,
            AnyHandle::Sqlite(h) => h.current()?,
            AnyHandle::Redb(h) => h.current()?,
        };
        serde_json::to_string(&ResultJson::new(&self.format, &nodes)).map_err(Error::json)
    }
}
