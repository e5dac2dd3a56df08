//! Gate: the part of a level's `where` that involves EXISTS / NOT EXISTS —
//! AND / OR trees mixing simple predicates with correlated subqueries (the OR
//! fans of the reference design, evaluated as one condition tree).
//!
//! Each EXISTS leaf owns a child pipeline (the subquery, with its own filters,
//! start and limit) read by correlation key. For a parent row `p` and leaf `i`,
//! `exists_i(p)` = the child output has a row whose child fields equal `p`'s
//! parent fields (a null field never matches). The gate passes `p` when its
//! condition `g(p)` holds.
//!
//! Delta rule, for one pushed change: let `P` be the input's changes and `D_i`
//! the net change in child-output row count per correlation key of leaf `i`.
//! After the push the gate reads every child pipeline's new state; before it,
//! a key `k` had `after_i(k) - D_i(k)` rows — exact, however many changes the
//! push caused. With `g_before` / `g_after` evaluated on those counts:
//!
//! ```text
//! Add(p)      -> Add(p)         if g_after(p)
//! Remove(p)   -> Remove(p)      if g_before(p)
//! Edit(o, n)  -> Edit / Remove(o) / Add(n) / nothing, by g_before(o), g_after(n)
//! key k of leaf i flips (before(k) > 0 != after(k) > 0):
//!   every input row p with parent fields = k, not already in P:
//!               Add(p) if !g_before(p) and g_after(p); Remove(p) if the reverse
//! ```
//!
//! Output changes are handed out one per pull; until a change is pulled, the
//! gate's fetch undoes it (hides its new row, shows its old one), so a
//! consumer's look-ups always match the changes it has taken.
//!
//! Reads are parent-driven (scan the input, test each row), or child-driven
//! when the query flips (`flip: true`) an EXISTS that every passing row must
//! satisfy (the condition itself or one of its top-level conjuncts): read that
//! subquery's rows, collect their correlation keys, look the parents up by key,
//! merge them in order, and test each. Both plans pass exactly the rows
//! satisfying the condition; only the cost differs (child-driven wins when few
//! children match among many parents). Pushes are child-driven either way.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use super::{Ctx, Fetch, KeyCounts, KeySet, Operator, Sink, key_of};
use crate::change::{Change, Node};
use crate::error::EngineError;
use crate::ordering::SortOrder;
use crate::predicate::Predicate;
use crate::value::{Row, Value};

/// A condition tree over a level's rows with EXISTS leaves.
pub(crate) enum GateCond {
    Pred(Predicate),
    Exists { sub: usize, negated: bool },
    And(Vec<GateCond>),
    Or(Vec<GateCond>),
}

/// One EXISTS leaf: the child pipeline and the correlation.
pub(crate) struct ExistsSub {
    pub(crate) child: Box<dyn Operator>,
    pub(crate) parent_keys: Vec<usize>,
    pub(crate) child_keys: Vec<usize>,
    /// The query asked for the child-driven plan (`flip: true`).
    pub(crate) flip: bool,
}

/// Net child-output row count change per correlation key, per leaf.
type Deltas = Vec<KeyCounts>;

pub(crate) struct Gate {
    input: Box<dyn Operator>,
    /// The flipped EXISTS leaf that drives reads, if any.
    driver: Option<usize>,
    order: SortOrder,
    primary_key: Vec<usize>,
    cond: GateCond,
    subs: Vec<ExistsSub>,
    /// The push whose output `pending` holds.
    computed: u64,
    pending: VecDeque<Change>,
}

