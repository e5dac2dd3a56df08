//! Proptest generators: schemas with relationships, rows, queries inside the
//! supported subset, and write streams; all shrinkable.
//!
//! Values come from small domains so that keys collide, non-key columns repeat,
//! filters flip, and rows cross limit boundaries often. Writes are generated
//! abstractly (which table, which present row, which cell) and resolved against
//! the evolving rows, so every shrunk case is still a valid one.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::select;
use rindle_core::{
    Aggregate, Ast, Bound, Column, ColumnType, Condition, CorrelatedSubquery, Correlation,
    Direction, ExistsOp, Literal, SimpleOp, Value, ValuePosition,
};
use serde_json::Value as Json;

use crate::data::{Model, Scenario, TableData, Write, WriteOp, value_to_json};

/// Which schemas to draw.
#[derive(Clone, Debug)]
pub struct SchemaConfig {
    /// Tables besides a junction table (at least 1).
    pub max_tables: usize,
    /// Foreign-key columns between tables (one-to-many / many-to-one).
    pub relationships: bool,
    /// A table may reference itself.
    pub self_reference: bool,
    /// A junction table for many-to-many.
    pub junction: bool,
    /// Some tables get a two-column primary key.
    pub composite_keys: bool,
    /// Non-key, non-reference columns per table (at least 1).
    pub max_columns: usize,
}

/// Which queries to draw.
#[derive(Clone, Debug)]
pub struct QueryConfig {
    /// How deep `related` / EXISTS may nest below the root.
    pub max_depth: u32,
    /// `related` children per level, at most.
    pub max_related: usize,
    /// Draw `related` children.
    pub related: bool,
    /// Draw EXISTS / NOT EXISTS conditions (with `flip` either way).
    pub exists: bool,
    /// Draw OR (and AND) trees; otherwise at most one simple condition.
    pub or: bool,
    /// Nesting depth of AND/OR trees.
    pub condition_depth: u32,
    /// Draw `limit` (and `one`).
    pub limit: bool,
    /// Draw `start`.
    pub start: bool,
    /// Draw relationship aggregates.
    pub relationship_aggregates: bool,
    /// Draw root aggregates with `groupBy` / `having`.
    pub root_aggregates: bool,
    /// Draw `select` projections.
    pub select: bool,
}

/// Everything a generated case is drawn from.
#[derive(Clone, Debug)]
pub struct CaseConfig {
    /// Schemas.
    pub schema: SchemaConfig,
    /// Queries.
    pub query: QueryConfig,
    /// Initial rows per table, at most.
    pub max_rows: usize,
    /// Transactions, at most.
    pub max_steps: usize,
    /// Writes per transaction, at most.
    pub max_burst: usize,
    /// Whether stored floats may be -0.0 (backends that cannot keep the sign
    /// of zero, like SQLite's REAL columns, turn this off).
    pub negative_zero: bool,
}

impl CaseConfig {
    /// This config, storing 0.0 wherever it would have stored -0.0.
    pub fn without_negative_zero(mut self) -> CaseConfig {
        self.negative_zero = false;
        self
    }
}

/// Replaces -0.0 with 0.0 in a JSON cell.
fn positive_zero(cell: &mut Json) {
    if cell
        .as_f64()
        .is_some_and(|f| f == 0.0 && f.is_sign_negative())
    {
        *cell = Json::from(0.0);
    }
}

impl CaseConfig {
    /// One table; every simple operator under AND/OR, `orderBy`, `start`,
    /// `limit`, `one`.
    pub fn single_table() -> CaseConfig {
        CaseConfig {
            schema: SchemaConfig {
                max_tables: 1,
                relationships: false,
                self_reference: false,
                junction: false,
                composite_keys: true,
                max_columns: 3,
            },
            query: QueryConfig {
                max_depth: 0,
                max_related: 0,
                related: false,
                exists: false,
                or: true,
                condition_depth: 2,
                limit: true,
                start: true,
                relationship_aggregates: false,
                root_aggregates: false,
                select: false,
            },
            max_rows: 12,
            max_steps: 12,
            max_burst: 4,
            negative_zero: true,
        }
    }

