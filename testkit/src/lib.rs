//! Rindle's proof machinery, shared by every crate's tests.
//!
//! - [`oracle`]: an AST compiled into one SQLite `SELECT` returning the whole
//!   nested result as JSON — the fresh-query answer, written independently of
//!   the engine;
//! - [`generate`]: proptest generators for schemas with relationships, rows, queries
//!   inside the supported subset, and write streams;
//! - [`harness`]: runs a [`harness::Subject`] (memory, and later SQLite, redb,
//!   the Cluster, the daemon) against the oracle after hydration and after every
//!   transaction, and reports a minimized mismatch;
//! - [`conformance`]: the `Source` conformance suite every backend must pass;
//! - [`dataset`]: the issue tracker of BENCHMARKS.md at every scale;
//! - [`normalized`]: the normalized protocol end to end (fold, framing,
//!   encodings, subscriber copies, local re-derivation) as a subject;
//! - [`cluster`]: the multi-threaded Cluster as a subject, `n` workers;
//! - [`backends`]: SQLite (writing real SQL) and redb (the row API) as subjects;
//! - [`data`] and [`render`]: the backend-neutral JSON forms of tables, writes
//!   and results, shared with the `rindle-scenario` runner.

pub mod backends;
pub mod cluster;
pub mod conformance;
pub mod data;
pub mod dataset;
pub mod generate;
pub mod harness;
pub mod normalized;
pub mod oracle;
pub mod render;

pub use backends::{MemoryDbSubject, RedbSubject, SqliteSubject};
pub use data::{DataError, Model, Scenario, TableData, Write, WriteOp};
pub use dataset::{IssueTracker, Scale};
pub use generate::{CaseConfig, QueryConfig, SchemaConfig};
pub use harness::{MemorySubject, Mismatch, Subject, SubjectError, check_subject, run_case};
pub use normalized::NormalizedSubject;
pub use oracle::{Oracle, OracleError};
