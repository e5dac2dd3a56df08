//! The incremental operators a query lowers into.
//!
//! A pipeline is a tree of operators owned from the output down: each operator
//! owns its input(s), and the source connections are the leaves. Two calls flow
//! through it:
//!
//! - `fetch` reads the operator's current output in order (hydration, and the
//!   look-ups operators make while processing a change);
//! - `pull` hands out, one at a time, the output changes caused by the
//!   base-table change the engine is pushing (held in the [`Ctx`]); an operator
//!   pulls its inputs to compute them.
//!
//! The pull protocol is what keeps look-ups consistent: while a change is being
//! pushed, an operator's `fetch` reflects exactly the output changes its consumer
//! has pulled so far, so a consumer that looks its input up between two pulled
//! changes sees the state those changes describe. Every operator drains its
//! inputs (pulls until `None`) within a push, so the next push starts clean.
//!
//! Each operator's module states its delta rule: how output changes follow from
//! input changes so that the output stays equal to the operator applied to its
//! current input.

pub(crate) mod connection;
pub(crate) mod gate;
pub(crate) mod group;
pub(crate) mod join;
pub(crate) mod reduce;
pub(crate) mod skip;
pub(crate) mod take;

use alloc::vec::Vec;
use core::ops::ControlFlow;

use crate::ast::Direction;
use crate::change::{Change, Node, SourceChange};
use crate::error::EngineError;
use crate::ordering::SortOrder;
use crate::source::{Catalog, Start, StartBasis, TableId};
use crate::value::{Row, Value};

use hashbrown::HashMap;

/// A count per key (a tuple of column values), read back in key order.
///
/// A hash map underneath, sorted when read in order: every distinct
/// key/value pair of a `BTreeMap` compiles to its own copy of the whole
/// B-tree (some 7 kB of the browser build each), and these per-push maps are
/// small. Key sets ([`KeySet`]) share this one map.
#[derive(Default)]
pub(crate) struct KeyCounts(HashMap<Vec<Value>, i64>);

impl KeyCounts {
    /// Adds `by` to the key's count (absent keys count 0).
    pub(crate) fn bump(&mut self, key: Vec<Value>, by: i64) {
        *self.0.entry(key).or_insert(0) += by;
    }

    /// The key's count (0 when absent).
    pub(crate) fn get(&self, key: &[Value]) -> i64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    /// The keys with their counts, in key order.
    pub(crate) fn sorted(&self) -> Vec<(Vec<Value>, i64)> {
        // Through the engine's one row sort, as rows of key cells.
        let mut rows: Vec<Row> = self.0.keys().map(|k| Row::new(k.clone())).collect();
        if let Some(first) = rows.first() {
            let order = (0..first.len()).map(|c| (c, Direction::Asc)).collect();
            SortOrder::new(order).sort_rows(&mut rows, false);
        }
        rows.iter().map(|r| (r.to_vec(), self.get(r))).collect()
    }
}

/// Distinct keys, read back in key order (a [`KeyCounts`] underneath).
#[derive(Default)]
pub(crate) struct KeySet(KeyCounts);

impl KeySet {
    /// Adds `key`; false if it was there.
    pub(crate) fn insert(&mut self, key: Vec<Value>) -> bool {
        match self.0.0.entry(key) {
            hashbrown::hash_map::Entry::Occupied(_) => false,
            hashbrown::hash_map::Entry::Vacant(v) => {
                v.insert(0);
                true
            }
        }
    }

    /// The keys in key order.
    pub(crate) fn sorted(&self) -> impl Iterator<Item = Vec<Value>> + use<> {
        self.0.sorted().into_iter().map(|(k, _)| k)
    }
}

impl Ctx<'_> {
    /// The sequence number of the push in flight, if any.
    pub(crate) fn seq(&self) -> Option<u64> {
        self.push.map(|p| p.seq)
    }
}