    /// The full subset of QUERY.md over related tables.
    pub fn full() -> CaseConfig {
        CaseConfig {
            schema: SchemaConfig {
                max_tables: 3,
                relationships: true,
                self_reference: true,
                junction: true,
                composite_keys: true,
                max_columns: 2,
            },
            query: QueryConfig {
                max_depth: 2,
                max_related: 2,
                related: true,
                exists: true,
                or: true,
                condition_depth: 2,
                limit: true,
                start: true,
                relationship_aggregates: true,
                root_aggregates: true,
                select: true,
            },
            max_rows: 8,
            max_steps: 8,
            max_burst: 4,
            negative_zero: true,
        }
    }
}

/// A relationship usable from a level of table `from` to a child level of
/// table `to`.
#[derive(Clone, Debug)]
pub struct Edge {
    /// Parent table index.
    pub from: usize,
    /// Child table index.
    pub to: usize,
    /// The correlation.
    pub correlation: Correlation,
    /// At most one child per parent (a reference to a primary key).
    pub singular: bool,
}

/// A generated schema: tables (without rows) and the relationships between them.
#[derive(Clone, Debug)]
pub struct GenSchema {
    /// The tables.
    pub tables: Vec<TableData>,
    /// Relationships, both directions of each reference.
    pub edges: Vec<Edge>,
}

impl GenSchema {
    fn edges_from(&self, t: usize) -> Vec<Edge> {
        self.edges.iter().filter(|e| e.from == t).cloned().collect()
    }
}

const TEXTS: &[&str] = &["", "a", "A", "ab", "aB", "b", "b%", "a_c", "abc", "é", "zz"];
const FLOATS: &[f64] = &[-1.5, -0.0, 0.0, 0.5, 1.0, 2.0, 2.5];
const PATTERNS: &[&str] = &[
    "a%", "%b", "%", "_", "a_", "%a%", "A%", "b\\%", "a\\_c", "a_c", "", "é", "%é", "ab%", "\\",
];
const TYPES: &[ColumnType] = &[
    ColumnType::Integer,
    ColumnType::Real,
    ColumnType::Text,
    ColumnType::Boolean,
];

/// A non-null value of a column type, from a small domain.
pub fn value_of(ty: ColumnType) -> BoxedStrategy<Value> {
    match ty {
        ColumnType::Integer => (-3i64..4).prop_map(Value::Int).boxed(),
        ColumnType::Real => prop_oneof![
            select(FLOATS).prop_map(Value::Float),
            (-2i64..3).prop_map(Value::Int),
        ]
        .boxed(),
        ColumnType::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
        _ => select(TEXTS).prop_map(Value::text).boxed(),
    }
}

fn cell_of(c: &Column) -> BoxedStrategy<Value> {
    if c.nullable {
        prop_oneof![1 => Just(Value::Null), 4 => value_of(c.ty)].boxed()
    } else {
        value_of(c.ty)
    }
}

/// A value of any kind, for literals that may mismatch their column.
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

// ------------------------------------------------------------------ schemas

/// Schemas per the config.
pub fn schema_strategy(cfg: &SchemaConfig) -> BoxedStrategy<GenSchema> {
    let cfg = cfg.clone();
    let n = 1..=cfg.max_tables.max(1);
    n.prop_flat_map(move |n| {
        let cfg = cfg.clone();
        let tables = prop::collection::vec(
            (
                prop::bool::weighted(if cfg.composite_keys { 0.25 } else { 0.0 }),
                prop::collection::vec(select(TYPES), 1..=cfg.max_columns.max(1)),
                // Candidate references: to each earlier table and to itself.
                prop::collection::vec(
                    prop::bool::weighted(if cfg.relationships { 0.6 } else { 0.0 }),
                    n + 1,
                ),
            ),
            n,
        );
        let junction = prop::bool::weighted(if cfg.junction && n >= 2 { 0.5 } else { 0.0 });
        (tables, junction).prop_map(move |(tables, junction)| build_schema(&cfg, tables, junction))
    })
    .boxed()
}

