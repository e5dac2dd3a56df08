//! Take: the level's `limit`, per partition (per parent on a child level).
//!
//! State per partition: `size`, the number of rows in the window, and `bound`,
//! the window's last row. The window is always the first `min(limit, n)` rows of
//! the partition's input, so at every moment the output holds at most `limit`
//! rows: a displaced row is removed before its replacement is added.
//!
//! Delta rule (`<`, `>` in the level's order; "post" = the input after the change,
//! which the input's fetches already reflect while the change is pushed):
//!
//! ```text
//! Add(r),    size < limit      -> Add(r); size += 1; bound = max(bound, r)
//! Add(r),    full, r > bound   -> nothing
//! Add(r),    full, r < bound   -> Remove(bound), Add(r); bound = last post row < old bound
//! Remove(r), r > bound         -> nothing
//! Remove(r), r <= bound        -> if a post row n > bound exists: Remove(r), Add(n); bound = n
//!                                 else Remove(r); size -= 1; if r = bound: bound = last post row < r
//! Edit(o, n), o <= bound       -> n < bound: Edit (bound = last post row < bound if o was it)
//!                                 n = bound position: Edit; bound = n
//!                                 n > bound: let f = first post row > bound;
//!                                   f is n: Edit; bound = n
//!                                   else:   Remove(o), Add(f); bound = f
//! Edit(o, n), o > bound        -> n > bound: nothing
//!                                 n < bound: Remove(bound), Add(n); bound = last post row < old bound
//! Edit moving between partitions -> Remove(o) in its partition, then Add(n) in the other
//! Child(r, ..)                 -> forwarded when r <= bound
//! ```
//!
//! A partition is hydrated by its first fetch; changes to a partition that was
//! never fetched are dropped (nothing downstream holds its rows).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use hashbrown::HashMap;

use super::{Ctx, Fetch, Operator, Sink, first};
use crate::change::{Change, Node};
use crate::error::EngineError;
use crate::ordering::SortOrder;
use crate::source::{Start, StartBasis};
use crate::value::{Row, Value};

#[derive(Debug)]
struct State {
    size: usize,
    bound: Option<Row>,
    /// The first input row after `bound`, when known (`None`: unknown).
    /// A row displaced from a full window is that row, so the pair "row
    /// enters, row leaves" refills from here without a fetch.
    next: Option<Row>,
}

pub(crate) struct Take {
    input: Box<dyn Operator>,
    order: SortOrder,
    limit: usize,
    /// Columns whose values select the partition (empty at the root).
    partition: Vec<usize>,
    states: HashMap<Vec<Value>, State>,
    /// Output changes computed but not pulled yet.
    out: VecDeque<Change>,
}

const VANISHED: &str = "take: a row inside the window is missing from its input";

