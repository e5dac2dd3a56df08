//! Group: a root aggregate. Input rows are grouped by the `groupBy` columns
//! (all rows form one group without them); each group yields one output row
//! `[group values..., aggregate]` (or `[0, aggregate]` without `groupBy`),
//! kept when `having` holds. Without `groupBy` the single group always exists,
//! even empty (`count` 0, `sum` / `avg` null); with it, a group exists while it
//! has rows.
//!
//! Delta rule: every input change adds its new row to, and removes its old row
//! from, the accumulator of its group ([`super::reduce`]); for each group it
//! touched, with `o` the group's output row before and `n` after (each absent
//! when the group is empty or fails `having`):
//!
//! ```text
//! o absent, n present      -> Add(n)
//! o present, n absent      -> Remove(o)
//! both present, different  -> Edit(o, n)
//! ```
//!
//! The output rows are kept ordered for fetches (a `limit` above reads them);
//! each change is applied to them as it is pulled.

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::{Bound as RangeBound, ControlFlow};

use hashbrown::HashMap;

use super::join::same_value;
use super::reduce::{Accumulator, AggKind};
use super::{Ctx, Fetch, KeySet, Operator, Sink};
use crate::change::{Change, Node};
use crate::error::EngineError;
use crate::ordering::{SortOrder, SortedRow};
use crate::predicate::Predicate;
use crate::source::StartBasis;
use crate::value::{Row, Value};

/// One group: its accumulator and the output row currently shown for it.
#[derive(Default)]
struct GroupState {
    acc: Accumulator,
    shown: Option<Row>,
}

pub(crate) struct Group {
    input: Box<dyn Operator>,
    group_cols: Vec<usize>,
    kind: AggKind,
    column: Option<usize>,
    having: Option<Predicate>,
    out_order: Arc<SortOrder>,
    /// By group key; never iterated in order (changes go out in the order
    /// of the touched keys, fetches read `visible`).
    groups: HashMap<Vec<Value>, GroupState>,
    visible: BTreeSet<SortedRow>,
    hydrated: bool,
    computed: u64,
    pending: VecDeque<Change>,
}

impl Group {
    pub(crate) fn new(
        input: Box<dyn Operator>,
        group_cols: Vec<usize>,
        kind: AggKind,
        column: Option<usize>,
        having: Option<Predicate>,
        out_order: SortOrder,
    ) -> Group {
        Group {
            input,
            group_cols,
            kind,
            column,
            having,
            out_order: Arc::new(out_order),
            groups: HashMap::new(),
            visible: BTreeSet::new(),
            hydrated: false,
            computed: 0,
            pending: VecDeque::new(),
        }
    }

    fn key(&self, row: &[Value]) -> Vec<Value> {
        self.group_cols.iter().map(|&c| row[c].clone()).collect()
    }