fn build_schema(
    cfg: &SchemaConfig,
    specs: Vec<(bool, Vec<ColumnType>, Vec<bool>)>,
    junction: bool,
) -> GenSchema {
    let mut tables = Vec::new();
    let mut edges = Vec::new();
    let n = specs.len();
    for (i, (composite, types, refs)) in specs.into_iter().enumerate() {
        let mut columns = vec![Column::new("id", ColumnType::Integer).not_null()];
        let mut pk = vec!["id".to_string()];
        if composite {
            columns.push(Column::new("k", ColumnType::Text).not_null());
            pk.push("k".into());
        }
        for (j, ty) in types.into_iter().enumerate() {
            columns.push(Column::new(&format!("c{j}"), ty));
        }
        for (j, wanted) in refs.into_iter().enumerate().take(i + 1) {
            let self_ref = j == i;
            if !wanted || (self_ref && !cfg.self_reference) {
                continue;
            }
            let name = format!("r{j}");
            columns.push(Column::new(&name, ColumnType::Integer));
            // Child rows referencing a parent's id; the parent of a row.
            edges.push(Edge {
                from: j,
                to: i,
                correlation: Correlation {
                    parent_field: vec!["id".into()],
                    child_field: vec![name.clone()],
                },
                singular: false,
            });
            edges.push(Edge {
                from: i,
                to: j,
                correlation: Correlation {
                    parent_field: vec![name],
                    child_field: vec!["id".into()],
                },
                // `id` alone is the key only when the target has a one-column key.
                singular: false,
            });
        }
        tables.push(TableData {
            name: format!("t{i}"),
            columns,
            primary_key: pk,
            rows: Vec::new(),
        });
    }
    for e in &mut edges {
        if e.correlation.child_field == ["id"] {
            e.singular = tables[e.to].primary_key.len() == 1;
        }
    }
    if junction {
        let (a, b) = (0, n - 1);
        let j = tables.len();
        tables.push(TableData {
            name: "j".into(),
            columns: vec![
                Column::new("a", ColumnType::Integer).not_null(),
                Column::new("b", ColumnType::Integer).not_null(),
                Column::new("w", ColumnType::Integer),
            ],
            primary_key: vec!["a".into(), "b".into()],
            rows: Vec::new(),
        });
        let link = |from, to, p: &str, c: &str, singular| Edge {
            from,
            to,
            correlation: Correlation {
                parent_field: vec![p.into()],
                child_field: vec![c.into()],
            },
            singular,
        };
        edges.push(link(a, j, "id", "a", false));
        edges.push(link(j, b, "b", "id", tables[b].primary_key.len() == 1));
        edges.push(link(b, j, "id", "b", false));
        edges.push(link(j, a, "a", "id", tables[a].primary_key.len() == 1));
    }
    GenSchema { tables, edges }
}

// --------------------------------------------------------------------- rows

fn key_of(t: &TableData) -> BoxedStrategy<Vec<Value>> {
    if t.name == "j" {
        return (0i64..6, 0i64..6)
            .prop_map(|(a, b)| vec![Value::Int(a), Value::Int(b)])
            .boxed();
    }
    if t.primary_key.len() == 2 {
        (0i64..6, select(&["x", "y"][..]))
            .prop_map(|(i, s)| vec![Value::Int(i), Value::text(s)])
            .boxed()
    } else {
        (0i64..10).prop_map(|i| vec![Value::Int(i)]).boxed()
    }
}

fn cell_strategy(c: &Column) -> BoxedStrategy<Value> {
    if c.name.starts_with('r') || c.name == "w" {
        // References draw from the key space, sometimes dangling or null.
        prop_oneof![1 => Just(Value::Null), 5 => (0i64..10).prop_map(Value::Int)].boxed()
    } else {
        cell_of(c)
    }
}

