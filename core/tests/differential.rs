//! view-after-write == fresh-query, for single-table queries, under generated
//! tables, rows, queries and long write streams.
//!
//! After every write the incrementally maintained view must equal (1) a naive
//! evaluation of the AST written here independently of the engine (its own
//! predicate semantics and LIKE matcher), and (2) a fresh hydration of the same
//! query on a new engine over the current rows. While changes are applied one by
//! one, a limited view must never hold more than `limit` rows.
//!
//! Case count: `RINDLE_PROPTEST_CASES` (default 256).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use rindle_core::*;

fn config() -> Config {
    let cases = std::env::var("RINDLE_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        max_shrink_iters: 4096,
        // Relative to the crate root, where cargo runs integration tests.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/differential.txt",
        ))),
        ..Config::default()
    }
}

// ---------------------------------------------------------------- generation

#[derive(Clone, Debug)]
struct Spec {
    composite_key: bool,
    extra: Vec<ColumnType>,
}

impl Spec {
    fn schema(&self) -> TableSchema {
        let mut cols = vec![Column::new("id", ColumnType::Integer)];
        let mut pk = vec!["id"];
        if self.composite_key {
            cols.push(Column::new("k2", ColumnType::Text));
            pk.push("k2");
        }
        for (i, t) in self.extra.iter().enumerate() {
            cols.push(Column::new(&format!("c{i}"), *t));
        }
        TableSchema::new("t", cols, &pk).unwrap()
    }

    fn key_width(&self) -> usize {
        if self.composite_key { 2 } else { 1 }
    }

    fn width(&self) -> usize {
        self.key_width() + self.extra.len()
    }

    fn types(&self) -> Vec<ColumnType> {
        let mut t = vec![ColumnType::Integer];
        if self.composite_key {
            t.push(ColumnType::Text);
        }
        t.extend(self.extra.iter().copied());
        t
    }

    fn names(&self) -> Vec<String> {
        self.schema()
            .columns()
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }
}

const TEXTS: &[&str] = &["", "a", "A", "ab", "aB", "b", "b%", "a_c", "abc", "é", "zz"];
const FLOATS: &[f64] = &[-1.5, -0.0, 0.0, 0.5, 1.0, 2.0, 2.5];

fn value_of(t: ColumnType) -> BoxedStrategy<Value> {
    match t {
        ColumnType::Integer => (-3i64..4).prop_map(Value::Int).boxed(),
        ColumnType::Real => prop_oneof![
            prop::sample::select(FLOATS).prop_map(Value::Float),
            (-2i64..3).prop_map(Value::Int),
        ]
        .boxed(),
        ColumnType::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
        _ => prop::sample::select(TEXTS).prop_map(Value::text).boxed(),
    }
}

fn cell(t: ColumnType) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Value::Null), 4 => value_of(t)].boxed()
}

/// Any value of any kind (literals may mismatch their column).
fn any_value() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => value_of(ColumnType::Boolean),
        3 => value_of(ColumnType::Integer),
        2 => value_of(ColumnType::Real),
        3 => value_of(ColumnType::Text),
    ]
    .boxed()
}

fn literal_for(t: ColumnType) -> BoxedStrategy<Value> {
    prop_oneof![4 => value_of(t), 1 => any_value()].boxed()
}

fn key_strategy(spec: &Spec) -> BoxedStrategy<Vec<Value>> {
    if spec.composite_key {
        (0i64..6, prop::sample::select(&["x", "y"][..]))
            .prop_map(|(i, s)| vec![Value::Int(i), Value::text(s)])
            .boxed()
    } else {
        (0i64..10).prop_map(|i| vec![Value::Int(i)]).boxed()
    }
}

fn row_strategy(spec: &Spec) -> BoxedStrategy<Row> {
    let cells: Vec<BoxedStrategy<Value>> = spec.extra.iter().map(|t| cell(*t)).collect();
    (key_strategy(spec), cells)
        .prop_map(|(mut key, cells)| {
            key.extend(cells);
            Row::new(key)
        })
        .boxed()
}

const PATTERNS: &[&str] = &[
    "a%", "%b", "%", "_", "a_", "%a%", "A%", "b\\%", "a\\_c", "a_c", "", "é", "%é", "ab%",
];

