//! Join: a `related` relationship. Each parent row gets, under the
//! relationship's alias, the child pipeline's rows whose child fields equal the
//! parent's fields (null never joins) — or, for a relationship aggregate, one
//! synthetic row `[0, value]` holding `count` / `sum` / `avg` of those rows.
//!
//! Delta rule (parent changes first, then child changes, so a parent added by
//! the push carries the children as they were, and the children's own changes
//! follow as Child changes):
//!
//! ```text
//! parent Add(p) / Remove(p)     -> Add / Remove of p with its children attached
//! parent Edit(o, n), same key   -> Edit(o, n), children attached to both
//! parent Edit(o, n), key moves  -> Remove(o + its children), Add(n + its children)
//! parent Child(..)              -> unchanged (a deeper relationship's change)
//! child change c on row r       -> Child(p, alias, c) for every parent p with
//!                                  key(p) = key(r); an Edit moving r between keys
//!                                  goes as Remove(old) to the old key's parents
//!                                  and Add(new) to the new key's
//! aggregate: child changes on key k -> if the value for k changed:
//!                                  Child(p, alias, Edit([0, old], [0, new])) for
//!                                  every parent p with key(p) = k
//! ```
//!
//! State per key (a child's limit window, an aggregate's value) is released
//! when the last visible parent with that key goes, so it never outgrows the
//! parents on show.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use hashbrown::HashMap;

use super::reduce::{Accumulator, AggKind};
use super::{Ctx, Fetch, KeySet, Operator, Sink, key_of};
use crate::change::{Change, Node};
use crate::error::EngineError;
use crate::value::{Row, Value};

