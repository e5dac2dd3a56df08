//! Changes in (base-table row changes) and changes out (view changes).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::value::Row;

/// A change to one base table, with full rows in the table's column order.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceChange {
    /// A new row.
    Add(Row),
    /// A row that goes (the full stored row).
    Remove(Row),
    /// A row replaced by another. When the primary key changes, the engine
    /// treats it as `Remove(old)` then `Add(new)`.
    Edit {
        /// The stored row.
        old: Row,
        /// Its replacement.
        new: Row,
    },
}

impl SourceChange {
    /// The row this change leaves in the table, if any.
    pub fn new_row(&self) -> Option<&Row> {
        match self {
            SourceChange::Add(r) | SourceChange::Edit { new: r, .. } => Some(r),
            SourceChange::Remove(_) => None,
        }
    }

    /// The row this change takes out of the table, if any.
    pub fn old_row(&self) -> Option<&Row> {
        match self {
            SourceChange::Remove(r) | SourceChange::Edit { old: r, .. } => Some(r),
            SourceChange::Add(_) => None,
        }
    }
}

/// A row of a query's result with its relationships' rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The row (every column of its table).
    pub row: Row,
    /// The child rows of each relationship, in the level's declared order.
    pub relationships: Vec<(Arc<str>, Vec<Node>)>,
}

impl Node {
    /// A node without relationships.
    pub fn leaf(row: Row) -> Node {
        Node {
            row,
            relationships: Vec::new(),
        }
    }
}

/// A change to a query's result.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A row enters the result, with its relationships.
    Add(Node),
    /// A row leaves the result, with its relationships as they were.
    Remove(Node),
    /// A row present before and after changes its cells (same primary key); it
    /// may move. Relationships are unchanged by an edit.
    Edit {
        /// The row as it was.
        old: Node,
        /// The row as it is.
        new: Node,
    },
    /// A change inside a relationship of a row that stays present.
    Child {
        /// The parent row.
        row: Row,
        /// The relationship's alias.
        relationship: Arc<str>,
        /// The change to the relationship.
        change: Box<Change>,
    },
}

impl Change {
    /// The row this change is about at its own level.
    pub fn row(&self) -> &Row {
        match self {
            Change::Add(n) | Change::Remove(n) => &n.row,
            Change::Edit { new, .. } => &new.row,
            Change::Child { row, .. } => row,
        }
    }
}