/// A full row of a table (key first, then the other columns).
pub fn row_strategy(t: &TableData) -> BoxedStrategy<Vec<Value>> {
    let nk = t.primary_key.len();
    let rest: Vec<BoxedStrategy<Value>> = t.columns[nk..].iter().map(cell_strategy).collect();
    (key_of(t), rest)
        .prop_map(|(mut k, rest)| {
            k.extend(rest);
            k
        })
        .boxed()
}

fn to_json(t: &TableData, row: &[Value]) -> Vec<Json> {
    t.columns
        .iter()
        .zip(row)
        .map(|(c, v)| value_to_json(c.ty, v))
        .collect()
}

// ------------------------------------------------------------------ queries

fn simple(t: &TableData) -> BoxedStrategy<Condition> {
    let cols = t.columns.clone();
    (0..cols.len(), select(&SimpleOp::ALL[..]))
        .prop_flat_map(move |(i, op)| {
            let c = cols[i].clone();
            let literal_for = prop_oneof![4 => value_of(c.ty), 1 => any_value()].boxed();
            let lit: BoxedStrategy<Literal> = match op {
                SimpleOp::In | SimpleOp::NotIn => prop::collection::vec(
                    prop_oneof![5 => literal_for, 1 => Just(Value::Null)],
                    0..4,
                )
                .prop_map(Literal::List)
                .boxed(),
                SimpleOp::Like | SimpleOp::NotLike | SimpleOp::ILike | SimpleOp::NotILike => {
                    prop_oneof![
                        6 => select(PATTERNS).prop_map(|p| Literal::Scalar(Value::text(p))),
                        1 => Just(Literal::Scalar(Value::Null)),
                    ]
                    .boxed()
                }
                _ => literal_for.prop_map(Literal::Scalar).boxed(),
            };
            let name = c.name.clone();
            lit.prop_map(move |value| Condition::Simple {
                op,
                left: ValuePosition::Column { name: name.clone() },
                right: ValuePosition::Literal { value },
            })
        })
        .boxed()
}

fn condition(
    schema: &Arc<GenSchema>,
    table: usize,
    depth: u32,
    level_depth: u32,
    cfg: &QueryConfig,
) -> BoxedStrategy<Condition> {
    let t = &schema.tables[table];
    let mut leaves: Vec<(u32, BoxedStrategy<Condition>)> = vec![(4, simple(t))];
    let edges = schema.edges_from(table);
    if cfg.exists && level_depth < cfg.max_depth && !edges.is_empty() {
        let s = schema.clone();
        let cfg2 = cfg.clone();
        let exists = (
            select(edges),
            select(&[ExistsOp::Exists, ExistsOp::NotExists][..]),
            any::<bool>(),
        )
            .prop_flat_map(move |(e, op, flip)| {
                let child = level(&s, e.to, level_depth + 1, &cfg2, false);
                let corr = e.correlation.clone();
                child.prop_map(move |mut sub| {
                    sub.related.clear();
                    sub.alias = Some("x".into());
                    Condition::CorrelatedSubquery {
                        op,
                        related: Box::new(CorrelatedSubquery {
                            correlation: corr.clone(),
                            subquery: Box::new(sub),
                            system: None,
                        }),
                        flip,
                    }
                })
            })
            .boxed();
        leaves.push((1, exists));
    }
    let leaf = prop::strategy::Union::new_weighted(leaves).boxed();
    if depth == 0 || !cfg.or {
        return leaf;
    }
    let inner = condition(schema, table, depth - 1, level_depth, cfg);
    prop_oneof![
        3 => leaf,
        1 => prop::collection::vec(inner.clone(), 0..4).prop_map(|conditions| Condition::And { conditions }),
        1 => prop::collection::vec(inner, 0..4).prop_map(|conditions| Condition::Or { conditions }),
    ]
    .boxed()
}

