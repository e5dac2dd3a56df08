//! Skip: the level's `start` bound. Only rows after the start row (or at or
//! after it, when inclusive) in the level's order pass.
//!
//! Delta rule, with `s(r)` = "r is past the start bound" (a fixed predicate):
//!
//! ```text
//! Add(r) / Remove(r) / Child(r, ..) -> unchanged   if s(r), else nothing
//! Edit(o, n)  -> Edit(o, n)  if s(o) and s(n)
//!                Remove(o)   if s(o) only
//!                Add(n)      if s(n) only
//! ```
//!
//! A forward fetch starts at the later of the caller's start and the bound; a
//! reverse fetch stops at the first row before the bound.

use core::cmp::Ordering;
use core::ops::ControlFlow;

use super::{Ctx, Fetch, Operator, Sink};
use crate::change::Change;
use crate::error::EngineError;
use crate::ordering::SortOrder;
use crate::source::{Start, StartBasis};
use crate::value::Row;

pub(crate) struct Skip {
    input: alloc::boxed::Box<dyn Operator>,
    order: SortOrder,
    /// Full-width row holding the bound's values (null where not named).
    bound: Row,
    exclusive: bool,
}

impl Skip {
    pub(crate) fn new(
        input: alloc::boxed::Box<dyn Operator>,
        order: SortOrder,
        bound: Row,
        exclusive: bool,
    ) -> Skip {
        Skip {
            input,
            order,
            bound,
            exclusive,
        }
    }

    fn passes(&self, row: &Row) -> bool {
        match self.order.compare(row, &self.bound) {
            Ordering::Greater => true,
            Ordering::Equal => !self.exclusive,
            Ordering::Less => false,
        }
    }

    fn own_start(&self) -> Start {
        Start {
            row: self.bound.clone(),
            basis: if self.exclusive {
                StartBasis::After
            } else {
                StartBasis::At
            },
        }
    }
}

impl Operator for Skip {
    fn fetch(&mut self, cx: &Ctx<'_>, req: &Fetch, sink: &mut Sink<'_>) -> Result<(), EngineError> {
        if req.reverse {
            let Skip {
                input,
                order,
                bound,
                exclusive,
            } = self;
            return input.fetch(cx, req, &mut |n| {
                let o = order.compare(&n.row, bound);
                if o.is_lt() || (o.is_eq() && *exclusive) {
                    return Ok(ControlFlow::Break(()));
                }
                sink(n)
            });
        }
        let start = match &req.start {
            None => self.own_start(),
            Some(s) => match self.order.compare(&s.row, &self.bound) {
                Ordering::Less => self.own_start(),
                Ordering::Equal if self.exclusive => self.own_start(),
                _ => s.clone(),
            },
        };
        let req = Fetch {
            constraint: req.constraint.clone(),
            start: Some(start),
            reverse: false,
        };
        self.input.fetch(cx, &req, sink)
    }

    fn release(
        &mut self,
        cx: &Ctx<'_>,
        constraint: &[(usize, crate::value::Value)],
    ) -> Result<(), EngineError> {
        self.input.release(cx, constraint)
    }

    fn partitions(&self) -> usize {
        self.input.partitions()
    }

    fn keeps_partitions(&self) -> bool {
        self.input.keeps_partitions()
    }

    fn pull(&mut self, cx: &Ctx<'_>) -> Result<Option<Change>, EngineError> {
        while let Some(c) = self.input.pull(cx)? {
            let out = match c {
                Change::Add(_) | Change::Remove(_) | Change::Child { .. } => {
                    self.passes(c.row()).then_some(c)
                }
                Change::Edit { old, new } => match (self.passes(&old.row), self.passes(&new.row)) {
                    (true, true) => Some(Change::Edit { old, new }),
                    (true, false) => Some(Change::Remove(old)),
                    (false, true) => Some(Change::Add(new)),
                    (false, false) => None,
                },
            };
            if out.is_some() {
                return Ok(out);
            }
        }
        Ok(None)
    }
}
