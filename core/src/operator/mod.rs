//! The incremental operators a query lowers into.
//!
//! A pipeline is a tree of operators owned from the output down: each operator
//! owns its input(s), and the source connections are the leaves. Two calls flow
//! through it:
//!
//! - `fetch` reads the operator's current output in order (hydration, and the
//!   look-ups operators make while processing a change);
//! - `push` processes the base-table change the engine is pushing (held in the
//!   [`Ctx`]): an operator first pushes its inputs, which return their output
//!   changes, then turns those into its own output changes.
//!
//! Each operator's module states its delta rule: how output changes follow from
//! input changes so that the output stays equal to the operator applied to its
//! current input.

pub(crate) mod connection;
pub(crate) mod skip;
pub(crate) mod take;

use alloc::vec::Vec;
use core::ops::ControlFlow;

use crate::change::{Change, Node, SourceChange};
use crate::error::EngineError;
use crate::source::{Catalog, Start, TableId};
use crate::value::Value;

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

/// Receives fetched nodes; `Break` stops the fetch early.
pub(crate) type Sink<'s> = dyn FnMut(Node) -> Result<ControlFlow<()>, EngineError> + 's;

/// An incremental operator.
pub(crate) trait Operator {
    /// Calls `sink` with the operator's current output rows matching `req`, in
    /// the operator's order (reversed when `req.reverse`), until they run out
    /// or `sink` breaks.
    fn fetch(&mut self, cx: &Ctx<'_>, req: &Fetch, sink: &mut Sink<'_>) -> Result<(), EngineError>;

    /// Pushes the change in `cx.push` through the inputs and appends this
    /// operator's resulting output changes to `out`.
    fn push(&mut self, cx: &Ctx<'_>, out: &mut Vec<Change>) -> Result<(), EngineError>;
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