/// One level of a query over table `table`.
fn level(
    schema: &Arc<GenSchema>,
    table: usize,
    depth: u32,
    cfg: &QueryConfig,
    with_related: bool,
) -> BoxedStrategy<Ast> {
    let t = schema.tables[table].clone();
    let names: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let n = names.len();
    let order = prop::collection::vec((0..n, select(&[Direction::Asc, Direction::Desc][..])), 0..3);
    let types: Vec<ColumnType> = t.columns.iter().map(|c| c.ty).collect();
    let names2 = names.clone();
    let start = if cfg.start {
        prop::option::weighted(
            0.25,
            (prop::collection::vec(0..n, 0..3), any::<bool>()).prop_flat_map(
                move |(cols, excl)| {
                    let cells: Vec<BoxedStrategy<Value>> = cols
                        .iter()
                        .map(|&c| {
                            prop_oneof![1 => Just(Value::Null), 5 => value_of(types[c])].boxed()
                        })
                        .collect();
                    let names = names2.clone();
                    cells.prop_map(move |vals| {
                        let row = cols.iter().zip(vals).map(|(&c, v)| (names[c].clone(), v));
                        Bound::new(row, excl)
                    })
                },
            ),
        )
        .boxed()
    } else {
        Just(None).boxed()
    };
    let limit = if cfg.limit {
        prop::option::weighted(0.5, 0u64..5).boxed()
    } else {
        Just(None).boxed()
    };
    let one = prop::bool::weighted(if cfg.limit { 0.1 } else { 0.0 });
    let where_ = prop::option::weighted(
        0.7,
        condition(schema, table, cfg.condition_depth, depth, cfg),
    );
    let select_cols = if cfg.select {
        prop::option::weighted(0.2, prop::collection::vec(0..n, 0..3)).boxed()
    } else {
        Just(None).boxed()
    };
    let edges = schema.edges_from(table);
    let related: BoxedStrategy<Vec<CorrelatedSubquery>> =
        if with_related && cfg.related && depth < cfg.max_depth && !edges.is_empty() {
            let s = schema.clone();
            let cfg2 = cfg.clone();
            prop::collection::vec(
                (select(edges), prop::bool::weighted(0.5), 0u8..6).prop_flat_map(
                    move |(e, singular_one, agg)| {
                        let child = level(&s, e.to, depth + 1, &cfg2, true);
                        let aggregates = cfg2.relationship_aggregates;
                        // A numeric column other than the key, for sum / avg.
                        let numeric: Option<String> = s.tables[e.to]
                            .columns
                            .iter()
                            .skip(1)
                            .find(|c| matches!(c.ty, ColumnType::Integer | ColumnType::Real))
                            .map(|c| c.name.clone());
                        child.prop_map(move |mut sub| {
                            if e.singular && singular_one {
                                sub.one = true;
                            }
                            if aggregates && agg < 3 {
                                sub.related.clear();
                                sub.select = None;
                                sub.one = false;
                                sub.aggregate = Some(match (agg, &numeric) {
                                    (1, Some(c)) => Aggregate::Sum(c.clone()),
                                    (2, Some(c)) => Aggregate::Avg(c.clone()),
                                    _ => Aggregate::Count,
                                });
                            }
                            CorrelatedSubquery {
                                correlation: e.correlation.clone(),
                                subquery: Box::new(sub),
                                system: None,
                            }
                        })
                    },
                ),
                0..=cfg.max_related,
            )
            .boxed()
        } else {
            Just(Vec::new()).boxed()
        };
    let table_name = t.name.clone();
    (where_, order, start, limit, one, select_cols, related)
        .prop_map(
            move |(where_, order, start, limit, one, sel, mut related)| {
                for (i, r) in related.iter_mut().enumerate() {
                    r.subquery.alias = Some(format!("rel{i}"));
                }
                Ast {
                    table: table_name.clone(),
                    where_,
                    order_by: (!order.is_empty())
                        .then(|| order.iter().map(|&(c, d)| (names[c].clone(), d)).collect()),
                    start,
                    limit,
                    one,
                    select: sel.map(|cols| cols.iter().map(|&c| names[c].clone()).collect()),
                    related,
                    ..Ast::default()
                }
            },
        )
        .boxed()
}

