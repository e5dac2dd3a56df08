//! redb as a Rindle backend, and the live [`Db`] over it.
//!
//! ```no_run
//! use rindle_core::{Column, ColumnType, Query, QueryId, TableSchema, col, row};
//! use rindle_redb::{Db, Update};
//!
//! let db = Db::open("app.redb")?;
//! db.register_table(TableSchema::new(
//!     "issue",
//!     vec![Column::new("id", ColumnType::Integer), Column::new("open", ColumnType::Boolean)],
//!     &["id"],
//! )?)?;
//! let open = db.query(QueryId(1), &Query::table("issue").filter(col("open").eq(true)).into_ast())?;
//! open.subscribe(|u: &Update| println!("{u:?}"))?;
//! let mut tx = db.write()?;
//! tx.insert("issue", row![1, true])?;
//! tx.commit()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! - **Storage.** Each table's rows live in a redb table `rows:<name>`, keyed
//!   by the encoded primary key, valued by the encoded row ([`format`](mod@format),
//!   versioned, its bytes pinned by a test). Schemas are declared in code and
//!   persisted in `_rindle_schema`; a reopened database registers them again
//!   by itself.
//! - **Writes.** The backend's own write path (the row API of
//!   [`rindle_replica::WriteTx`]) reads the stored row inside the redb write
//!   transaction, writes the new one, and records the change; commit is redb's
//!   durable commit, after which the recorded changes are pushed through the
//!   live queries.
//! - **Reads.** Each table's source loads the table once, from a redb read
//!   transaction (an MVCC snapshot, so a load never sees half a commit), into
//!   core's ordered in-memory indexes, one per order and correlation the
//!   queries ask for, and then stays current by taking each committed change
//!   as the engine applies it — the state the engine expects while it pushes a
//!   commit, and the committed state after. The alternative, secondary
//!   indexes stored in redb and maintained in each write transaction, would
//!   make every fetch a B-tree walk plus a decode and every write several
//!   index updates; the engine's incremental reads are latency-bound, so the
//!   rows it reads stay decoded in memory and redb holds what must survive.
//!   The cost is memory proportional to the registered tables, and a load at
//!   open.
//!
//!   Measured with `cargo run --release -p rindle-redb --example measure` on
//!   the benchmark machine (2 cores), 50,000 comment rows: one transaction
//!   writing them 205 ms; reopening and loading them 33 ms; a point read 662 ns
//!   from redb with decoding against 440 ns from the memory index; the
//!   engine's typical incremental read — the first 3 comments of one issue in
//!   a non-key order — 104 ns from the memory index, where redb without a
//!   stored secondary index needs a 6 ms scan, and with one would still pay a
//!   B-tree walk and a decode per row (≥ 0.66 µs each).

pub mod format;

mod backend;

use std::fmt;

pub use backend::{RedbBackend, RedbCatalog};
pub use rindle_replica::{Committed, QueryId, Update};

/// The live database over redb.
pub type Db = rindle_replica::Db<RedbBackend>;
/// A query registered on a [`Db`].
pub type QueryHandle = rindle_replica::QueryHandle<RedbBackend>;
/// The open write transaction of a [`Db`].
pub type WriteTx<'db> = rindle_replica::WriteTx<'db, RedbBackend>;
/// Errors of [`Db`] operations.
pub type DbError = rindle_replica::DbError<RedbError>;

/// What went wrong in the redb backend.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedbError {
    /// redb failed (I/O, a full disk, a corrupt file).
    Redb(redb::Error),
    /// Stored bytes do not decode.
    Corrupt {
        /// What was being decoded.
        what: &'static str,
    },
    /// A table is registered again with a different schema.
    SchemaMismatch {
        /// The table.
        table: String,
    },
    /// The row API inserted a key that is present.
    DuplicateKey {
        /// The table.
        table: String,
    },
    /// The row API named a row that is not there.
    NoSuchRow {
        /// The table.
        table: String,
    },
    /// A write outside a write transaction, or registration inside one.
    NoTransaction,
    /// Tables cannot be registered while a transaction is open.
    Busy,
}

impl fmt::Display for RedbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedbError::Redb(e) => write!(f, "redb: {e}"),
            RedbError::Corrupt { what } => write!(f, "stored {what} does not decode"),
            RedbError::SchemaMismatch { table } => write!(
                f,
                "table `{table}` is stored with a different schema than the one registered"
            ),
            RedbError::DuplicateKey { table } => {
                write!(f, "table `{table}` already has a row with that primary key")
            }
            RedbError::NoSuchRow { table } => {
                write!(f, "table `{table}` has no row with that primary key")
            }
            RedbError::NoTransaction => f.write_str("no write transaction is open"),
            RedbError::Busy => f.write_str("a write transaction is open"),
        }
    }
}

impl std::error::Error for RedbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedbError::Redb(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: Into<redb::Error>> From<E> for RedbError {
    fn from(e: E) -> Self {
        RedbError::Redb(e.into())
    }
}
