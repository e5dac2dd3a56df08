//! Rindle's engine: live queries kept current by incremental view maintenance.
//!
//! A query ([`Ast`], from the wire JSON or the [`Query`] builder) is lowered once
//! into a graph of incremental operators ([`build_pipeline`]), hydrated, and from
//! then on every base-table change pushed into the [`Engine`] updates its result
//! by the difference, never by re-running the query. The contract:
//! **view-after-write == fresh-query**.
//!
//! The crate is `no_std` + `alloc`: no I/O, no clock, no threads. Tables are read
//! through the [`Source`] trait ([`MemorySource`] here; SQLite and redb in their
//! backend crates), writes come in as [`SourceChange`] values and results come out
//! as [`Change`] values, which a [`View`] materializes.
//!
//! ```
//! use rindle_core::*;
//!
//! let mut catalog = MemoryCatalog::new();
//! catalog.add_table(TableSchema::new(
//!     "issue",
//!     vec![
//!         Column::new("id", ColumnType::Integer),
//!         Column::new("title", ColumnType::Text),
//!         Column::new("open", ColumnType::Boolean),
//!     ],
//!     &["id"],
//! )?)?;
//! catalog.insert("issue", row![1, "crash on start", true])?;
//! catalog.insert("issue", row![2, "typo", false])?;
//!
//! let mut engine = Engine::new(catalog);
//! let ast: Ast = serde_json::from_str(
//!     r#"{"table":"issue","where":{"type":"simple","op":"=",
//!         "left":{"type":"column","name":"open"},"right":{"type":"literal","value":true}}}"#,
//! )?;
//! let nodes = engine.add_query(QueryId(1), &ast)?;
//! let mut view = View::hydrated(engine.format(QueryId(1)).unwrap().clone(), &nodes)?;
//! assert_eq!(view.len(), 1);
//!
//! engine.push("issue", SourceChange::Edit { old: row![2, "typo", false], new: row![2, "typo", true] })?;
//! for event in engine.drain() {
//!     if let QueryEvent::Changed { changes, .. } = event {
//!         view.apply_all(&changes)?;
//!     }
//! }
//! assert_eq!(view.rows().map(|r| r[0].clone()).collect::<Vec<_>>(), [Value::Int(1), Value::Int(2)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

mod ast;
mod build;
mod change;
mod engine;
mod error;
mod float;
mod json;
mod operator;
mod ordering;
mod predicate;
pub mod protocol;
pub mod read;
mod schema;
mod source;
mod value;
mod view;

pub use ast::{
    Aggregate, Ast, Bound, Condition, CorrelatedSubquery, Correlation, Direction, ExistsOp,
    Literal, Query, SimpleOp, StaticField, ValuePosition, and, col, exists, not_exists, or,
};
pub use build::{LevelKind, MAX_AST_DEPTH, Pipeline, ViewFormat, build_pipeline};
pub use change::{Change, Node, SourceChange};
pub use engine::{ChangeMode, Engine, Isolate, QueryEvent, QueryId};
pub use error::{
    BuildError, ChangeError, EngineError, PushError, QueryError, SchemaError, SourceError,
    ViewError,
};
pub use json::{ChangeJson, ResultJson, RowSeed};
pub use ordering::SortOrder;
pub use predicate::{CompareOp, LikePattern, Predicate};
pub use read::{Json, ReadError};
pub use schema::{Column, ColumnType, TableSchema};
pub use source::{
    Catalog, FetchRequest, MemoryCatalog, MemorySource, Source, Start, StartBasis, TableId,
};
pub use value::{COMPARATOR_VERSION, Row, Value, ValueKind};
pub use view::{Entry, ListenerId, View};

#[doc(hidden)]
pub mod __private {
    pub use alloc::vec;
}