fn root_aggregate(schema: &Arc<GenSchema>, table: usize, cfg: &QueryConfig) -> BoxedStrategy<Ast> {
    let t = schema.tables[table].clone();
    let names: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
    let numeric: Vec<String> = t
        .columns
        .iter()
        .filter(|c| matches!(c.ty, ColumnType::Integer | ColumnType::Real))
        .map(|c| c.name.clone())
        .collect();
    let n = names.len();
    let where_ = prop::option::weighted(0.5, condition(schema, table, 1, cfg.max_depth, cfg));
    (
        where_,
        prop::collection::vec(0..n, 0..3),
        0..3usize,
        0..numeric.len().max(1),
        prop::option::weighted(
            0.3,
            (
                select(&[SimpleOp::Gt, SimpleOp::Le, SimpleOp::Eq][..]),
                0i64..3,
            ),
        ),
        prop::option::weighted(0.3, 0u64..4),
        any::<bool>(),
    )
        .prop_map(move |(where_, groups, agg, col, having, limit, by_agg)| {
            let mut group_by: Vec<String> = Vec::new();
            for g in groups {
                if !group_by.contains(&names[g]) {
                    group_by.push(names[g].clone());
                }
            }
            let (aggregate, name) = match (agg, numeric.get(col)) {
                (1, Some(c)) => (Aggregate::Sum(c.clone()), "sum"),
                (2, Some(c)) => (Aggregate::Avg(c.clone()), "avg"),
                _ => (Aggregate::Count, "count"),
            };
            let having = having.map(|(op, v)| Condition::Simple {
                op,
                left: ValuePosition::Column { name: name.into() },
                right: ValuePosition::Literal {
                    value: Literal::Scalar(Value::Int(v)),
                },
            });
            Ast {
                table: t.name.clone(),
                where_,
                aggregate: Some(aggregate),
                order_by: by_agg.then(|| vec![(name.to_string(), Direction::Desc)]),
                group_by: (!group_by.is_empty()).then_some(group_by),
                having,
                limit,
                ..Ast::default()
            }
        })
        .boxed()
}

/// Queries over a schema per the config, rooted at any table.
pub fn query_strategy(schema: &Arc<GenSchema>, cfg: &QueryConfig) -> BoxedStrategy<Ast> {
    let n = schema.tables.len();
    let s = schema.clone();
    let cfg = cfg.clone();
    (0..n)
        .prop_flat_map(move |t| {
            if cfg.root_aggregates {
                prop_oneof![
                    4 => level(&s, t, 0, &cfg, true),
                    1 => root_aggregate(&s, t, &cfg),
                ]
                .boxed()
            } else {
                level(&s, t, 0, &cfg, true)
            }
        })
        .boxed()
}

// ------------------------------------------------------------------- writes

/// A write, resolved against the rows present when it runs.
#[derive(Clone, Debug)]
enum Op {
    /// Insert this row; skipped when its key is taken.
    Add(Vec<Value>),
    /// Remove the `n`-th present row (mod the count).
    Remove(usize),
    /// Set one non-key cell of the `n`-th present row.
    EditCell(usize, usize, Value),
    /// Give the `n`-th present row another key (skipped when taken).
    Rekey(usize, Vec<Value>),
    /// Replace every non-key cell of the `n`-th present row.
    Replace(usize, Vec<Value>),
}

fn op_strategy(t: &TableData) -> BoxedStrategy<Op> {
    let nk = t.primary_key.len();
    let cols = t.columns.clone();
    let w = cols.len();
    let mut ops: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (3, row_strategy(t).prop_map(Op::Add).boxed()),
        (2, any::<usize>().prop_map(Op::Remove).boxed()),
        (
            1,
            (any::<usize>(), key_of(t))
                .prop_map(|(n, k)| Op::Rekey(n, k))
                .boxed(),
        ),
        (
            2,
            (any::<usize>(), row_strategy(t))
                .prop_map(|(n, r)| Op::Replace(n, r))
                .boxed(),
        ),
    ];
    if w > nk {
        ops.push((
            4,
            (any::<usize>(), nk..w)
                .prop_flat_map(move |(n, c)| {
                    cell_strategy(&cols[c]).prop_map(move |v| Op::EditCell(n, c, v))
                })
                .boxed(),
        ));
    }
    prop::strategy::Union::new_weighted(ops).boxed()
}

