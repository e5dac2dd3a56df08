//! Row orderings resolved against a table schema.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::ast::Direction;
use crate::schema::TableSchema;
use crate::value::{Row, Value};

/// A sort over a table's rows: column positions with directions.
///
/// Orders the engine uses are always total: lowering completes every `orderBy`
/// with the primary-key columns it lacks ([`SortOrder::completed`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SortOrder {
    keys: Vec<(usize, Direction)>,
}

impl SortOrder {
    /// An order from column positions and directions.
    pub fn new(keys: Vec<(usize, Direction)>) -> SortOrder {
        SortOrder { keys }
    }

    /// The primary key ascending.
    pub fn primary_key(schema: &TableSchema) -> SortOrder {
        SortOrder::new(Vec::new()).completed(schema)
    }

    /// This order with every primary-key column it lacks appended ascending.
    pub fn completed(mut self, schema: &TableSchema) -> SortOrder {
        for &k in schema.primary_key() {
            if !self.keys.iter().any(|(c, _)| *c == k) {
                self.keys.push((k, Direction::Asc));
            }
        }
        self
    }

    /// The columns and directions.
    pub fn keys(&self) -> &[(usize, Direction)] {
        &self.keys
    }

    /// Compares two rows (or partial rows of full width) by this order.
    #[inline]
    pub fn compare(&self, a: &[Value], b: &[Value]) -> Ordering {
        for &(c, dir) in &self.keys {
            // Integers (keys, timestamps) are most of what orders compare.
            let o = match (&a[c], &b[c]) {
                (Value::Int(x), Value::Int(y)) => x.cmp(y),
                (x, y) => x.cmp(y),
            };
            if o != Ordering::Equal {
                return match dir {
                    Direction::Asc => o,
                    Direction::Desc => o.reverse(),
                };
            }
        }
        Ordering::Equal
    }

    /// Sorts rows by this order, or its reverse. (Every row sort in the
    /// engine goes through here: one instance of the sort, not one per
    /// call site.)
    pub(crate) fn sort_rows(&self, rows: &mut [Row], reverse: bool) {
        rows.sort_by(|a, b| {
            let o = self.compare(a, b);
            if reverse { o.reverse() } else { o }
        });
    }
}

/// Column positions sorted ascending without repeats: marked in a table as
/// wide as the largest position (positions are column indices), then read
/// back in order. Linear, and no other instance of the slice sort.
pub(crate) fn sorted_columns(cols: Vec<usize>) -> Vec<usize> {
    let Some(&max) = cols.iter().max() else {
        return cols;
    };
    let mut seen = alloc::vec![false; max + 1];
    for &c in &cols {
        seen[c] = true;
    }
    (0..=max).filter(|&c| seen[c]).collect()
}

/// A row keyed by a shared order, so rows can live in ordered maps without
/// copying their sort values.
#[derive(Clone, Debug)]
pub(crate) struct SortedRow {
    pub(crate) row: Row,
    order: Arc<SortOrder>,
}

impl SortedRow {
    pub(crate) fn new(row: Row, order: &Arc<SortOrder>) -> SortedRow {
        SortedRow {
            row,
            order: order.clone(),
        }
    }
}

impl Ord for SortedRow {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.order.compare(&self.row, &other.row)
    }
}

impl PartialOrd for SortedRow {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SortedRow {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SortedRow {}