/// What the relationship attaches to each parent.
pub(crate) enum Attach {
    /// The child rows.
    Rows,
    /// One aggregate of the child rows.
    Aggregate {
        kind: AggKind,
        /// The aggregated child column (none for count).
        column: Option<usize>,
        /// The last value attached per key, to detect changes.
        last: HashMap<Vec<Value>, Value>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Parent,
    Child,
    Done,
}

pub(crate) struct Join {
    parent: Box<dyn Operator>,
    child: Box<dyn Operator>,
    parent_keys: Vec<usize>,
    child_keys: Vec<usize>,
    alias: Arc<str>,
    attach: Attach,
    /// Whether a parent leaving can free anything on the child side (a
    /// child limit window or a cached aggregate); when not, orphan checks
    /// are skipped.
    child_state: bool,
    seq: u64,
    phase: Phase,
    out: VecDeque<Change>,
}

/// The synthetic row holding an aggregate value.
pub(crate) fn aggregate_row(v: Value) -> Row {
    Row::from([Value::Int(0), v])
}

/// Equal and of the same variant (an integer sum that becomes a float sum of
/// the same value is still a change).
pub(crate) fn same_value(a: &Value, b: &Value) -> bool {
    core::mem::discriminant(a) == core::mem::discriminant(b) && a == b
}

/// The relationship's nodes for a parent whose key is `key`.
fn related(
    child: &mut dyn Operator,
    cx: &Ctx<'_>,
    child_keys: &[usize],
    key: Option<Vec<Value>>,
    attach: &mut Attach,
) -> Result<Vec<Node>, EngineError> {
    match attach {
        Attach::Rows => {
            let mut nodes = Vec::new();
            if let Some(key) = key {
                child.fetch(cx, &Fetch::constrained(child_keys, &key), &mut |n| {
                    nodes.push(n);
                    Ok(ControlFlow::Continue(()))
                })?;
            }
            Ok(nodes)
        }
        Attach::Aggregate { kind, column, last } => {
            let v = aggregate(child, cx, child_keys, key.as_deref(), *kind, *column)?;
            if let Some(k) = key {
                last.insert(k, v.clone());
            }
            Ok(alloc::vec![Node::leaf(aggregate_row(v))])
        }
    }
}

fn aggregate(
    child: &mut dyn Operator,
    cx: &Ctx<'_>,
    child_keys: &[usize],
    key: Option<&[Value]>,
    kind: AggKind,
    column: Option<usize>,
) -> Result<Value, EngineError> {
    let mut acc = Accumulator::default();
    if let Some(key) = key {
        child.fetch(cx, &Fetch::constrained(child_keys, key), &mut |n| {
            acc.add(column.map_or(&Value::Null, |c| &n.row[c]));
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(acc.value(kind))
}

impl Join {
    pub(crate) fn new(
        parent: Box<dyn Operator>,
        child: Box<dyn Operator>,
        parent_keys: Vec<usize>,
        child_keys: Vec<usize>,
        alias: Arc<str>,
        attach: Attach,
    ) -> Join {
        let child_state = child.keeps_partitions() || matches!(attach, Attach::Aggregate { .. });
        Join {
            parent,
            child,
            parent_keys,
            child_keys,
            alias,
            attach,
            child_state,
            seq: 0,
            phase: Phase::Done,
            out: VecDeque::new(),
        }
    }

    fn with_related(&mut self, cx: &Ctx<'_>, mut node: Node) -> Result<Node, EngineError> {
        let key = key_of(&node.row, &self.parent_keys);
        let nodes = related(
            &mut *self.child,
            cx,
            &self.child_keys,
            key,
            &mut self.attach,
        )?;
        node.relationships.push((self.alias.clone(), nodes));
        Ok(node)
    }

    fn parents(&mut self, cx: &Ctx<'_>, key: &[Value]) -> Result<Vec<Row>, EngineError> {
        let mut rows = Vec::new();
        self.parent
            .fetch(cx, &Fetch::constrained(&self.parent_keys, key), &mut |n| {
                rows.push(n.row);
                Ok(ControlFlow::Continue(()))
            })?;
        Ok(rows)
    }

    /// Releases the children of `key` when no visible parent has it any more.
    fn release_if_orphaned(
        &mut self,
        cx: &Ctx<'_>,
        key: Option<Vec<Value>>,
    ) -> Result<(), EngineError> {
        let Some(key) = key else {
            return Ok(());
        };
        if !self.child_state {
            return Ok(());
        }
        let mut still_shown = false;
        self.parent.fetch(
            cx,
            &Fetch::constrained(&self.parent_keys, &key),
            &mut |_| {
                still_shown = true;
                Ok(ControlFlow::Break(()))
            },
        )?;
        if still_shown {
            return Ok(());
        }
        if let Attach::Aggregate { last, .. } = &mut self.attach {
            last.remove(&key);
        }
        let constraint: Vec<(usize, Value)> = self.child_keys.iter().copied().zip(key).collect();
        self.child.release(cx, &constraint)
    }

    fn on_parent(&mut self, cx: &Ctx<'_>, c: Change) -> Result<(), EngineError> {
        match c {
            Change::Add(n) => {
                let n = self.with_related(cx, n)?;
                self.out.push_back(Change::Add(n));
            }
            Change::Remove(n) => {
                let key = key_of(&n.row, &self.parent_keys);
                let n = self.with_related(cx, n)?;
                self.out.push_back(Change::Remove(n));
                self.release_if_orphaned(cx, key)?;
            }
            Change::Edit { old, new } => {
                if key_of(&old.row, &self.parent_keys) == key_of(&new.row, &self.parent_keys) {
                    let new = self.with_related(cx, new)?;
                    let mut old = old;
                    if let Some(r) = new.relationships.last() {
                        old.relationships.push(r.clone());
                    }
                    self.out.push_back(Change::Edit { old, new });
                } else {
                    let old_key = key_of(&old.row, &self.parent_keys);
                    let old = self.with_related(cx, old)?;
                    let new = self.with_related(cx, new)?;
                    self.out.push_back(Change::Remove(old));
                    self.out.push_back(Change::Add(new));
                    self.release_if_orphaned(cx, old_key)?;
                }
            }
            c @ Change::Child { .. } => self.out.push_back(c),
        }
        Ok(())
    }

    fn fan_out(
        &mut self,
        cx: &Ctx<'_>,
        key: Option<Vec<Value>>,
        change: Change,
    ) -> Result<(), EngineError> {
        let Some(key) = key else {
            return Ok(());
        };
        for p in self.parents(cx, &key)? {
            self.out.push_back(Change::Child {
                row: p,
                relationship: self.alias.clone(),
                change: Box::new(change.clone()),
            });
        }
        Ok(())
    }

    fn on_child(&mut self, cx: &Ctx<'_>, c: Change) -> Result<(), EngineError> {
        if let Attach::Aggregate { .. } = self.attach {
            let mut keys = Vec::new();
            match &c {
                Change::Add(n) | Change::Remove(n) => keys.push(key_of(&n.row, &self.child_keys)),
                Change::Edit { old, new } => {
                    keys.push(key_of(&old.row, &self.child_keys));
                    keys.push(key_of(&new.row, &self.child_keys));
                }
                Change::Child { .. } => {}
            }
            for key in keys.into_iter().flatten() {
                self.refresh_aggregate(cx, key)?;
            }
            return Ok(());
        }
        match c {
            Change::Edit { old, new }
                if key_of(&old.row, &self.child_keys) != key_of(&new.row, &self.child_keys) =>
            {
                let (ko, kn) = (
                    key_of(&old.row, &self.child_keys),
                    key_of(&new.row, &self.child_keys),
                );
                self.fan_out(cx, ko, Change::Remove(old))?;
                self.fan_out(cx, kn, Change::Add(new))?;
            }
            c => {
                let key = key_of(c.row(), &self.child_keys);
                self.fan_out(cx, key, c)?;
            }
        }
        Ok(())
    }

    fn refresh_aggregate(&mut self, cx: &Ctx<'_>, key: Vec<Value>) -> Result<(), EngineError> {
        let Attach::Aggregate { kind, column, last } = &mut self.attach else {
            return Ok(());
        };
        // A key no parent has been given a value for has no parent to tell.
        let Some(old) = last.get(&key).cloned() else {
            return Ok(());
        };
        let (kind, column) = (*kind, *column);
        let new = aggregate(
            &mut *self.child,
            cx,
            &self.child_keys,
            Some(&key),
            kind,
            column,
        )?;
        if same_value(&old, &new) {
            return Ok(());
        }
        if let Attach::Aggregate { last, .. } = &mut self.attach {
            last.insert(key.clone(), new.clone());
        }
        self.fan_out(
            cx,
            Some(key),
            Change::Edit {
                old: Node::leaf(aggregate_row(old)),
                new: Node::leaf(aggregate_row(new)),
            },
        )
    }
}

impl Operator for Join {
    fn fetch(&mut self, cx: &Ctx<'_>, req: &Fetch, sink: &mut Sink<'_>) -> Result<(), EngineError> {
        let Join {
            parent,
            child,
            parent_keys,
            child_keys,
            alias,
            attach,
            ..
        } = self;
        parent.fetch(cx, req, &mut |mut n| {
            let key = key_of(&n.row, parent_keys);
            let nodes = related(&mut **child, cx, child_keys, key, attach)?;
            n.relationships.push((alias.clone(), nodes));
            sink(n)
        })
    }

    fn release(&mut self, cx: &Ctx<'_>, constraint: &[(usize, Value)]) -> Result<(), EngineError> {
        // The parent rows matching `constraint` leave view: release the parent
        // side first, then the children no remaining parent shows.
        if !self.child_state {
            return self.parent.release(cx, constraint);
        }
        // Distinct keys, in order (a set of keys, as the gate keeps).
        let mut leaving = KeySet::default();
        self.parent.fetch(
            cx,
            &Fetch {
                constraint: constraint.to_vec(),
                ..Fetch::default()
            },
            &mut |n| {
                if let Some(key) = key_of(&n.row, &self.parent_keys) {
                    leaving.insert(key);
                }
                Ok(ControlFlow::Continue(()))
            },
        )?;
        self.parent.release(cx, constraint)?;
        for key in leaving.sorted() {
            self.release_if_orphaned(cx, Some(key))?;
        }
        Ok(())
    }

    fn keeps_partitions(&self) -> bool {
        self.child_state || self.parent.keeps_partitions()
    }

    fn partitions(&self) -> usize {
        let cached = match &self.attach {
            Attach::Aggregate { last, .. } => last.len(),
            Attach::Rows => 0,
        };
        self.parent.partitions() + self.child.partitions() + cached
    }

    fn pull(&mut self, cx: &Ctx<'_>) -> Result<Option<Change>, EngineError> {
        let Some(seq) = cx.seq() else {
            return Ok(None);
        };
        if self.seq != seq {
            self.seq = seq;
            self.phase = Phase::Parent;
        }
        loop {
            if let Some(c) = self.out.pop_front() {
                return Ok(Some(c));
            }
            match self.phase {
                Phase::Parent => match self.parent.pull(cx)? {
                    Some(c) => self.on_parent(cx, c)?,
                    None => self.phase = Phase::Child,
                },
                Phase::Child => match self.child.pull(cx)? {
                    Some(c) => self.on_child(cx, c)?,
                    None => self.phase = Phase::Done,
                },
                Phase::Done => return Ok(None),
            }
        }
    }
}