/// Whether leaf `i`'s child output has a row for `key`, before the push when
/// `delta` is the push's net change for that key (0: as it is now).
fn has_rows(
    sub: &mut ExistsSub,
    cx: &Ctx<'_>,
    key: &[Value],
    delta: i64,
) -> Result<bool, EngineError> {
    if delta < 0 {
        // Rows left the key: before, it had at least one.
        return Ok(true);
    }
    // before = after - delta > 0  <=>  after > delta: count up to delta + 1.
    let need = delta + 1;
    let mut n = 0i64;
    sub.child
        .fetch(cx, &Fetch::constrained(&sub.child_keys, key), &mut |_| {
            n += 1;
            Ok(if n >= need {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
    Ok(n > delta)
}

fn eval(
    cond: &GateCond,
    subs: &mut [ExistsSub],
    cx: &Ctx<'_>,
    row: &[Value],
    before: Option<&Deltas>,
) -> Result<bool, EngineError> {
    Ok(match cond {
        GateCond::Pred(p) => p.eval(row),
        GateCond::And(cs) => {
            for c in cs {
                if !eval(c, subs, cx, row, before)? {
                    return Ok(false);
                }
            }
            true
        }
        GateCond::Or(cs) => {
            for c in cs {
                if eval(c, subs, cx, row, before)? {
                    return Ok(true);
                }
            }
            false
        }
        GateCond::Exists { sub, negated } => {
            let s = &mut subs[*sub];
            let exists = match key_of(row, &s.parent_keys) {
                None => false,
                Some(key) => {
                    let delta = before.map_or(0, |d| d[*sub].get(&key));
                    has_rows(s, cx, &key, delta)?
                }
            };
            exists != *negated
        }
    })
}

impl Gate {
    pub(crate) fn new(
        input: Box<dyn Operator>,
        order: SortOrder,
        primary_key: Vec<usize>,
        cond: GateCond,
        subs: Vec<ExistsSub>,
    ) -> Gate {
        let driver = match &cond {
            GateCond::Exists {
                sub,
                negated: false,
            } if subs[*sub].flip => Some(*sub),
            GateCond::And(cs) => cs.iter().find_map(|c| match c {
                GateCond::Exists {
                    sub,
                    negated: false,
                } if subs[*sub].flip => Some(*sub),
                _ => None,
            }),
            _ => None,
        };
        Gate {
            input,
            driver,
            order,
            primary_key,
            cond,
            subs,
            computed: 0,
            pending: VecDeque::new(),
        }
    }

    fn pk(&self, row: &[Value]) -> Vec<Value> {
        self.primary_key.iter().map(|&c| row[c].clone()).collect()
    }

    /// Drains the inputs and computes this push's output changes.
    fn compute(&mut self, cx: &Ctx<'_>) -> Result<Vec<Change>, EngineError> {
        let mut parent_changes = Vec::new();
        while let Some(c) = self.input.pull(cx)? {
            parent_changes.push(c);
        }
        let mut deltas: Deltas = self.subs.iter().map(|_| KeyCounts::default()).collect();
        for (i, sub) in self.subs.iter_mut().enumerate() {
            while let Some(c) = sub.child.pull(cx)? {
                let mut bump = |row: &Row, by: i64| {
                    if let Some(k) = key_of(row, &sub.child_keys) {
                        deltas[i].bump(k, by);
                    }
                };
                match &c {
                    Change::Add(n) => bump(&n.row, 1),
                    Change::Remove(n) => bump(&n.row, -1),
                    Change::Edit { old, new } => {
                        if key_of(&old.row, &sub.child_keys) != key_of(&new.row, &sub.child_keys) {
                            bump(&old.row, -1);
                            bump(&new.row, 1);
                        }
                    }
                    Change::Child { .. } => {}
                }
            }
        }
        let mut out = Vec::new();
        let mut handled = KeySet::default();
        for c in parent_changes {
            match c {
                Change::Add(n) => {
                    handled.insert(self.pk(&n.row));
                    if eval(&self.cond, &mut self.subs, cx, &n.row, None)? {
                        out.push(Change::Add(n));
                    }
                }
                Change::Remove(n) => {
                    handled.insert(self.pk(&n.row));
                    if eval(&self.cond, &mut self.subs, cx, &n.row, Some(&deltas))? {
                        out.push(Change::Remove(n));
                    }
                }
                Change::Edit { old, new } => {
                    handled.insert(self.pk(&old.row));
                    handled.insert(self.pk(&new.row));
                    let b = eval(&self.cond, &mut self.subs, cx, &old.row, Some(&deltas))?;
                    let a = eval(&self.cond, &mut self.subs, cx, &new.row, None)?;
                    match (b, a) {
                        (true, true) => out.push(Change::Edit { old, new }),
                        (true, false) => out.push(Change::Remove(old)),
                        (false, true) => out.push(Change::Add(new)),
                        (false, false) => {}
                    }
                }
                Change::Child { ref row, .. } => {
                    if eval(&self.cond, &mut self.subs, cx, row, None)? {
                        out.push(c);
                    }
                }
            }
        }
        for i in 0..self.subs.len() {
            for (key, d) in deltas[i].sorted() {
                if d == 0 {
                    continue;
                }
                let before = has_rows(&mut self.subs[i], cx, &key, d)?;
                let after = has_rows(&mut self.subs[i], cx, &key, 0)?;
                if before == after {
                    continue;
                }
                let mut parents = Vec::new();
                self.input.fetch(
                    cx,
                    &Fetch::constrained(&self.subs[i].parent_keys, &key),
                    &mut |n| {
                        parents.push(n);
                        Ok(ControlFlow::Continue(()))
                    },
                )?;
                for p in parents {
                    if !handled.insert(self.pk(&p.row)) {
                        continue;
                    }
                    let b = eval(&self.cond, &mut self.subs, cx, &p.row, Some(&deltas))?;
                    let a = eval(&self.cond, &mut self.subs, cx, &p.row, None)?;
                    match (b, a) {
                        (true, false) => out.push(Change::Remove(p)),
                        (false, true) => out.push(Change::Add(p)),
                        _ => {}
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Gate {
    /// The input rows matching `req` whose correlation key has a row in the
    /// driving subquery, in `req`'s order: the child-driven read.
    fn child_driven(
        &mut self,
        cx: &Ctx<'_>,
        i: usize,
        req: &Fetch,
    ) -> Result<Vec<Row>, EngineError> {
        let sub = &mut self.subs[i];
        let mut keys = KeySet::default();
        sub.child.fetch(cx, &Fetch::default(), &mut |n| {
            if let Some(k) = key_of(&n.row, &sub.child_keys) {
                keys.insert(k);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        let mut rows: Vec<Row> = Vec::new();
        for key in keys.sorted() {
            let mut by_key = req.clone();
            let mut clash = false;
            for (&c, v) in sub.parent_keys.iter().zip(&key) {
                match by_key.constraint.iter().find(|(k, _)| *k == c) {
                    Some((_, w)) if w != v => clash = true,
                    Some(_) => {}
                    None => by_key.constraint.push((c, v.clone())),
                }
            }
            if clash {
                continue;
            }
            self.input.fetch(cx, &by_key, &mut |n| {
                rows.push(n.row);
                Ok(ControlFlow::Continue(()))
            })?;
        }
        self.order.sort_rows(&mut rows, req.reverse);
        Ok(rows)
    }
}

impl Operator for Gate {
    fn fetch(&mut self, cx: &Ctx<'_>, req: &Fetch, sink: &mut Sink<'_>) -> Result<(), EngineError> {
        let candidates = match self.driver {
            Some(i) => Some(self.child_driven(cx, i, req)?),
            None => None,
        };
        // Undo the changes not pulled yet: hide their new rows, show old ones.
        let mut hide: Vec<&Row> = Vec::new();
        let mut restore: Vec<Row> = Vec::new();
        for c in &self.pending {
            match c {
                Change::Add(n) => hide.push(&n.row),
                Change::Remove(n) => restore.push(n.row.clone()),
                Change::Edit { old, new } => {
                    hide.push(&new.row);
                    restore.push(old.row.clone());
                }
                Change::Child { .. } => {}
            }
        }
        let order = &self.order;
        restore.retain(|r| req.admits(order, r));
        order.sort_rows(&mut restore, req.reverse);
        let hide: Vec<Row> = hide.into_iter().cloned().collect();
        let mut restore = restore.into_iter().peekable();
        let Gate {
            input, cond, subs, ..
        } = self;
        let mut stopped = false;
        let mut visit = |n: Node| -> Result<ControlFlow<()>, EngineError> {
            if hide.iter().any(|h| order.compare(h, &n.row).is_eq()) {
                return Ok(ControlFlow::Continue(()));
            }
            if !eval(cond, subs, cx, &n.row, None)? {
                return Ok(ControlFlow::Continue(()));
            }
            while let Some(r) = restore.peek() {
                let o = order.compare(r, &n.row);
                let before = if req.reverse { o.is_gt() } else { o.is_lt() };
                if before {
                    let r = restore.next().expect("peeked");
                    if sink(Node::leaf(r))?.is_break() {
                        stopped = true;
                        return Ok(ControlFlow::Break(()));
                    }
                } else {
                    break;
                }
            }
            let flow = sink(n)?;
            stopped = flow.is_break();
            Ok(flow)
        };
        match candidates {
            None => input.fetch(cx, req, &mut visit)?,
            Some(rows) => {
                for r in rows {
                    if visit(Node::leaf(r))?.is_break() {
                        break;
                    }
                }
            }
        }
        if !stopped {
            for r in restore {
                if sink(Node::leaf(r))?.is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    fn release(&mut self, cx: &Ctx<'_>, constraint: &[(usize, Value)]) -> Result<(), EngineError> {
        // EXISTS children keep no per-parent state.
        self.input.release(cx, constraint)
    }

    fn partitions(&self) -> usize {
        self.input.partitions()
    }

    fn keeps_partitions(&self) -> bool {
        self.input.keeps_partitions()
    }

    fn pull(&mut self, cx: &Ctx<'_>) -> Result<Option<Change>, EngineError> {
        let Some(seq) = cx.seq() else {
            return Ok(None);
        };
        if self.computed != seq {
            self.computed = seq;
            self.pending = self.compute(cx)?.into();
        }
        Ok(self.pending.pop_front())
    }
}
