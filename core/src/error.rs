//! Typed errors, one enum per concern.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use crate::schema::ColumnType;
use crate::value::{Cells, Value};

/// A table schema that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaError {
    /// The table has no columns.
    NoColumns {
        /// The table.
        table: String,
    },
    /// Two columns share a name (or a key column is listed twice).
    DuplicateColumn {
        /// The table.
        table: String,
        /// The repeated name.
        column: String,
    },
    /// The table has no primary key.
    NoPrimaryKey {
        /// The table.
        table: String,
    },
    /// A primary-key column is not a column of the table.
    UnknownKeyColumn {
        /// The table.
        table: String,
        /// The missing column.
        column: String,
    },
    /// A catalog already has a table of that name.
    DuplicateTable {
        /// The table.
        table: String,
    },
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::NoColumns { table } => write!(f, "table `{table}` has no columns"),
            SchemaError::DuplicateColumn { table, column } => {
                write!(f, "table `{table}` names column `{column}` twice")
            }
            SchemaError::NoPrimaryKey { table } => write!(f, "table `{table}` has no primary key"),
            SchemaError::UnknownKeyColumn { table, column } => write!(
                f,
                "primary key of table `{table}` names `{column}`, which is not a column"
            ),
            SchemaError::DuplicateTable { table } => write!(f, "table `{table}` already exists"),
        }
    }
}

impl core::error::Error for SchemaError {}

/// A query that cannot be lowered into an operator graph.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The AST names a table the catalog does not have.
    UnknownTable {
        /// The table.
        table: String,
    },
    /// The AST names a column its level's table does not have.
    UnknownColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Where the name appeared (`orderBy`, `where`, `start`, ...).
        place: &'static str,
    },
    /// A relationship alias is missing or used twice on one level.
    UnknownRelationship {
        /// The table of the level.
        table: String,
        /// The alias, as given.
        alias: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A condition that is not well formed.
    InvalidCondition {
        /// The table of the level.
        table: String,
        /// What is wrong, naming the column or operator.
        reason: String,
    },
    /// A well-formed query of a shape this engine does not maintain.
    Unsupported {
        /// The table of the level.
        table: String,
        /// Which shape, and why.
        reason: String,
    },
    /// The AST nests deeper than [`crate::MAX_AST_DEPTH`].
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::UnknownTable { table } => write!(f, "unknown table `{table}`"),
            BuildError::UnknownColumn {
                table,
                column,
                place,
            } => write!(f, "unknown column `{column}` of table `{table}` in {place}"),
            BuildError::UnknownRelationship {
                table,
                alias,
                reason,
            } => write!(f, "relationship `{alias}` on table `{table}`: {reason}"),
            BuildError::InvalidCondition { table, reason } => {
                write!(f, "invalid condition on table `{table}`: {reason}")
            }
            BuildError::Unsupported { table, reason } => {
                write!(f, "unsupported query shape on table `{table}`: {reason}")
            }
            BuildError::TooDeep { limit } => {
                write!(f, "query nests deeper than the limit of {limit} levels")
            }
        }
    }
}

impl core::error::Error for BuildError {}

/// A change refused at ingest; nothing was applied.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ChangeError {
    /// The change names a table the catalog does not have.
    UnknownTable {
        /// The table.
        table: String,
    },
    /// A row with the wrong number of cells.
    RowWidth {
        /// The table.
        table: Arc<str>,
        /// The table's column count.
        expected: usize,
        /// The row's cell count.
        got: usize,
    },
    /// A cell whose value does not fit its column.
    CellType {
        /// The table.
        table: Arc<str>,
        /// The column.
        column: String,
        /// The column's type.
        expected: ColumnType,
        /// Whether the column admits null.
        nullable: bool,
        /// The offending value.
        got: Value,
    },
    /// An Add of a primary key that is already present.
    DuplicateKey {
        /// The table.
        table: Arc<str>,
        /// The key.
        key: Vec<Value>,
    },
    /// A Remove or Edit of a row that is not present.
    MissingRow {
        /// The table.
        table: Arc<str>,
        /// The key.
        key: Vec<Value>,
    },
    /// A Remove or Edit whose old row differs from the stored row of that key.
    RowMismatch {
        /// The table.
        table: Arc<str>,
        /// The key.
        key: Vec<Value>,
    },
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::UnknownTable { table } => write!(f, "unknown table `{table}`"),
            ChangeError::RowWidth {
                table,
                expected,
                got,
            } => write!(
                f,
                "row for table `{table}` has {got} cells, the table has {expected} columns"
            ),
            ChangeError::CellType {
                table,
                column,
                expected,
                nullable,
                got,
            } => {
                let null = if *nullable { "" } else { " not null" };
                write!(
                    f,
                    "value {got:?} does not fit column `{column}` ({expected}{null}) of table `{table}`"
                )
            }
            ChangeError::DuplicateKey { table, key } => {
                write!(
                    f,
                    "table `{table}` already has a row with key {}",
                    Cells(key)
                )
            }
            ChangeError::MissingRow { table, key } => {
                write!(f, "table `{table}` has no row with key {}", Cells(key))
            }
            ChangeError::RowMismatch { table, key } => write!(
                f,
                "the old row given for key {} of table `{table}` differs from the stored row",
                Cells(key)
            ),
        }
    }
}