fn condition(spec: &Spec, depth: u32) -> BoxedStrategy<Condition> {
    let names = spec.names();
    let types = spec.types();
    let simple = (0..names.len(), prop::sample::select(&SimpleOp::ALL[..]))
        .prop_flat_map(move |(i, op)| {
            let name = names[i].clone();
            let t = types[i];
            let lit: BoxedStrategy<Literal> = match op {
                SimpleOp::In | SimpleOp::NotIn => prop::collection::vec(
                    prop_oneof![5 => literal_for(t), 1 => Just(Value::Null)],
                    0..4,
                )
                .prop_map(Literal::List)
                .boxed(),
                SimpleOp::Like | SimpleOp::NotLike | SimpleOp::ILike | SimpleOp::NotILike => {
                    prop_oneof![
                        6 => prop::sample::select(PATTERNS).prop_map(|p| Literal::Scalar(Value::text(p))),
                        1 => Just(Literal::Scalar(Value::Null)),
                    ]
                    .boxed()
                }
                _ => literal_for(t).prop_map(Literal::Scalar).boxed(),
            };
            lit.prop_map(move |value| Condition::Simple {
                op,
                left: ValuePosition::Column { name: name.clone() },
                right: ValuePosition::Literal { value },
            })
        })
        .boxed();
    if depth == 0 {
        return simple;
    }
    let inner = condition(spec, depth - 1);
    prop_oneof![
        3 => simple,
        1 => prop::collection::vec(inner.clone(), 0..4).prop_map(|conditions| Condition::And { conditions }),
        1 => prop::collection::vec(inner, 0..4).prop_map(|conditions| Condition::Or { conditions }),
    ]
    .boxed()
}

fn query_strategy(spec: &Spec) -> BoxedStrategy<Ast> {
    let names = spec.names();
    let types = spec.types();
    let n = names.len();
    let order = prop::collection::vec(
        (
            0..n,
            prop::sample::select(&[Direction::Asc, Direction::Desc][..]),
        ),
        0..3,
    );
    let start = prop::option::weighted(
        0.3,
        (prop::collection::vec(0..n, 0..3), any::<bool>()).prop_flat_map(move |(cols, excl)| {
            let cells: Vec<BoxedStrategy<Value>> = cols
                .iter()
                .map(|&c| prop_oneof![1 => Just(Value::Null), 5 => value_of(types[c])].boxed())
                .collect();
            let names = names.clone();
            cells.prop_map(move |vals| {
                let row = cols.iter().zip(vals).map(|(&c, v)| (names[c].clone(), v));
                Bound::new(row, excl)
            })
        }),
    );
    let names = spec.names();
    (
        prop::option::weighted(0.8, condition(spec, 2)),
        order,
        start,
        prop::option::weighted(0.6, 0u64..6),
        prop::bool::weighted(0.1),
    )
        .prop_map(move |(where_, order, start, limit, one)| Ast {
            table: "t".into(),
            where_,
            order_by: if order.is_empty() {
                None
            } else {
                Some(
                    order
                        .into_iter()
                        .map(|(c, d)| (names[c].clone(), d))
                        .collect(),
                )
            },
            start,
            limit,
            one,
            ..Ast::default()
        })
        .boxed()
}

/// A write, resolved against the rows present when it runs.
#[derive(Clone, Debug)]
enum Op {
    /// Insert this row (a present key makes it a refused duplicate).
    Add(Row),
    /// Remove the `n`-th present row (mod the count).
    Remove(usize),
    /// Replace column `col` of the `n`-th present row with `value`.
    EditCell(usize, usize, Value),
    /// Replace the `n`-th present row with this one, keeping its key (or taking
    /// the new key when `rekey`).
    Replace(usize, Row, bool),
}

fn op_strategy(spec: &Spec) -> BoxedStrategy<Op> {
    let types = spec.types();
    let kw = spec.key_width();
    let w = spec.width();
    prop_oneof![
        3 => row_strategy(spec).prop_map(Op::Add),
        2 => any::<usize>().prop_map(Op::Remove),
        4 => (any::<usize>(), kw..w.max(kw + 1))
            .prop_flat_map(move |(n, c)| {
                let c = c.min(w - 1);
                cell(types[c]).prop_map(move |v| Op::EditCell(n, c, v))
            }),
        2 => (any::<usize>(), row_strategy(spec), prop::bool::weighted(0.3))
            .prop_map(|(n, r, k)| Op::Replace(n, r, k)),
    ]
    .boxed()
}

fn scenario() -> impl Strategy<Value = (Spec, Vec<Row>, Ast, Vec<Op>)> {
    let types = prop::sample::select(
        &[
            ColumnType::Integer,
            ColumnType::Real,
            ColumnType::Text,
            ColumnType::Boolean,
        ][..],
    );
    (any::<bool>(), prop::collection::vec(types, 1..4))
        .prop_map(|(composite_key, extra)| Spec {
            composite_key,
            extra,
        })
        .prop_flat_map(|spec| {
            (
                Just(spec.clone()),
                prop::collection::vec(row_strategy(&spec), 0..14),
                query_strategy(&spec),
                prop::collection::vec(op_strategy(&spec), 1..40),
            )
        })
}

// ------------------------------------------------- the independent evaluator

