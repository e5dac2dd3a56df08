//! SQLite as a Rindle backend, and the live [`Db`] over it.
//!
//! - Reads: each registered table is a [`rindle_core::Source`] answering the
//!   engine's ordered fetches with SQL (constraint, start bound, direction;
//!   prepared statements cached) on a read-only connection pinned to the last
//!   committed snapshot, overlaid with the changes the engine has already
//!   applied during the commit it is deriving.
//! - Writes: one writer connection in WAL mode (`synchronous=NORMAL`); every
//!   row change to a registered table is captured by SQLite's preupdate hook as
//!   it happens — INSERT, UPDATE (of the key too), DELETE, the deletes of
//!   INSERT OR REPLACE, UPSERT, cascades — and pushed through the live queries
//!   after the commit is durable.
//!
//! ```no_run
//! use rindle_sqlite::{Db, SqlWrite, Update};
//! use rindle_core::{Query, QueryId, col};
//!
//! let db = Db::open("app.db")?;
//! let mut tx = db.write()?;
//! tx.execute_batch("CREATE TABLE IF NOT EXISTS issue (id INTEGER PRIMARY KEY, title TEXT, open BOOLEAN)")?;
//! tx.commit()?;
//! db.register_table("issue")?;
//!
//! let open = db.query(QueryId(1), &Query::table("issue").filter(col("open").eq(true)).into_ast())?;
//! open.subscribe(|u: &Update| println!("{u:?}"))?;
//!
//! let mut tx = db.write()?;
//! tx.execute("INSERT INTO issue VALUES (?1, ?2, ?3)", &[1.into(), "crash".into(), true.into()])?;
//! tx.commit()?; // the subscriber gets Changed { tx_id: 2, changes: [Add(..)] }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Stored values are read by the column's declared type (INTEGER, REAL, TEXT,
//! BOOLEAN as 0 / 1, JSON as text). SQLite does not keep the sign of a zero in
//! a REAL column, so -0.0 reads (and is captured) as 0.0.

mod backend;
mod convert;
mod plain;
mod source;

use std::fmt;

pub use backend::{DEFAULT_WAL_MAX_BYTES, SqliteBackend, WalStats};
pub use plain::{ReadLimits, ReadOnly, Rows, checkpoint, wal_size};
pub use rindle_replica::{Committed, QueryId, Update};
pub use source::{SqliteCatalog, SqliteSource, open_source};

/// The live database over SQLite.
pub type Db = rindle_replica::Db<SqliteBackend>;
/// A query registered on a [`Db`].
pub type QueryHandle = rindle_replica::QueryHandle<SqliteBackend>;
/// The open write transaction of a [`Db`].
pub type WriteTx<'db> = rindle_replica::WriteTx<'db, SqliteBackend>;
/// Errors of [`Db`] operations.
pub type DbError = rindle_replica::DbError<SqliteError>;

/// What went wrong in the SQLite backend.
#[derive(Debug)]
#[non_exhaustive]
pub enum SqliteError {
    /// SQLite refused (bad SQL, a constraint, I/O).
    Sqlite(rusqlite::Error),
    /// A table cannot be registered (no primary key, triggers, generated
    /// columns, an unsupported column type, ...); names the table and why.
    Refused {
        /// The table (or the database file).
        table: String,
        /// Why.
        reason: String,
    },
    /// A stored value does not fit its column's declared type.
    Value {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// What is stored.
        reason: String,
    },
    /// The row API named a row that is not there.
    NoSuchRow {
        /// The table.
        table: String,
    },
    /// SQL was given outside a write transaction.
    NoTransaction,
    /// Tables cannot be registered while a transaction is open.
    Busy,
    /// A statement given to a read-only connection would write, change the
    /// schema, attach a database or control transactions.
    NotReadOnly,
    /// The statement does something its author may not do (names what and
    /// why); it was refused before it ran.
    NotPermitted(String),
    /// A read ran past its time limit and was interrupted.
    TimedOut {
        /// The limit.
        limit: std::time::Duration,
    },
    /// A read's result was over a limit (`what` is "rows" or "bytes").
    ResultTooLarge {
        /// What was counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqliteError::Sqlite(e) => write!(f, "sqlite: {e}"),
            SqliteError::Refused { table, reason } => {
                write!(f, "table `{table}` cannot be used: {reason}")
            }
            SqliteError::Value {
                table,
                column,
                reason,
            } => write!(f, "column `{column}` of table `{table}` {reason}"),
            SqliteError::NoSuchRow { table } => {
                write!(f, "table `{table}` has no row with that primary key")
            }
            SqliteError::NoTransaction => f.write_str("no write transaction is open"),
            SqliteError::Busy => f.write_str("a write transaction is open"),
            SqliteError::NotReadOnly => {
                f.write_str("only reading statements are allowed on a read-only connection")
            }
            SqliteError::NotPermitted(why) => write!(f, "statement not permitted: {why}"),
            SqliteError::TimedOut { limit } => write!(
                f,
                "the statement ran longer than the limit of {} ms and was interrupted",
                limit.as_millis()
            ),
            SqliteError::ResultTooLarge { what, limit } => {
                write!(f, "the result has more than the limit of {limit} {what}")
            }
        }
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SqliteError::Sqlite(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for SqliteError {
    fn from(e: rusqlite::Error) -> Self {
        SqliteError::Sqlite(e)
    }
}

/// SQL on a [`WriteTx`] over SQLite.
pub trait SqlWrite {
    /// Runs one statement with parameters; returns the rows it changed. A
    /// failing statement is undone alone and the transaction stays usable.
    fn execute(&mut self, sql: &str, params: &[rindle_core::Value]) -> Result<usize, DbError>;

    /// Runs `;`-separated statements without parameters, all or none.
    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError>;
}

impl SqlWrite for WriteTx<'_> {
    fn execute(&mut self, sql: &str, params: &[rindle_core::Value]) -> Result<usize, DbError> {
        self.with_backend(|b| b.execute(sql, params))?
            .map_err(rindle_replica::DbError::Backend)
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.with_backend(|b| b.execute_batch(sql))?
            .map_err(rindle_replica::DbError::Backend)
    }
}
