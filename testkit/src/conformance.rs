//! The `Source` conformance suite: every backend's source must pass it.
//!
//! It checks each method against a model (a sorted, filtered list of rows) under
//! generated tables, orders, constraints, start bounds, directions, filters and
//! change streams:
//! - `fetch` returns exactly the rows inside the constraint and start bound, in
//!   the order asked (reversed when asked), each once, and stops as soon as the
//!   sink breaks; the filter hint never hides a row that passes it;
//! - answers do not depend on whether the shape was `prepare`d;
//! - `get` finds a row by key, and nothing for an absent or malformed key;
//! - after `apply`, every read reflects the change.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestCaseError, TestRunner};
use rindle_core::{
    Column, ColumnType, CompareOp, Direction, FetchRequest, Predicate, Row, SortOrder, Source,
    SourceChange, Start, StartBasis, TableSchema, Value,
};

use crate::generate::value_of;
use crate::harness::proptest_config;

/// Builds the source under test: a table with the schema and initial rows.
pub trait SourceFactory {
    /// The source type.
    type Source: Source;
    /// A fresh source holding `rows`.
    fn make(&self, schema: &TableSchema, rows: &[Row]) -> Self::Source;
}

impl<S: Source, F: Fn(&TableSchema, &[Row]) -> S> SourceFactory for F {
    type Source = S;
    fn make(&self, schema: &TableSchema, rows: &[Row]) -> S {
        self(schema, rows)
    }
}

#[derive(Clone, Debug)]
struct Probe {
    order: Vec<(usize, Direction)>,
    constraint: Vec<(usize, Value)>,
    start: Option<(Vec<Value>, StartBasis)>,
    reverse: bool,
    filter: Option<(usize, Value)>,
    prepare: bool,
    stop_after: Option<usize>,
}

#[derive(Clone, Debug)]
enum Op {
    Add(Vec<Value>),
    Remove(usize),
    Edit(usize, usize, Value),
}

#[derive(Clone, Debug)]
struct Case {
    types: Vec<ColumnType>,
    composite: bool,
    rows: Vec<Vec<Value>>,
    /// Between each batch of probes, one change.
    rounds: Vec<(Vec<Probe>, Op)>,
}

fn schema_of(c: &Case) -> TableSchema {
    let mut cols = vec![Column::new("id", ColumnType::Integer)];
    let mut pk = vec!["id"];
    if c.composite {
        cols.push(Column::new("k", ColumnType::Text));
        pk.push("k");
    }
    for (i, t) in c.types.iter().enumerate() {
        cols.push(Column::new(&format!("c{i}"), *t));
    }
    TableSchema::new("t", cols, &pk).expect("valid")
}

