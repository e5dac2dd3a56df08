//! How the engine reads tables: the [`Source`] trait and the [`Catalog`] of
//! sources, with the in-memory implementation beside them.
//!
//! A source holds one table's rows. The engine never writes through a source on
//! its own: it reads with [`Source::fetch`] and [`Source::get`], and once a
//! change has been pushed through every pipeline, it tells the source with
//! [`Source::apply`] that the change is now part of the table.
//!
//! While a change is being pushed, the engine reads the source as it was before
//! the change and lays the change over those reads itself, for exactly the
//! pipeline connections that have already received it. A source therefore only
//! ever has to answer for one consistent state: every change applied so far.

mod memory;

pub use memory::{MemoryCatalog, MemorySource};

use core::ops::ControlFlow;

use crate::change::SourceChange;
use crate::error::SourceError;
use crate::ordering::SortOrder;
use crate::predicate::Predicate;
use crate::schema::TableSchema;
use crate::value::{Row, Value};

/// Where a fetch starts relative to its start row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartBasis {
    /// At the start row's position: rows equal to it in the order are included.
    At,
    /// Strictly past the start row's position.
    After,
}

/// The position a fetch starts from.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    /// A row of the table's width; only the fetch order's columns are read, so
    /// the other cells may hold anything (the engine uses null).
    pub row: Row,
    /// At or after the row.
    pub basis: StartBasis,
}

/// One ordered read of a table.
#[derive(Clone, Copy, Debug)]
pub struct FetchRequest<'a> {
    /// The order to return rows in. It is total (it contains the primary key).
    pub order: &'a SortOrder,
    /// Only rows whose cell at each column equals the value (by the
    /// comparator's equality, so null matches null here).
    pub constraint: &'a [(usize, Value)],
    /// Skip rows before this position (in fetch direction).
    pub start: Option<&'a Start>,
    /// Walk the order backwards: from `start` (or the last row) towards the first.
    pub reverse: bool,
    /// A filter the caller applies to every returned row anyway. A source may use
    /// it to skip rows that fail it; it must never skip a row that passes it.
    pub filter: Option<&'a Predicate>,
}

impl FetchRequest<'_> {
    /// Whether `row` is inside this request's constraint and start bound
    /// (the `filter` hint is not consulted).
    pub fn admits(&self, row: &[Value]) -> bool {
        if !self.constraint.iter().all(|(c, v)| row[*c] == *v) {
            return false;
        }
        match self.start {
            None => true,
            Some(s) => {
                let o = self.order.compare(row, &s.row);
                let o = if self.reverse { o.reverse() } else { o };
                match s.basis {
                    StartBasis::At => o.is_ge(),
                    StartBasis::After => o.is_gt(),
                }
            }
        }
    }
}

/// One table's rows, as the engine reads them.
///
/// Contract, for every implementation (the testkit's conformance suite checks
/// it):
/// - The table's state is the rows loaded before the engine started plus every
///   change passed to [`Source::apply`], in order. Every method answers for that
///   state and nothing else.
/// - No method panics on any input; failures are [`SourceError`]s.
pub trait Source {
    /// The table's schema. It never changes for the life of the source.
    fn schema(&self) -> &TableSchema;

    /// Announces that fetches in `order` constrained on `constraint_columns`
    /// (sorted ascending) will follow, so the source can build an index for them.
    /// A hint only: fetches of shapes never prepared must still be answered.
    fn prepare(&mut self, order: &SortOrder, constraint_columns: &[usize]);

    /// Calls `sink` with every row that satisfies the request's constraint and
    /// start bound, in the request's order (reversed when `reverse`), until the
    /// rows run out or `sink` returns [`ControlFlow::Break`]. Each row is
    /// delivered once. The `filter` is a hint (see [`FetchRequest::filter`]).
    fn fetch(
        &self,
        req: &FetchRequest<'_>,
        sink: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> Result<(), SourceError>;

    /// The row whose primary key is `key` (in key-column order), if present.
    fn get(&self, key: &[Value]) -> Result<Option<Row>, SourceError>;

    /// Makes a change part of the table. The engine calls it once per change,
    /// after validating it and pushing it through every pipeline: an `Add` is of
    /// an absent key, a `Remove` or `Edit` names the stored row exactly, and an
    /// `Edit` keeps the primary key. A source that stores the change elsewhere
    /// (a backend whose write path already holds it) records that its reads must
    /// now include it.
    fn apply(&mut self, change: &SourceChange) -> Result<(), SourceError>;
}

/// Identifies a table within a [`Catalog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub usize);

/// The set of tables an engine reads, by name.
pub trait Catalog {
    /// The id of a table by name.
    fn table_id(&self, name: &str) -> Option<TableId>;
    /// The source of a table. `id` came from [`Catalog::table_id`] of this
    /// catalog; implementations may panic on a foreign id.
    fn source(&self, id: TableId) -> &dyn Source;
    /// The source of a table, mutably.
    fn source_mut(&mut self, id: TableId) -> &mut dyn Source;
}