fn like(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('%', rest)) => (0..=s.len()).any(|i| like(rest, &s[i..])),
        Some(('_', rest)) => !s.is_empty() && like(rest, &s[1..]),
        Some(('\\', rest)) => {
            let (lit, rest) = match rest.split_first() {
                Some((c, r)) => (*c, r),
                None => ('\\', rest),
            };
            s.first() == Some(&lit) && like(rest, &s[1..])
        }
        Some((c, rest)) => s.first() == Some(c) && like(rest, &s[1..]),
    }
}

fn eval(cond: &Condition, names: &[String], row: &Row) -> bool {
    match cond {
        Condition::And { conditions } => conditions.iter().all(|c| eval(c, names, row)),
        Condition::Or { conditions } => conditions.iter().any(|c| eval(c, names, row)),
        Condition::Simple { op, left, right } => {
            let ValuePosition::Column { name } = left else {
                unreachable!()
            };
            let ValuePosition::Literal { value } = right else {
                unreachable!()
            };
            let cell = &row[names.iter().position(|n| n == name).unwrap()];
            let scalar = || match value {
                Literal::Scalar(v) => v.clone(),
                Literal::List(_) => unreachable!(),
            };
            match op {
                SimpleOp::Is => *cell == scalar(),
                SimpleOp::IsNot => *cell != scalar(),
                SimpleOp::In | SimpleOp::NotIn => {
                    let Literal::List(vs) = value else {
                        unreachable!()
                    };
                    if cell.is_null() {
                        return false;
                    }
                    let found = vs.iter().any(|v| !v.is_null() && v == cell);
                    found == (*op == SimpleOp::In)
                }
                SimpleOp::Like | SimpleOp::NotLike | SimpleOp::ILike | SimpleOp::NotILike => {
                    let pat = scalar();
                    if cell.is_null() || pat.is_null() {
                        return false;
                    }
                    let negated = matches!(op, SimpleOp::NotLike | SimpleOp::NotILike);
                    let fold = matches!(op, SimpleOp::ILike | SimpleOp::NotILike);
                    let Value::Text(s) = cell else {
                        return negated;
                    };
                    let lower = |x: &str| -> Vec<char> {
                        x.chars()
                            .map(|c| if fold { c.to_ascii_lowercase() } else { c })
                            .collect()
                    };
                    let p = lower(pat.as_str().unwrap());
                    like(&p, &lower(s)) != negated
                }
                _ => {
                    let v = scalar();
                    if cell.is_null() || v.is_null() {
                        return false;
                    }
                    match op {
                        SimpleOp::Eq => *cell == v,
                        SimpleOp::Ne => *cell != v,
                        SimpleOp::Lt => *cell < v,
                        SimpleOp::Le => *cell <= v,
                        SimpleOp::Gt => *cell > v,
                        SimpleOp::Ge => *cell >= v,
                        _ => unreachable!(),
                    }
                }
            }
        }
        Condition::CorrelatedSubquery { .. } => unreachable!(),
    }
}

/// The query run from scratch over `rows`, the slow obvious way.
fn naive(spec: &Spec, ast: &Ast, rows: &BTreeMap<Vec<Value>, Row>) -> Vec<Row> {
    let names = spec.names();
    let idx = |n: &str| names.iter().position(|m| m == n).unwrap();
    let mut order: Vec<(usize, Direction)> = Vec::new();
    for (n, d) in ast.order_by.iter().flatten() {
        if !order.iter().any(|(c, _)| *c == idx(n)) {
            order.push((idx(n), *d));
        }
    }
    for k in 0..spec.key_width() {
        if !order.iter().any(|(c, _)| *c == k) {
            order.push((k, Direction::Asc));
        }
    }
    let cmp = |a: &[Value], b: &[Value]| {
        for &(c, d) in &order {
            let o = a[c].cmp(&b[c]);
            if o.is_ne() {
                return if d == Direction::Desc { o.reverse() } else { o };
            }
        }
        std::cmp::Ordering::Equal
    };
    let mut out: Vec<Row> = rows
        .values()
        .filter(|r| ast.where_.as_ref().is_none_or(|w| eval(w, &names, r)))
        .cloned()
        .collect();
    out.sort_by(|a, b| cmp(a, b));
    if let Some(start) = &ast.start {
        let mut b = vec![Value::Null; spec.width()];
        for (n, v) in &start.row {
            b[idx(n)] = v.clone();
        }
        out.retain(|r| {
            let o = cmp(r, &b);
            o.is_gt() || (o.is_eq() && !start.exclusive)
        });
    }
    let limit = if ast.one {
        Some(ast.limit.unwrap_or(1).min(1))
    } else {
        ast.limit
    };
    if let Some(l) = limit {
        out.truncate(l as usize);
    }
    out
}