impl core::error::Error for ChangeError {}

/// An error reported by a [`crate::Source`] implementation.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceError {
    /// The backend failed (I/O, SQL, corruption); the payload says how.
    Backend(Box<dyn core::error::Error + Send + Sync>),
    /// The backend's stored state contradicts a change the engine applied.
    Inconsistent {
        /// The table.
        table: Arc<str>,
        /// What contradicted.
        reason: &'static str,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Backend(e) => write!(f, "storage backend error: {e}"),
            SourceError::Inconsistent { table, reason } => {
                write!(f, "table `{table}` is inconsistent: {reason}")
            }
        }
    }
}

impl core::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SourceError::Backend(e) => Some(&**e),
            SourceError::Inconsistent { .. } => None,
        }
    }
}

/// A failure while hydrating or pushing through a pipeline.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineError {
    /// The source failed.
    Source(SourceError),
    /// An operator found its own invariant broken: a bug in the engine.
    Internal(&'static str),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Source(e) => write!(f, "{e}"),
            EngineError::Internal(what) => write!(f, "internal engine error: {what}"),
        }
    }
}

impl core::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            EngineError::Source(e) => Some(e),
            EngineError::Internal(_) => None,
        }
    }
}

impl From<SourceError> for EngineError {
    fn from(e: SourceError) -> Self {
        EngineError::Source(e)
    }
}

/// Why a query could not be added to an [`crate::Engine`].
#[derive(Debug)]
#[non_exhaustive]
pub enum QueryError {
    /// The AST did not lower.
    Build(BuildError),
    /// Hydration failed.
    Engine(EngineError),
    /// A query with that id is already registered.
    DuplicateId(crate::QueryId),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Build(e) => write!(f, "{e}"),
            QueryError::Engine(e) => write!(f, "{e}"),
            QueryError::DuplicateId(id) => write!(f, "query {} is already registered", id.0),
        }
    }
}

impl core::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            QueryError::Build(e) => Some(e),
            QueryError::Engine(e) => Some(e),
            QueryError::DuplicateId(_) => None,
        }
    }
}

impl From<BuildError> for QueryError {
    fn from(e: BuildError) -> Self {
        QueryError::Build(e)
    }
}

impl From<EngineError> for QueryError {
    fn from(e: EngineError) -> Self {
        QueryError::Engine(e)
    }
}

/// Why a change could not be pushed; nothing was applied.
#[derive(Debug)]
#[non_exhaustive]
pub enum PushError {
    /// The change was refused by validation.
    Change(ChangeError),
    /// The source failed while the change was checked or stored.
    Source(SourceError),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Change(e) => write!(f, "{e}"),
            PushError::Source(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for PushError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            PushError::Change(e) => Some(e),
            PushError::Source(e) => Some(e),
        }
    }
}

impl From<ChangeError> for PushError {
    fn from(e: ChangeError) -> Self {
        PushError::Change(e)
    }
}

impl From<SourceError> for PushError {
    fn from(e: SourceError) -> Self {
        PushError::Source(e)
    }
}

/// A change that does not fit the view it was applied to; the view is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViewError {
    /// A Remove, Edit or Child change for a row the view does not hold.
    MissingRow,
    /// A Child change naming a relationship the level does not have.
    UnknownRelationship(String),
    /// An Edit whose old and new rows have different primary keys.
    KeyChanged,
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewError::MissingRow => f.write_str("change names a row the view does not hold"),
            ViewError::UnknownRelationship(r) => write!(f, "view has no relationship `{r}`"),
            ViewError::KeyChanged => f.write_str("an edit may not change the primary key"),
        }
    }
}

impl core::error::Error for ViewError {}