/// The change being pushed, if any.
#[derive(Clone, Copy)]
pub(crate) struct Push<'a> {
    pub(crate) table: TableId,
    pub(crate) change: &'a SourceChange,
    /// Distinguishes this push from every earlier one, so a connection knows
    /// whether it has already received the change.
    pub(crate) seq: u64,
}

/// What every operator call can see: the catalog, and the change in flight.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) catalog: &'a dyn Catalog,
    pub(crate) push: Option<Push<'a>>,
}

/// A fetch as operators ask it of their input (the connection adds its order
/// and filter).
#[derive(Clone, Debug, Default)]
pub(crate) struct Fetch {
    pub(crate) constraint: Vec<(usize, Value)>,
    pub(crate) start: Option<Start>,
    pub(crate) reverse: bool,
}

impl Fetch {
    /// A forward read of the rows whose `cols` equal `key`.
    pub(crate) fn constrained(cols: &[usize], key: &[Value]) -> Fetch {
        Fetch {
            constraint: cols.iter().copied().zip(key.iter().cloned()).collect(),
            ..Fetch::default()
        }
    }

    /// Whether `row` is inside this request's constraint and start bound, for
    /// an input ordered by `order`.
    pub(crate) fn admits(&self, order: &SortOrder, row: &[Value]) -> bool {
        if !self.constraint.iter().all(|(c, v)| row[*c] == *v) {
            return false;
        }
        match &self.start {
            None => true,
            Some(s) => {
                let o = order.compare(row, &s.row);
                let o = if self.reverse { o.reverse() } else { o };
                match s.basis {
                    StartBasis::At => o.is_ge(),
                    StartBasis::After => o.is_gt(),
                }
            }
        }
    }
}

/// The values of `cols` in `row`, or `None` when one is null (null never
/// correlates).
pub(crate) fn key_of(row: &[Value], cols: &[usize]) -> Option<Vec<Value>> {
    let key: Vec<Value> = cols.iter().map(|&c| row[c].clone()).collect();
    (!key.iter().any(Value::is_null)).then_some(key)
}

/// Receives fetched nodes; `Break` stops the fetch early.
pub(crate) type Sink<'s> = dyn FnMut(Node) -> Result<ControlFlow<()>, EngineError> + 's;

/// An incremental operator.
pub(crate) trait Operator {
    /// Calls `sink` with the operator's current output rows matching `req`, in
    /// the operator's order (reversed when `req.reverse`), until they run out
    /// or `sink` breaks.
    fn fetch(&mut self, cx: &Ctx<'_>, req: &Fetch, sink: &mut Sink<'_>) -> Result<(), EngineError>;

    /// The next output change caused by the change in `cx.push`, or `None`
    /// once there are no more (then the operator has drained its inputs).
    fn pull(&mut self, cx: &Ctx<'_>) -> Result<Option<Change>, EngineError>;

    /// No parent shows the rows matching `constraint` any more: forget the
    /// per-partition state kept for them (a later read hydrates afresh).
    fn release(&mut self, cx: &Ctx<'_>, constraint: &[(usize, Value)]) -> Result<(), EngineError> {
        let _ = (cx, constraint);
        Ok(())
    }

    /// How many per-partition states (limit windows, aggregate values) this
    /// operator and its inputs hold.
    fn partitions(&self) -> usize {
        0
    }

    /// Whether this operator or its inputs keep per-partition state, that
    /// is, whether [`Operator::release`] can free anything.
    fn keeps_partitions(&self) -> bool {
        false
    }
}

/// The first node of a fetch, if any.
pub(crate) fn first(
    op: &mut dyn Operator,
    cx: &Ctx<'_>,
    req: &Fetch,
) -> Result<Option<Node>, EngineError> {
    let mut found = None;
    op.fetch(cx, req, &mut |n| {
        found = Some(n);
        Ok(ControlFlow::Break(()))
    })?;
    Ok(found)
}