fn fresh(spec: &Spec, ast: &Ast, rows: &BTreeMap<Vec<Value>, Row>) -> Vec<Row> {
    let mut cat = MemoryCatalog::new();
    cat.add_table(spec.schema()).unwrap();
    for r in rows.values() {
        cat.insert("t", r.clone()).unwrap();
    }
    let mut engine = Engine::new(cat);
    engine
        .add_query(QueryId(0), ast)
        .unwrap()
        .into_iter()
        .map(|n| n.row)
        .collect()
}

// ------------------------------------------------------------------ the run

fn run(spec: Spec, initial: Vec<Row>, ast: Ast, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let schema = spec.schema();
    let key = |r: &Row| schema.key_of(r);
    let mut rows: BTreeMap<Vec<Value>, Row> = BTreeMap::new();
    let mut cat = MemoryCatalog::new();
    cat.add_table(schema.clone()).unwrap();
    for r in initial {
        if cat.insert("t", r.clone()).is_ok() {
            rows.insert(key(&r), r);
        }
    }
    let mut engine = Engine::new(cat);
    let q = QueryId(7);
    let nodes = engine.add_query(q, &ast).unwrap();
    let mut view = View::hydrated(engine.format(q).unwrap().clone(), &nodes).unwrap();
    let limit = if ast.one {
        Some(ast.limit.unwrap_or(1).min(1))
    } else {
        ast.limit
    };
    let check = |view: &View, rows: &BTreeMap<Vec<Value>, Row>, step: usize| {
        let got: Vec<Row> = view.rows().cloned().collect();
        let want = naive(&spec, &ast, rows);
        prop_assert_eq!(&got, &want, "view vs naive evaluation after step {}", step);
        let again = fresh(&spec, &ast, rows);
        prop_assert_eq!(&got, &again, "view vs fresh hydration after step {}", step);
        Ok(())
    };
    check(&view, &rows, 0)?;

    for (step, op) in ops.into_iter().enumerate() {
        let present: Vec<Row> = rows.values().cloned().collect();
        let pick = |n: usize| present.get(n % present.len().max(1)).cloned();
        let change = match op {
            Op::Add(r) => SourceChange::Add(r),
            Op::Remove(n) => match pick(n) {
                Some(r) => SourceChange::Remove(r),
                None => continue,
            },
            Op::EditCell(n, c, v) => match pick(n) {
                Some(old) => {
                    let mut cells = old.cells().to_vec();
                    cells[c] = v;
                    SourceChange::Edit {
                        old,
                        new: Row::new(cells),
                    }
                }
                None => continue,
            },
            Op::Replace(n, r, rekey) => match pick(n) {
                Some(old) => {
                    let mut cells = r.cells().to_vec();
                    if !rekey {
                        for (i, v) in old.iter().take(spec.key_width()).enumerate() {
                            cells[i] = v.clone();
                        }
                    }
                    SourceChange::Edit {
                        old,
                        new: Row::new(cells),
                    }
                }
                None => continue,
            },
        };
        // Which changes strict mode must refuse, per the model.
        let refused = match &change {
            SourceChange::Add(r) => rows.contains_key(&key(r)),
            SourceChange::Edit { old, new } => key(old) != key(new) && rows.contains_key(&key(new)),
            SourceChange::Remove(_) => false,
        };
        let result = engine.push("t", change.clone());
        if refused {
            prop_assert!(
                matches!(
                    result,
                    Err(PushError::Change(ChangeError::DuplicateKey { .. }))
                ),
                "step {}: expected a duplicate-key refusal, got {:?}",
                step,
                result
            );
            prop_assert!(
                engine.drain().is_empty(),
                "a refused change produced output"
            );
            check(&view, &rows, step + 1)?;
            continue;
        }
        prop_assert!(result.is_ok(), "step {}: push failed: {:?}", step, result);
        match change {
            SourceChange::Add(r) => {
                rows.insert(key(&r), r);
            }
            SourceChange::Remove(r) => {
                rows.remove(&key(&r));
            }
            SourceChange::Edit { old, new } => {
                rows.remove(&key(&old));
                rows.insert(key(&new), new);
            }
        }
        for event in engine.drain() {
            match event {
                QueryEvent::Changed { query, changes } => {
                    prop_assert_eq!(query, q);
                    for c in &changes {
                        view.apply(c)
                            .map_err(|e| TestCaseError::fail(format!("step {step}: {e}: {c:?}")))?;
                        if let Some(l) = limit {
                            prop_assert!(
                                view.len() as u64 <= l,
                                "step {}: view held {} rows with limit {}",
                                step,
                                view.len(),
                                l
                            );
                        }
                    }
                }
                other => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
            }
        }
        check(&view, &rows, step + 1)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn single_table_views_match_fresh_queries(
        (spec, initial, ast, ops) in scenario()
    ) {
        run(spec, initial, ast, ops)?;
    }
}