fn case_strategy(negative_zero: bool) -> impl Strategy<Value = Case> {
    let types = prop::collection::vec(
        select(
            &[
                ColumnType::Integer,
                ColumnType::Real,
                ColumnType::Text,
                ColumnType::Boolean,
            ][..],
        ),
        1..4,
    );
    let value_of = move |t: ColumnType| -> BoxedStrategy<Value> {
        value_of(t)
            .prop_map(move |v| match v {
                Value::Float(f) if f == 0.0 && !negative_zero => Value::Float(0.0),
                v => v,
            })
            .boxed()
    };
    (types, any::<bool>()).prop_flat_map(move |(types, composite)| {
        let kw = if composite { 2 } else { 1 };
        let all: Vec<ColumnType> = std::iter::once(ColumnType::Integer)
            .chain(composite.then_some(ColumnType::Text))
            .chain(types.iter().copied())
            .collect();
        let w = all.len();
        let cell = {
            let all = all.clone();
            move |i: usize| -> BoxedStrategy<Value> {
                if i == 0 {
                    (0i64..12).prop_map(Value::Int).boxed()
                } else if i == 1 && kw == 2 {
                    select(&["x", "y"][..]).prop_map(Value::text).boxed()
                } else {
                    prop_oneof![1 => Just(Value::Null), 4 => value_of(all[i])].boxed()
                }
            }
        };
        let row = {
            let cell = cell.clone();
            move || (0..w).map(&cell).collect::<Vec<_>>()
        };
        let value_any = {
            let all = all.clone();
            move || -> BoxedStrategy<(usize, Value)> {
                let all = all.clone();
                (0..w)
                    .prop_flat_map(move |c| {
                        prop_oneof![1 => Just(Value::Null), 4 => value_of(all[c])]
                            .prop_map(move |v| (c, v))
                    })
                    .boxed()
            }
        };
        let probe = (
            prop::collection::vec((0..w, select(&[Direction::Asc, Direction::Desc][..])), 0..3),
            prop::collection::vec(value_any(), 0..2),
            prop::option::weighted(
                0.5,
                (row(), select(&[StartBasis::At, StartBasis::After][..])),
            ),
            any::<bool>(),
            prop::option::weighted(0.3, value_any()),
            any::<bool>(),
            prop::option::weighted(0.2, 0usize..4),
        )
            .prop_map(
                |(order, constraint, start, reverse, filter, prepare, stop_after)| Probe {
                    order,
                    constraint,
                    start,
                    reverse,
                    filter,
                    prepare,
                    stop_after,
                },
            );
        let op = prop_oneof![
            row().prop_map(Op::Add),
            any::<usize>().prop_map(Op::Remove),
            (any::<usize>(), kw..w.max(kw + 1), value_any())
                .prop_map(move |(n, c, (_, v))| Op::Edit(n, c, v)),
        ];
        (
            Just(types),
            Just(composite),
            prop::collection::vec(row(), 0..16),
            prop::collection::vec((prop::collection::vec(probe, 1..4), op), 1..8),
        )
            .prop_map(|(types, composite, rows, rounds)| Case {
                types,
                composite,
                rows,
                rounds,
            })
    })
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

fn check_probe<S: Source>(
    src: &mut S,
    schema: &TableSchema,
    model: &BTreeMap<Vec<Value>, Row>,
    p: &Probe,
) -> Result<(), TestCaseError> {
    // Orders must be total: complete with the key like the engine does.
    let mut keys: Vec<(usize, Direction)> = Vec::new();
    for &(c, d) in &p.order {
        if !keys.iter().any(|(k, _)| *k == c) {
            keys.push((c, d));
        }
    }
    let order = SortOrder::new(keys).completed(schema);
    let mut constraint_cols: Vec<usize> = p.constraint.iter().map(|(c, _)| *c).collect();
    constraint_cols.sort_unstable();
    constraint_cols.dedup();
    if p.prepare {
        src.prepare(&order, &constraint_cols);
    }
    let start = p.start.as_ref().map(|(r, b)| Start {
        row: Row::new(r.clone()),
        basis: *b,
    });
    let filter = p.filter.as_ref().map(|(c, v)| Predicate::Compare {
        column: *c,
        op: CompareOp::Eq,
        value: v.clone(),
    });
    let filter = filter.filter(|f| {
        !matches!(
            f,
            Predicate::Compare {
                value: Value::Null,
                ..
            }
        )
    });
    let req = FetchRequest {
        order: &order,
        constraint: &p.constraint,
        start: start.as_ref(),
        reverse: p.reverse,
        filter: filter.as_ref(),
    };
    let mut want: Vec<Row> = model.values().filter(|r| req.admits(r)).cloned().collect();
    want.sort_by(|a, b| {
        let o = order.compare(a, b);
        if p.reverse { o.reverse() } else { o }
    });
    let mut got = Vec::new();
    let mut calls = 0usize;
    src.fetch(&req, &mut |r| {
        calls += 1;
        got.push(r.clone());
        match p.stop_after {
            Some(n) if got.len() > n => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    })
    .map_err(|e| fail(format!("fetch failed: {e}")))?;
    if let Some(n) = p.stop_after {
        if calls > n + 1 {
            return Err(fail(format!(
                "sink called {calls} times after breaking at {}",
                n + 1
            )));
        }
        want.truncate(n + 1);
    }
    match &filter {
        None => {
            if got != want {
                return Err(fail(format!("fetch {p:?}\n got {got:?}\nwant {want:?}")));
            }
        }
        Some(f) => {
            // The filter is a hint: every passing row must be there, in order.
            let got_passing: Vec<&Row> = got.iter().filter(|r| f.eval(r)).collect();
            let want_passing: Vec<&Row> = want.iter().filter(|r| f.eval(r)).collect();
            let all_admitted = got.iter().all(|r| req.admits(r));
            if p.stop_after.is_none() && (got_passing != want_passing || !all_admitted) {
                return Err(fail(format!(
                    "filtered fetch {p:?}\n got {got:?}\nwant {want:?}"
                )));
            }
        }
    }
    Ok(())
}

fn run<F: SourceFactory>(factory: &F, case: &Case) -> Result<(), TestCaseError> {
    let schema = schema_of(case);
    let mut model: BTreeMap<Vec<Value>, Row> = BTreeMap::new();
    for r in &case.rows {
        let r = Row::new(r.clone());
        model.entry(schema.key_of(&r)).or_insert(r);
    }
    let initial: Vec<Row> = model.values().cloned().collect();
    let mut src = factory.make(&schema, &initial);
    if src.schema() != &schema {
        return Err(fail("schema() differs from the table's schema".into()));
    }
    for (probes, op) in &case.rounds {
        for p in probes {
            check_probe(&mut src, &schema, &model, p)?;
        }
        // get: every present key, an absent key, a key of the wrong width.
        for (k, r) in &model {
            let found = src.get(k).map_err(|e| fail(format!("get failed: {e}")))?;
            if found.as_ref() != Some(r) {
                return Err(fail(format!("get({k:?}) = {found:?}, want {r:?}")));
            }
        }
        let absent = vec![Value::Int(-1); schema.primary_key().len()];
        if src.get(&absent).map_err(|e| fail(e.to_string()))?.is_some() {
            return Err(fail("get of an absent key found a row".into()));
        }
        if let Ok(Some(r)) = src.get(&[]) {
            return Err(fail(format!("get of an empty key found {r:?}")));
        }
        let present: Vec<Row> = model.values().cloned().collect();
        let change = match op {
            Op::Add(r) => {
                let r = Row::new(r.clone());
                if model.contains_key(&schema.key_of(&r)) {
                    continue;
                }
                SourceChange::Add(r)
            }
            Op::Remove(n) if !present.is_empty() => {
                SourceChange::Remove(present[n % present.len()].clone())
            }
            Op::Edit(n, c, v) if !present.is_empty() => {
                let old = present[n % present.len()].clone();
                let mut cells = old.cells().to_vec();
                cells[*c] = v.clone();
                SourceChange::Edit {
                    old,
                    new: Row::new(cells),
                }
            }
            _ => continue,
        };
        src.apply(&change)
            .map_err(|e| fail(format!("apply({change:?}) failed: {e}")))?;
        if let Some(r) = change.old_row() {
            model.remove(&schema.key_of(r));
        }
        if let Some(r) = change.new_row() {
            model.insert(schema.key_of(r), r.clone());
        }
    }
    Ok(())
}

/// A source together with what must outlive it (a temporary directory
/// holding its database file, say).
pub struct Owned<S, K> {
    /// The source.
    pub source: S,
    /// Kept alive as long as the source.
    pub keep: K,
}

impl<S: Source, K> Source for Owned<S, K> {
    fn schema(&self) -> &TableSchema {
        self.source.schema()
    }
    fn prepare(&mut self, order: &SortOrder, constraint_columns: &[usize]) {
        self.source.prepare(order, constraint_columns);
    }
    fn fetch(
        &self,
        req: &FetchRequest<'_>,
        sink: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> Result<(), rindle_core::SourceError> {
        self.source.fetch(req, sink)
    }
    fn get(&self, key: &[Value]) -> Result<Option<Row>, rindle_core::SourceError> {
        self.source.get(key)
    }
    fn apply(&mut self, change: &SourceChange) -> Result<(), rindle_core::SourceError> {
        self.source.apply(change)
    }
}

/// Runs the conformance suite against sources built by `factory`; panics with
/// the minimized failing case. `regressions` is where failing seeds go.
pub fn check_source<F: SourceFactory>(factory: F, regressions: &'static str, default_cases: u32) {
    check_source_with(factory, regressions, default_cases, true);
}

/// [`check_source`], with stored floats never -0.0 unless `negative_zero`
/// (for backends that cannot keep the sign of zero).
pub fn check_source_with<F: SourceFactory>(
    factory: F,
    regressions: &'static str,
    default_cases: u32,
    negative_zero: bool,
) {
    let mut runner = TestRunner::new(proptest_config(regressions, default_cases));
    if let Err(e) = runner.run(&case_strategy(negative_zero), |case| run(&factory, &case)) {
        panic!("{e}");
    }
}