fn resolve(schema: &GenSchema, model: &mut Model, table: usize, op: &Op) -> Option<Write> {
    let t = &schema.tables[table];
    let nk = t.primary_key.len();
    let present: Vec<Vec<Value>> = model.rows(&t.name).map(|r| r.cells().to_vec()).collect();
    let pick = |n: usize| present.get(n % present.len().max(1)).cloned();
    let (op, row, old) = match op {
        Op::Add(r) => (WriteOp::Add, r.clone(), None),
        Op::Remove(n) => (WriteOp::Remove, pick(*n)?, None),
        Op::EditCell(n, c, v) => {
            let old = pick(*n)?;
            let mut new = old.clone();
            new[*c] = v.clone();
            (WriteOp::Edit, new, Some(old))
        }
        Op::Rekey(n, k) => {
            let old = pick(*n)?;
            let mut new = old.clone();
            new[..nk].clone_from_slice(k);
            (WriteOp::Edit, new, Some(old))
        }
        Op::Replace(n, r) => {
            let old = pick(*n)?;
            let mut new = r.clone();
            new[..nk].clone_from_slice(&old[..nk]);
            (WriteOp::Edit, new, Some(old))
        }
    };
    let w = Write {
        table: t.name.clone(),
        op,
        row: to_json(t, &row),
        old: old.map(|o| to_json(t, &o)),
    };
    // Writes the model refuses (a taken key) are dropped from the case.
    model.apply(&w).ok().map(|_| w)
}

/// Whole cases: a schema, initial rows, a query, and transactions.
pub fn case_strategy(cfg: CaseConfig) -> BoxedStrategy<Scenario> {
    let negative_zero = cfg.negative_zero;
    schema_strategy(&cfg.schema)
        .prop_flat_map(move |schema| {
            let schema = Arc::new(schema);
            let rows: Vec<BoxedStrategy<Vec<Vec<Value>>>> = schema
                .tables
                .iter()
                .map(|t| prop::collection::vec(row_strategy(t), 0..=cfg.max_rows).boxed())
                .collect();
            let n = schema.tables.len();
            let s2 = schema.clone();
            let op =
                (0..n).prop_flat_map(move |t| op_strategy(&s2.tables[t]).prop_map(move |o| (t, o)));
            let steps = prop::collection::vec(
                prop::collection::vec(op, 1..=cfg.max_burst.max(1)),
                0..=cfg.max_steps,
            );
            // Transactions first: proptest shrinks a tuple front to back, and dropping
            // writes is what makes a failing case readable.
            (
                steps,
                Just(schema.clone()),
                rows,
                query_strategy(&schema, &cfg.query),
            )
        })
        .prop_map(move |(steps, schema, rows, query)| {
            let mut tables = schema.tables.clone();
            for (t, rows) in tables.iter_mut().zip(rows) {
                let mut keys = std::collections::BTreeSet::new();
                let nk = t.primary_key.len();
                for r in rows {
                    if keys.insert(r[..nk].to_vec()) {
                        let json = to_json(t, &r);
                        t.rows.push(json);
                    }
                }
            }
            let mut model = Model::new(&tables).expect("generated rows fit their schema");
            let steps: Vec<Vec<Write>> = steps
                .iter()
                .map(|tx| {
                    tx.iter()
                        .filter_map(|(t, op)| resolve(&schema, &mut model, *t, op))
                        .collect::<Vec<_>>()
                })
                .filter(|tx| !tx.is_empty())
                .collect();
            let mut case = Scenario {
                tables,
                query,
                steps,
            };
            if !negative_zero {
                for t in &mut case.tables {
                    t.rows.iter_mut().flatten().for_each(positive_zero);
                }
                for w in case.steps.iter_mut().flatten() {
                    w.row.iter_mut().for_each(positive_zero);
                    w.old.iter_mut().flatten().for_each(positive_zero);
                }
            }
            case
        })
        .boxed()
}