impl Take {
    pub(crate) fn new(
        input: Box<dyn Operator>,
        order: SortOrder,
        limit: usize,
        partition: Vec<usize>,
    ) -> Take {
        Take {
            input,
            order,
            limit,
            partition,
            states: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.partition.iter().map(|&c| row[c].clone()).collect()
    }

    /// The partition a fetch's constraint names, if it names every partition
    /// column.
    fn key_of_constraint(&self, constraint: &[(usize, Value)]) -> Option<Vec<Value>> {
        self.partition
            .iter()
            .map(|c| {
                constraint
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }

    /// The first input row of partition `key` from `row` (at or after it) in the
    /// given direction.
    fn first_from(
        &mut self,
        cx: &Ctx<'_>,
        key: &[Value],
        row: &Row,
        basis: StartBasis,
        reverse: bool,
    ) -> Result<Option<Node>, EngineError> {
        let req = Fetch {
            constraint: self
                .partition
                .iter()
                .copied()
                .zip(key.iter().cloned())
                .collect(),
            start: Some(Start {
                row: row.clone(),
                basis,
            }),
            reverse,
        };
        first(&mut *self.input, cx, &req)
    }

    fn set_bound(&mut self, key: &[Value], bound: Option<Row>) {
        if let Some(st) = self.states.get_mut(key) {
            st.bound = bound;
        }
    }

    fn add(
        &mut self,
        cx: &Ctx<'_>,
        node: Node,
        out: &mut VecDeque<Change>,
    ) -> Result<(), EngineError> {
        let key = self.key_of(&node.row);
        let limit = self.limit;
        let order = &self.order;
        let Some(st) = self.states.get_mut(&key) else {
            return Ok(());
        };
        if st.size < limit {
            st.size += 1;
            if st
                .bound
                .as_ref()
                .is_none_or(|b| order.compare(&node.row, b).is_gt())
            {
                st.bound = Some(node.row.clone());
            }
            out.push_back(Change::Add(node));
            return Ok(());
        }
        let Some(bound) = st.bound.clone() else {
            return Err(EngineError::Internal("take: full window without a bound"));
        };
        if order.compare(&node.row, &bound).is_gt() {
            // Outside the window; it may now be the first row after it.
            if st
                .next
                .as_ref()
                .is_some_and(|n| order.compare(&node.row, n).is_lt())
            {
                st.next = Some(node.row);
            }
            return Ok(());
        }
        // The displaced row is the bound itself: the window's last row, still
        // in the input (this change adds a row). Take's input yields leaf
        // nodes (it sits below any Join), so the row is the whole node.
        let displaced = Node::leaf(bound.clone());
        let new_bound = self
            .first_from(cx, &key, &bound, StartBasis::After, true)?
            .ok_or(EngineError::Internal(VANISHED))?;
        if let Some(st) = self.states.get_mut(&key) {
            st.bound = Some(new_bound.row);
            // The displaced row follows the new bound directly.
            st.next = Some(bound);
        }
        out.push_back(Change::Remove(displaced));
        out.push_back(Change::Add(node));
        Ok(())
    }

    fn remove(
        &mut self,
        cx: &Ctx<'_>,
        node: Node,
        out: &mut VecDeque<Change>,
    ) -> Result<(), EngineError> {
        let key = self.key_of(&node.row);
        let order = &self.order;
        let Some(st) = self.states.get_mut(&key) else {
            return Ok(());
        };
        let Some(bound) = st.bound.clone() else {
            return Ok(());
        };
        let pos = order.compare(&node.row, &bound);
        if pos.is_gt() {
            if st
                .next
                .as_ref()
                .is_some_and(|n| order.compare(&node.row, n).is_eq())
            {
                st.next = None;
            }
            return Ok(());
        }
        // The refill: the known next row (input nodes are leaves), else a
        // fetch. Either way the row after the new bound is unknown then.
        let known = st.next.take().map(Node::leaf);
        let refill = match known {
            Some(n) => Some(n),
            None => self.first_from(cx, &key, &bound, StartBasis::After, false)?,
        };
        if let Some(next) = refill {
            self.set_bound(&key, Some(next.row.clone()));
            out.push_back(Change::Remove(node));
            out.push_back(Change::Add(next));
            return Ok(());
        }
        let new_bound = if pos.is_eq() {
            self.first_from(cx, &key, &bound, StartBasis::After, true)?
                .map(|n| n.row)
        } else {
            Some(bound)
        };
        if let Some(st) = self.states.get_mut(&key) {
            st.size = st.size.saturating_sub(1);
            st.bound = new_bound;
        }
        out.push_back(Change::Remove(node));
        Ok(())
    }

    fn edit(
        &mut self,
        cx: &Ctx<'_>,
        old: Node,
        new: Node,
        out: &mut VecDeque<Change>,
    ) -> Result<(), EngineError> {
        let key = self.key_of(&old.row);
        let Some(bound) = self.states.get_mut(&key).and_then(|st| {
            st.next = None; // an edit may move rows across it: forget it
            st.bound.clone()
        }) else {
            return Ok(());
        };
        let old_pos = self.order.compare(&old.row, &bound);
        let new_pos = self.order.compare(&new.row, &bound);
        if old_pos.is_le() {
            match new_pos {
                core::cmp::Ordering::Less => {
                    if old_pos.is_eq() {
                        let nb = self
                            .first_from(cx, &key, &bound, StartBasis::After, true)?
                            .ok_or(EngineError::Internal(VANISHED))?;
                        self.set_bound(&key, Some(nb.row));
                    }
                    out.push_back(Change::Edit { old, new });
                }
                core::cmp::Ordering::Equal => {
                    self.set_bound(&key, Some(new.row.clone()));
                    out.push_back(Change::Edit { old, new });
                }
                core::cmp::Ordering::Greater => {
                    let f = self
                        .first_from(cx, &key, &bound, StartBasis::After, false)?
                        .ok_or(EngineError::Internal(VANISHED))?;
                    if self.order.compare(&f.row, &new.row).is_eq() {
                        self.set_bound(&key, Some(new.row.clone()));
                        out.push_back(Change::Edit { old, new });
                    } else {
                        self.set_bound(&key, Some(f.row.clone()));
                        out.push_back(Change::Remove(old));
                        out.push_back(Change::Add(f));
                    }
                }
            }
        } else if new_pos.is_lt() {
            let displaced = self
                .first_from(cx, &key, &bound, StartBasis::At, false)?
                .ok_or(EngineError::Internal(VANISHED))?;
            let nb = self
                .first_from(cx, &key, &bound, StartBasis::After, true)?
                .ok_or(EngineError::Internal(VANISHED))?;
            self.set_bound(&key, Some(nb.row));
            out.push_back(Change::Remove(displaced));
            out.push_back(Change::Add(new));
        }
        Ok(())
    }
}

impl Operator for Take {
    fn fetch(&mut self, cx: &Ctx<'_>, req: &Fetch, sink: &mut Sink<'_>) -> Result<(), EngineError> {
        if self.limit == 0 {
            return Ok(());
        }
        let Some(key) = self.key_of_constraint(&req.constraint) else {
            // A look-up across partitions (a join above fanning a change out to
            // its parents): the input's matching rows that lie inside their
            // partition's window.
            let Take {
                input,
                order,
                partition,
                states,
                ..
            } = self;
            return input.fetch(cx, req, &mut |n| {
                let key: Vec<Value> = partition.iter().map(|&c| n.row[c].clone()).collect();
                let inside = states
                    .get(&key)
                    .and_then(|st| st.bound.as_ref())
                    .is_some_and(|b| order.compare(&n.row, b).is_le());
                if inside {
                    sink(n)
                } else {
                    Ok(ControlFlow::Continue(()))
                }
            });
        };
        let Some(st) = self.states.get(&key) else {
            // First fetch of this partition: read the whole window, even if the
            // caller stops early, and remember it.
            if req.constraint.len() != self.partition.len() {
                // A look-up into a partition no parent has read: nothing of it
                // is visible.
                return Ok(());
            }
            if req.start.is_some() || req.reverse {
                return Err(EngineError::Internal(
                    "take: a partition's first fetch must be a plain forward read",
                ));
            }
            let limit = self.limit;
            let mut size = 0usize;
            let mut bound = None;
            let mut open = true;
            self.input.fetch(cx, req, &mut |n| {
                size += 1;
                bound = Some(n.row.clone());
                if open && sink(n)?.is_break() {
                    open = false;
                }
                Ok(if size >= limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
            self.states.insert(
                key,
                State {
                    size,
                    bound,
                    next: None,
                },
            );
            return Ok(());
        };
        let Some(bound) = st.bound.clone() else {
            return Ok(());
        };
        let order = &self.order;
        if req.reverse {
            let start = match &req.start {
                Some(s) if order.compare(&s.row, &bound).is_le() => s.clone(),
                _ => Start {
                    row: bound,
                    basis: StartBasis::At,
                },
            };
            let req = Fetch {
                constraint: req.constraint.clone(),
                start: Some(start),
                reverse: true,
            };
            self.input.fetch(cx, &req, sink)
        } else {
            self.input.fetch(cx, req, &mut |n| {
                if order.compare(&n.row, &bound).is_gt() {
                    Ok(ControlFlow::Break(()))
                } else {
                    sink(n)
                }
            })
        }
    }

    fn release(&mut self, cx: &Ctx<'_>, constraint: &[(usize, Value)]) -> Result<(), EngineError> {
        if constraint.len() == self.partition.len()
            && let Some(key) = self.key_of_constraint(constraint)
        {
            self.states.remove(&key);
        }
        self.input.release(cx, constraint)
    }

    fn partitions(&self) -> usize {
        self.states.len() + self.input.partitions()
    }

    fn keeps_partitions(&self) -> bool {
        true
    }

    fn pull(&mut self, cx: &Ctx<'_>) -> Result<Option<Change>, EngineError> {
        loop {
            if let Some(c) = self.out.pop_front() {
                return Ok(Some(c));
            }
            let Some(c) = self.input.pull(cx)? else {
                return Ok(None);
            };
            if self.limit == 0 {
                continue;
            }
            // The queue is empty here: lend it to the step, keeping its
            // capacity (no allocation per change).
            let mut out = core::mem::take(&mut self.out);
            match c {
                Change::Add(n) => self.add(cx, n, &mut out)?,
                Change::Remove(n) => self.remove(cx, n, &mut out)?,
                Change::Edit { old, new } => {
                    if self.key_of(&old.row) == self.key_of(&new.row) {
                        self.edit(cx, old, new, &mut out)?;
                    } else {
                        self.remove(cx, old, &mut out)?;
                        self.add(cx, new, &mut out)?;
                    }
                }
                Change::Child { ref row, .. } => {
                    let key = self.key_of(row);
                    let inside = self
                        .states
                        .get(&key)
                        .and_then(|st| st.bound.as_ref())
                        .is_some_and(|b| self.order.compare(row, b).is_le());
                    if inside {
                        out.push_back(c);
                    }
                }
            }
            self.out = out;
        }
    }
}
