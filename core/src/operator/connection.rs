//! Source connection: a table read in one order, with the level's simple filters
//! pushed down.
//!
//! Delta rule, for a filter `p` over the table's change `c`:
//!
//! ```text
//! Add(r)          -> Add(r)          if p(r)
//! Remove(r)       -> Remove(r)       if p(r)
//! Edit(o, n)      -> Edit(o, n)      if p(o) and p(n)
//!                    Remove(o)       if p(o) only
//!                    Add(n)          if p(n) only
//! ```
//!
//! Fetch reads the source, which holds the table as it was before the change in
//! flight. Once this connection has received that change, its fetches lay the
//! change over the source's rows (the removed row skipped, the added row merged
//! in at its position), so every operator above it sees the table exactly as its
//! own state reflects it. Connections that have not received the change yet keep
//! seeing the table without it.

use core::ops::ControlFlow;

use super::{Ctx, Fetch, Operator, Sink};
use crate::change::{Change, Node, SourceChange};
use crate::error::EngineError;
use crate::ordering::SortOrder;
use crate::predicate::Predicate;
use crate::schema::TableSchema;
use crate::source::{FetchRequest, TableId};
use crate::value::Row;

pub(crate) struct Connection {
    table: TableId,
    schema: TableSchema,
    order: SortOrder,
    filter: Option<Predicate>,
    /// The push sequence number of the last change this connection received.
    seen: u64,
}

impl Connection {
    pub(crate) fn new(
        table: TableId,
        schema: TableSchema,
        order: SortOrder,
        filter: Option<Predicate>,
    ) -> Connection {
        Connection {
            table,
            schema,
            order,
            filter,
            seen: 0,
        }
    }

    fn passes(&self, row: &Row) -> bool {
        self.filter.as_ref().is_none_or(|p| p.eval(row))
    }
}

impl Operator for Connection {
    fn fetch(&mut self, cx: &Ctx<'_>, req: &Fetch, sink: &mut Sink<'_>) -> Result<(), EngineError> {
        let request = FetchRequest {
            order: &self.order,
            constraint: &req.constraint,
            start: req.start.as_ref(),
            reverse: req.reverse,
            filter: self.filter.as_ref(),
        };
        let overlay = cx
            .push
            .filter(|p| p.table == self.table && p.seq == self.seen)
            .map(|p| p.change);
        let (added, removed) = match overlay {
            None => (None, None),
            Some(SourceChange::Add(r)) => (Some(r), None),
            Some(SourceChange::Remove(r)) => (None, Some(r)),
            Some(SourceChange::Edit { old, new }) => (Some(new), Some(old)),
        };
        let mut pending = added.filter(|r| request.admits(r) && self.passes(r));
        let mut failure = None;
        let mut stopped = false;
        let schema = &self.schema;
        let order = &self.order;
        let filter = self.filter.as_ref();
        let mut emit = |row: Row, stopped: &mut bool, failure: &mut Option<EngineError>| match sink(
            Node::leaf(row),
        ) {
            Ok(ControlFlow::Continue(())) => ControlFlow::Continue(()),
            Ok(ControlFlow::Break(())) => {
                *stopped = true;
                ControlFlow::Break(())
            }
            Err(e) => {
                *failure = Some(e);
                *stopped = true;
                ControlFlow::Break(())
            }
        };
        cx.catalog
            .source(self.table)
            .fetch(&request, &mut |row: &Row| {
                if removed.is_some_and(|rm| schema.same_key(row, rm)) {
                    return ControlFlow::Continue(());
                }
                if !filter.is_none_or(|p| p.eval(row)) {
                    return ControlFlow::Continue(());
                }
                if let Some(add) = pending {
                    let o = order.compare(add, row);
                    let before = if request.reverse {
                        o.is_gt()
                    } else {
                        o.is_lt()
                    };
                    if before {
                        pending = None;
                        emit(add.clone(), &mut stopped, &mut failure)?;
                    }
                }
                emit(row.clone(), &mut stopped, &mut failure)
            })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let (false, Some(add)) = (stopped, pending) {
            let _ = emit(add.clone(), &mut stopped, &mut failure);
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok(())
    }

    fn pull(&mut self, cx: &Ctx<'_>) -> Result<Option<Change>, EngineError> {
        let Some(p) = cx
            .push
            .filter(|p| p.table == self.table && p.seq != self.seen)
        else {
            return Ok(None);
        };
        self.seen = p.seq;
        Ok(match p.change {
            SourceChange::Add(r) => self.passes(r).then(|| Change::Add(Node::leaf(r.clone()))),
            SourceChange::Remove(r) => self
                .passes(r)
                .then(|| Change::Remove(Node::leaf(r.clone()))),
            SourceChange::Edit { old, new } => match (self.passes(old), self.passes(new)) {
                (true, true) => Some(Change::Edit {
                    old: Node::leaf(old.clone()),
                    new: Node::leaf(new.clone()),
                }),
                (true, false) => Some(Change::Remove(Node::leaf(old.clone()))),
                (false, true) => Some(Change::Add(Node::leaf(new.clone()))),
                (false, false) => None,
            },
        })
    }
}