    fn cell<'r>(&self, row: &'r [Value]) -> &'r Value {
        self.column.map_or(&Value::Null, |c| &row[c])
    }

    /// The output row of a group, if it exists and passes `having`.
    fn output(&self, key: &[Value]) -> Option<Row> {
        let acc = &self.groups.get(key)?.acc;
        if acc.rows() == 0 && !self.group_cols.is_empty() {
            return None;
        }
        let mut cells = if self.group_cols.is_empty() {
            alloc::vec![Value::Int(0)]
        } else {
            key.to_vec()
        };
        cells.push(acc.value(self.kind));
        let row = Row::new(cells);
        self.having
            .as_ref()
            .is_none_or(|h| h.eval(&row))
            .then_some(row)
    }

    fn show(&mut self, key: Vec<Value>, row: Option<Row>) {
        let group = self.groups.entry(key).or_default();
        if let Some(old) = group.shown.take() {
            self.visible.remove(&SortedRow::new(old, &self.out_order));
        }
        if let Some(new) = row {
            self.visible
                .insert(SortedRow::new(new.clone(), &self.out_order));
            group.shown = Some(new);
        }
    }

    fn rebuild(&mut self, cx: &Ctx<'_>, key: &[Value]) -> Result<(), EngineError> {
        let mut acc = Accumulator::default();
        let column = self.column;
        self.input
            .fetch(cx, &Fetch::constrained(&self.group_cols, key), &mut |n| {
                acc.add(column.map_or(&Value::Null, |c| &n.row[c]));
                Ok(ControlFlow::Continue(()))
            })?;
        self.groups.entry(key.to_vec()).or_default().acc = acc;
        Ok(())
    }

    fn hydrate(&mut self, cx: &Ctx<'_>) -> Result<(), EngineError> {
        let mut rows = Vec::new();
        self.input.fetch(cx, &Fetch::default(), &mut |n| {
            rows.push(n.row);
            Ok(ControlFlow::Continue(()))
        })?;
        if self.group_cols.is_empty() {
            self.groups.insert(Vec::new(), GroupState::default());
        }
        for r in &rows {
            let v = self.cell(r).clone();
            self.groups.entry(self.key(r)).or_default().acc.add(&v);
        }
        let keys: Vec<Vec<Value>> = self.groups.keys().cloned().collect();
        for k in keys {
            let row = self.output(&k);
            self.show(k, row);
        }
        self.hydrated = true;
        Ok(())
    }

    fn compute(&mut self, cx: &Ctx<'_>) -> Result<Vec<Change>, EngineError> {
        let mut touched = KeySet::default();
        while let Some(c) = self.input.pull(cx)? {
            let (old, new) = match &c {
                Change::Add(n) => (None, Some(&n.row)),
                Change::Remove(n) => (Some(&n.row), None),
                Change::Edit { old, new } => (Some(&old.row), Some(&new.row)),
                Change::Child { .. } => (None, None),
            };
            if let Some(r) = old {
                let (k, v) = (self.key(r), self.cell(r).clone());
                self.groups.entry(k.clone()).or_default().acc.remove(&v);
                touched.insert(k);
            }
            if let Some(r) = new {
                let (k, v) = (self.key(r), self.cell(r).clone());
                self.groups.entry(k.clone()).or_default().acc.add(&v);
                touched.insert(k);
            }
        }
        let mut out = Vec::new();
        for k in touched.sorted() {
            if self.groups.get(&k).is_some_and(|g| g.acc.needs_rebuild()) {
                self.rebuild(cx, &k)?;
            }
            let new = self.output(&k);
            // `shown` follows the computed state; `visible` follows the pulls.
            let old = match self.groups.get_mut(&k) {
                Some(g) if g.acc.rows() == 0 && !self.group_cols.is_empty() => {
                    self.groups.remove(&k).and_then(|g| g.shown)
                }
                Some(g) => core::mem::replace(&mut g.shown, new.clone()),
                None => None,
            };
            match (old, new) {
                (None, Some(n)) => out.push((k, Change::Add(Node::leaf(n)))),
                (Some(o), None) => out.push((k, Change::Remove(Node::leaf(o)))),
                (Some(o), Some(n)) => {
                    let same = o.iter().zip(n.iter()).all(|(a, b)| same_value(a, b));
                    if !same {
                        out.push((
                            k,
                            Change::Edit {
                                old: Node::leaf(o),
                                new: Node::leaf(n),
                            },
                        ));
                    }
                }
                (None, None) => {}
            }
        }
        // Removals first, so a consumer never holds more rows than it will.
        let (mut first, rest): (Vec<Change>, Vec<Change>) = out
            .into_iter()
            .map(|(_, c)| c)
            .partition(|c| matches!(c, Change::Remove(_)));
        first.extend(rest);
        Ok(first)
    }
}

impl Operator for Group {
    fn fetch(&mut self, cx: &Ctx<'_>, req: &Fetch, sink: &mut Sink<'_>) -> Result<(), EngineError> {
        if !self.hydrated {
            self.hydrate(cx)?;
        }
        let probe = req
            .start
            .as_ref()
            .map(|s| (SortedRow::new(s.row.clone(), &self.out_order), s.basis));
        let bound = |p: &SortedRow, basis: StartBasis| match basis {
            StartBasis::At => RangeBound::Included(p.clone()),
            StartBasis::After => RangeBound::Excluded(p.clone()),
        };
        let range = match (&probe, req.reverse) {
            (Some((p, b)), false) => (bound(p, *b), RangeBound::Unbounded),
            (Some((p, b)), true) => (RangeBound::Unbounded, bound(p, *b)),
            (None, _) => (RangeBound::Unbounded, RangeBound::Unbounded),
        };
        let rows: Vec<Row> = if req.reverse {
            self.visible
                .range(range)
                .rev()
                .map(|s| s.row.clone())
                .collect()
        } else {
            self.visible.range(range).map(|s| s.row.clone()).collect()
        };
        for r in rows {
            if !req.constraint.iter().all(|(c, v)| r[*c] == *v) {
                continue;
            }
            if sink(Node::leaf(r))?.is_break() {
                break;
            }
        }
        Ok(())
    }

    fn pull(&mut self, cx: &Ctx<'_>) -> Result<Option<Change>, EngineError> {
        let Some(seq) = cx.seq() else {
            return Ok(None);
        };
        if self.computed != seq {
            self.computed = seq;
            if !self.hydrated {
                while self.input.pull(cx)?.is_some() {}
                return Ok(None);
            }
            self.pending = self.compute(cx)?.into();
        }
        let Some(c) = self.pending.pop_front() else {
            return Ok(None);
        };
        // Apply as it is taken, so fetches match what the consumer holds.
        let (old, new) = match &c {
            Change::Add(n) => (None, Some(&n.row)),
            Change::Remove(n) => (Some(&n.row), None),
            Change::Edit { old, new } => (Some(&old.row), Some(&new.row)),
            Change::Child { .. } => (None, None),
        };
        if let Some(o) = old {
            self.visible
                .remove(&SortedRow::new(o.clone(), &self.out_order));
        }
        if let Some(n) = new {
            self.visible
                .insert(SortedRow::new(n.clone(), &self.out_order));
        }
        Ok(Some(c))
    }
}
