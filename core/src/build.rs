//! Lowering: an [`Ast`] checked against a [`Catalog`] and turned into a
//! [`Pipeline`] of operators.
//!
//! Every level (the root, each `related` child, each EXISTS child) becomes
//!
//! ```text
//! Connection (the level's order; its top-level simple conditions pushed down)
//!   -> Gate   (the conditions involving EXISTS, with a child pipeline per EXISTS)
//!   -> Skip   (`start`)
//!   -> Take   (`limit` / `one`, per parent on a child level)
//!   -> Join   (one per `related` child, in order; aggregates attach one value)
//! ```
//!
//! so relationships are only fetched for rows inside the window. A root
//! aggregate is `Connection -> Gate -> Group -> Take`. Every `orderBy` is
//! completed with the primary key (for groups: the group columns) first, so
//! orders are total.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::ast::{Aggregate, Ast, Condition, CorrelatedSubquery, ExistsOp};
use crate::error::BuildError;
use crate::operator::Operator;
use crate::operator::connection::Connection;
use crate::operator::gate::{ExistsSub, Gate, GateCond};
use crate::operator::group::Group;
use crate::operator::join::{Attach, Join};
use crate::operator::reduce::AggKind;
use crate::operator::skip::Skip;
use crate::operator::take::Take;
use crate::ordering::{SortOrder, sorted_columns};
use crate::predicate::Predicate;
use crate::schema::{Column, ColumnType, TableSchema};
use crate::source::{Catalog, TableId};
use crate::value::{Row, Value};

/// How deep an AST may nest (levels plus condition nesting).
pub const MAX_AST_DEPTH: usize = 64;

/// What a level of a result holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LevelKind {
    /// Rows of the level's table.
    Rows,
    /// A relationship aggregate: one row `[0, value]`; the value is what a
    /// client sees.
    Aggregate,
    /// A root aggregate's groups: rows `[group values..., aggregate]` (or `[0,
    /// aggregate]` without `groupBy`).
    Groups,
}

/// The shape of a query's result: what a [`crate::View`] needs to hold it.
#[derive(Clone, Debug)]
pub struct ViewFormat {
    schema: TableSchema,
    order: Arc<SortOrder>,
    singular: bool,
    kind: LevelKind,
    visible: Vec<usize>,
    relationships: Vec<(Arc<str>, ViewFormat)>,
}

impl ViewFormat {
    /// The level's row layout: its table's, or the synthetic layout of an
    /// aggregate level.
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    /// The level's (total) order.
    pub fn order(&self) -> &SortOrder {
        &self.order
    }

    pub(crate) fn order_arc(&self) -> &Arc<SortOrder> {
        &self.order
    }

    /// Whether the level is singular (`one`): a row or nothing.
    pub fn singular(&self) -> bool {
        self.singular
    }

    /// What the level holds.
    pub fn kind(&self) -> LevelKind {
        self.kind
    }

    /// The columns a client sees, in order: the `select`ed ones plus the
    /// primary key, or every column (synthetic key columns left out).
    pub fn visible_columns(&self) -> &[usize] {
        &self.visible
    }

    /// The child levels by relationship alias, in declared order.
    pub fn relationships(&self) -> &[(Arc<str>, ViewFormat)] {
        &self.relationships
    }

    /// The position and format of the relationship named `alias`.
    pub(crate) fn relationship(&self, alias: &str) -> Option<(usize, &ViewFormat)> {
        self.relationships
            .iter()
            .enumerate()
            .find(|(_, (a, _))| &**a == alias)
            .map(|(i, (_, f))| (i, f))
    }
}

/// A lowered query: its operator graph and result format.
///
/// Built by [`build_pipeline`]; run by an [`crate::Engine`].
pub struct Pipeline {
    pub(crate) root: Box<dyn Operator>,
    tables: Vec<TableId>,
    format: Arc<ViewFormat>,
}

impl Pipeline {
    /// The tables the query reads.
    pub fn tables(&self) -> &[TableId] {
        &self.tables
    }

    /// The result format.
    pub fn format(&self) -> &Arc<ViewFormat> {
        &self.format
    }

    /// Whether a change to `table` can affect the query.
    pub fn reads(&self, table: TableId) -> bool {
        self.tables.contains(&table)
    }
}

impl core::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pipeline")
            .field("tables", &self.tables)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Lowers a query into an operator graph over `catalog`, preparing the source
/// indexes it will read.
///
/// Refuses, with a [`BuildError`] naming the problem: unknown tables, columns
/// and relationships, malformed conditions and correlations, and shapes this
/// engine does not maintain.
pub fn build_pipeline(ast: &Ast, catalog: &mut dyn Catalog) -> Result<Pipeline, BuildError> {
    check_depth(ast, 1)?;
    let mut b = Builder {
        catalog,
        tables: Vec::new(),
    };
    let (root, format) = if ast.aggregate.is_some() {
        b.root_aggregate(ast)?
    } else {
        b.level(ast, &[])?
    };
    // Sorted and distinct (by insertion: the handful of tables a query reads
    // do not need a sort routine of their own).
    let mut tables: Vec<TableId> = Vec::new();
    for t in b.tables {
        if let Err(at) = tables.binary_search(&t) {
            tables.insert(at, t);
        }
    }
    Ok(Pipeline {
        root,
        tables,
        format: Arc::new(format),
    })
}

struct Builder<'c> {
    catalog: &'c mut dyn Catalog,
    tables: Vec<TableId>,
}

fn unsupported(ast: &Ast, reason: &str) -> BuildError {
    BuildError::Unsupported {
        table: ast.table.clone(),
        reason: reason.to_string(),
    }
}

fn column(schema: &TableSchema, name: &str, place: &'static str) -> Result<usize, BuildError> {
    schema
        .column_index(name)
        .ok_or_else(|| BuildError::UnknownColumn {
            table: schema.name().into(),
            column: name.into(),
            place,
        })
}

fn sorted(cols: &[usize]) -> Vec<usize> {
    sorted_columns(cols.to_vec())
}

fn has_exists(c: &Condition) -> bool {
    match c {
        Condition::CorrelatedSubquery { .. } => true,
        Condition::And { conditions } | Condition::Or { conditions } => {
            conditions.iter().any(has_exists)
        }
        Condition::Simple { .. } => false,
    }
}

/// Splits a `where` into what the connection can filter (simple conditions at
/// the top level) and what needs the gate (anything involving EXISTS).
fn split_where(w: Option<&Condition>) -> (Option<Condition>, Option<Condition>) {
    match w {
        None => (None, None),
        Some(Condition::And { conditions }) => {
            let (gated, pushed): (Vec<Condition>, Vec<Condition>) =
                conditions.iter().cloned().partition(has_exists);
            let wrap =
                |cs: Vec<Condition>| (!cs.is_empty()).then_some(Condition::And { conditions: cs });
            (wrap(pushed), wrap(gated))
        }
        Some(c) if has_exists(c) => (None, Some(c.clone())),
        Some(c) => (Some(c.clone()), None),
    }
}

impl Builder<'_> {
    fn table(&mut self, ast: &Ast) -> Result<(TableId, TableSchema), BuildError> {
        let id = self
            .catalog
            .table_id(&ast.table)
            .ok_or_else(|| BuildError::UnknownTable {
                table: ast.table.clone(),
            })?;
        self.tables.push(id);
        Ok((id, self.catalog.source(id).schema().clone()))
    }

    fn prepare(&mut self, table: TableId, order: &SortOrder, constraint: &[usize]) {
        self.catalog
            .source_mut(table)
            .prepare(order, &sorted(constraint));
    }

    /// The parent and child column positions of a correlation.
    fn correlation(
        &self,
        parent: &TableSchema,
        child: &TableSchema,
        csq: &CorrelatedSubquery,
    ) -> Result<(Vec<usize>, Vec<usize>), BuildError> {
        let c = &csq.correlation;
        if c.parent_field.is_empty() || c.parent_field.len() != c.child_field.len() {
            return Err(BuildError::InvalidCondition {
                table: child.name().into(),
                reason: format!(
                    "correlation fields must be non-empty and pair up, got {} parent and {} child fields",
                    c.parent_field.len(),
                    c.child_field.len()
                ),
            });
        }
        let p = c
            .parent_field
            .iter()
            .map(|f| column(parent, f, "correlation parentField"))
            .collect::<Result<Vec<_>, _>>()?;
        let ch = c
            .child_field
            .iter()
            .map(|f| column(child, f, "correlation childField"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((p, ch))
    }

    fn order(ast: &Ast, schema: &TableSchema) -> Result<SortOrder, BuildError> {
        let mut keys = Vec::new();
        for (name, dir) in ast.order_by.iter().flatten() {
            let c = column(schema, name, "orderBy")?;
            // A repeated column can never decide the order again; keep the first.
            if !keys.iter().any(|(k, _)| *k == c) {
                keys.push((c, *dir));
            }
        }
        Ok(SortOrder::new(keys).completed(schema))
    }

    /// The connection, with the gate when the condition involves EXISTS.
    fn filtered(
        &mut self,
        ast: &Ast,
        table: TableId,
        schema: &TableSchema,
        order: &SortOrder,
    ) -> Result<Box<dyn Operator>, BuildError> {
        let (pushed, gated) = split_where(ast.where_.as_ref());
        let filter = pushed.map(|c| Predicate::compile(&c, schema)).transpose()?;
        let mut op: Box<dyn Operator> = Box::new(Connection::new(
            table,
            schema.clone(),
            order.clone(),
            filter,
        ));
        if let Some(g) = gated {
            let mut subs = Vec::new();
            let cond = self.gate_cond(&g, table, schema, order, &mut subs)?;
            op = Box::new(Gate::new(
                op,
                order.clone(),
                schema.primary_key().to_vec(),
                cond,
                subs,
            ));
        }
        Ok(op)
    }

    fn gate_cond(
        &mut self,
        c: &Condition,
        table: TableId,
        schema: &TableSchema,
        order: &SortOrder,
        subs: &mut Vec<ExistsSub>,
    ) -> Result<GateCond, BuildError> {
        Ok(match c {
            Condition::And { conditions } => GateCond::And(
                conditions
                    .iter()
                    .map(|c| self.gate_cond(c, table, schema, order, subs))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Or { conditions } => GateCond::Or(
                conditions
                    .iter()
                    .map(|c| self.gate_cond(c, table, schema, order, subs))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Simple { .. } => GateCond::Pred(Predicate::compile(c, schema)?),
            Condition::CorrelatedSubquery { op, related, flip } => {
                let sub = &related.subquery;
                if sub.aggregate.is_some() || sub.group_by.is_some() || sub.having.is_some() {
                    return Err(unsupported(
                        sub,
                        "an EXISTS subquery cannot aggregate (no `aggregate`, `groupBy` or `having`)",
                    ));
                }
                let (_, child_schema) = self.table(sub)?;
                self.tables.pop();
                let (parent_keys, child_keys) = self.correlation(schema, &child_schema, related)?;
                let negated = *op == ExistsOp::NotExists;
                // A limit of one or more cannot change whether a child has rows,
                // and limit 0 decides the answer outright.
                if sub.limit == Some(0) {
                    return Ok(GateCond::Pred(Predicate::Const(negated)));
                }
                // The gate looks parents up by correlation key when a child flips.
                self.prepare(table, order, &parent_keys);
                // Relationships under an EXISTS child cannot change whether it
                // has rows; they are not materialized.
                let mut child_ast = (**sub).clone();
                child_ast.related.clear();
                child_ast.limit = None;
                child_ast.one = false;
                let (child, _) = self.level(&child_ast, &child_keys)?;
                subs.push(ExistsSub {
                    child,
                    parent_keys,
                    child_keys,
                    flip: *flip && !negated,
                });
                GateCond::Exists {
                    sub: subs.len() - 1,
                    negated,
                }
            }
        })
    }

    fn visible(ast: &Ast, schema: &TableSchema) -> Result<Vec<usize>, BuildError> {
        match &ast.select {
            None => Ok((0..schema.columns().len()).collect()),
            Some(names) => {
                let mut keep: Vec<usize> = names
                    .iter()
                    .map(|n| column(schema, n, "select"))
                    .collect::<Result<_, _>>()?;
                keep.extend_from_slice(schema.primary_key());
                Ok(sorted_columns(keep))
            }
        }
    }

    /// A level of rows; `partition` holds the child fields when it is a child
    /// level (its reads are constrained on them).
    fn level(
        &mut self,
        ast: &Ast,
        partition: &[usize],
    ) -> Result<(Box<dyn Operator>, ViewFormat), BuildError> {
        if ast.aggregate.is_some() {
            return Err(unsupported(
                ast,
                "`aggregate` here is not a relationship or the root",
            ));
        }
        if ast.group_by.is_some() || ast.having.is_some() {
            return Err(unsupported(
                ast,
                "`groupBy` / `having` only apply to a root aggregate",
            ));
        }
        let (table, schema) = self.table(ast)?;
        let order = Self::order(ast, &schema)?;
        let visible = Self::visible(ast, &schema)?;
        self.prepare(table, &order, partition);
        let mut op = self.filtered(ast, table, &schema, &order)?;
        if let Some(start) = &ast.start {
            let mut cells = alloc::vec![Value::Null; schema.columns().len()];
            for (name, v) in &start.row {
                cells[column(&schema, name, "start")?] = v.clone();
            }
            op = Box::new(Skip::new(
                op,
                order.clone(),
                Row::new(cells),
                start.exclusive,
            ));
        }
        let limit = match (ast.limit, ast.one) {
            (l, true) => Some(l.unwrap_or(1).min(1)),
            (l, false) => l,
        };
        // A limit of one or more cannot cut a partition that fixes the whole
        // primary key (it holds one row at most): no Take then, so a singular
        // relationship by key (an issue's author) costs one lookup.
        let one_row =
            !partition.is_empty() && schema.primary_key().iter().all(|k| partition.contains(k));
        if let Some(limit) = limit.filter(|&l| !(one_row && l >= 1)) {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            op = Box::new(Take::new(op, order.clone(), limit, partition.to_vec()));
        }
        let mut relationships: Vec<(Arc<str>, ViewFormat)> = Vec::new();
        for r in &ast.related {
            let sub = &r.subquery;
            let alias: Arc<str> = match &sub.alias {
                Some(a) if !a.is_empty() => a.as_str().into(),
                _ => {
                    return Err(BuildError::UnknownRelationship {
                        table: ast.table.clone(),
                        alias: String::new(),
                        reason: "a `related` subquery needs an `alias` to name it",
                    });
                }
            };
            if relationships.iter().any(|(a, _)| *a == alias) {
                return Err(BuildError::UnknownRelationship {
                    table: ast.table.clone(),
                    alias: alias.to_string(),
                    reason: "the alias names two relationships of one level",
                });
            }
            let (_, child_schema) = self.table(sub)?;
            self.tables.pop();
            let (parent_keys, child_keys) = self.correlation(&schema, &child_schema, r)?;
            // Child changes are fanned out to parents looked up by key.
            self.prepare(table, &order, &parent_keys);
            let (child, format, attach) = match &sub.aggregate {
                None => {
                    let (child, format) = self.level(sub, &child_keys)?;
                    (child, format, Attach::Rows)
                }
                Some(agg) => self.aggregate_child(sub, agg, &child_schema, &child_keys, &alias)?,
            };
            op = Box::new(Join::new(
                op,
                child,
                parent_keys,
                child_keys,
                alias.clone(),
                attach,
            ));
            relationships.push((alias, format));
        }
        Ok((
            op,
            ViewFormat {
                schema,
                order: Arc::new(order),
                singular: ast.one,
                kind: LevelKind::Rows,
                visible,
                relationships,
            },
        ))
    }

    fn aggregate_kind(
        ast: &Ast,
        agg: &Aggregate,
        schema: &TableSchema,
    ) -> Result<(AggKind, Option<usize>, &'static str), BuildError> {
        let numeric = |name: &str| -> Result<usize, BuildError> {
            let c = column(schema, name, "aggregate")?;
            match schema.columns()[c].ty {
                ColumnType::Integer | ColumnType::Real => Ok(c),
                ty => Err(unsupported(
                    ast,
                    &format!("sum / avg need a numeric column; `{name}` is {ty}"),
                )),
            }
        };
        Ok(match agg {
            Aggregate::Count => (AggKind::Count, None, "count"),
            Aggregate::Sum(c) => (AggKind::Sum, Some(numeric(c)?), "sum"),
            Aggregate::Avg(c) => (AggKind::Avg, Some(numeric(c)?), "avg"),
        })
    }

    fn aggregate_child(
        &mut self,
        sub: &Ast,
        agg: &Aggregate,
        child_schema: &TableSchema,
        child_keys: &[usize],
        alias: &str,
    ) -> Result<(Box<dyn Operator>, ViewFormat, Attach), BuildError> {
        if !sub.related.is_empty() || sub.select.is_some() || sub.one {
            return Err(unsupported(
                sub,
                "a relationship aggregate cannot have `related`, `select` or `one`",
            ));
        }
        let (kind, column, _) = Self::aggregate_kind(sub, agg, child_schema)?;
        let mut rows = sub.clone();
        rows.aggregate = None;
        let (child, _) = self.level(&rows, child_keys)?;
        let schema = TableSchema::new(
            alias,
            alloc::vec![
                Column::new("_key", ColumnType::Integer),
                Column::new("value", ColumnType::Real),
            ],
            &["_key"],
        )
        .map_err(|_| unsupported(sub, "invalid relationship alias"))?;
        let order = SortOrder::primary_key(&schema);
        Ok((
            child,
            ViewFormat {
                schema,
                order: Arc::new(order),
                singular: true,
                kind: LevelKind::Aggregate,
                visible: alloc::vec![1],
                relationships: Vec::new(),
            },
            Attach::Aggregate {
                kind,
                column,
                last: hashbrown::HashMap::new(),
            },
        ))
    }

    fn root_aggregate(&mut self, ast: &Ast) -> Result<(Box<dyn Operator>, ViewFormat), BuildError> {
        let agg = ast.aggregate.as_ref().expect("checked by the caller");
        if !ast.related.is_empty() || ast.start.is_some() || ast.one || ast.select.is_some() {
            return Err(unsupported(
                ast,
                "a root aggregate cannot have `related`, `start`, `one` or `select`",
            ));
        }
        let (table, schema) = self.table(ast)?;
        let (kind, col, name) = Self::aggregate_kind(ast, agg, &schema)?;
        let mut group_cols: Vec<usize> = Vec::new();
        for g in ast.group_by.iter().flatten() {
            let c = column(&schema, g, "groupBy")?;
            if !group_cols.contains(&c) {
                group_cols.push(c);
            }
        }
        let order = SortOrder::primary_key(&schema);
        self.prepare(table, &order, &[]);
        // Float sums are rebuilt per group by key.
        self.prepare(table, &order, &group_cols);
        let input = self.filtered(ast, table, &schema, &order)?;

        // The output layout: group columns (or a constant key) and the aggregate.
        let (mut columns, pk): (Vec<Column>, Vec<String>) = if group_cols.is_empty() {
            (
                alloc::vec![Column::new("_key", ColumnType::Integer)],
                alloc::vec!["_key".into()],
            )
        } else {
            (
                group_cols
                    .iter()
                    .map(|&c| schema.columns()[c].clone())
                    .collect(),
                group_cols
                    .iter()
                    .map(|&c| schema.columns()[c].name.clone())
                    .collect(),
            )
        };
        let agg_ty = if kind == AggKind::Count {
            ColumnType::Integer
        } else {
            ColumnType::Real
        };
        columns.push(Column::new(name, agg_ty));
        let pk_refs: Vec<&str> = pk.iter().map(String::as_str).collect();
        let out_schema = TableSchema::new(schema.name(), columns, &pk_refs).map_err(|_| {
            unsupported(
                ast,
                &format!("a `groupBy` column is named `{name}`, like the aggregate"),
            )
        })?;
        let having = ast
            .having
            .as_ref()
            .map(|h| {
                if has_exists(h) {
                    return Err(unsupported(ast, "`having` cannot contain EXISTS"));
                }
                Predicate::compile(h, &out_schema)
            })
            .transpose()?;
        let mut out_keys = Vec::new();
        for (n, dir) in ast.order_by.iter().flatten() {
            let c = column(&out_schema, n, "orderBy")?;
            if !out_keys.iter().any(|(k, _)| *k == c) {
                out_keys.push((c, *dir));
            }
        }
        let out_order = SortOrder::new(out_keys).completed(&out_schema);
        let mut op: Box<dyn Operator> = Box::new(Group::new(
            input,
            group_cols.clone(),
            kind,
            col,
            having,
            out_order.clone(),
        ));
        if let Some(limit) = ast.limit {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            op = Box::new(Take::new(op, out_order.clone(), limit, Vec::new()));
        }
        let visible = if group_cols.is_empty() {
            alloc::vec![1]
        } else {
            (0..=group_cols.len()).collect()
        };
        Ok((
            op,
            ViewFormat {
                schema: out_schema,
                order: Arc::new(out_order),
                singular: false,
                kind: LevelKind::Groups,
                visible,
                relationships: Vec::new(),
            },
        ))
    }
}

fn check_depth(ast: &Ast, depth: usize) -> Result<(), BuildError> {
    if depth > MAX_AST_DEPTH {
        return Err(BuildError::TooDeep {
            limit: MAX_AST_DEPTH,
        });
    }
    for r in &ast.related {
        check_depth(&r.subquery, depth + 1)?;
    }
    for c in ast.where_.iter().chain(ast.having.iter()) {
        check_condition_depth(c, depth + 1)?;
    }
    Ok(())
}

fn check_condition_depth(c: &Condition, depth: usize) -> Result<(), BuildError> {
    if depth > MAX_AST_DEPTH {
        return Err(BuildError::TooDeep {
            limit: MAX_AST_DEPTH,
        });
    }
    match c {
        Condition::And { conditions } | Condition::Or { conditions } => {
            for c in conditions {
                check_condition_depth(c, depth + 1)?;
            }
        }
        Condition::CorrelatedSubquery { related, .. } => check_depth(&related.subquery, depth + 1)?,
        Condition::Simple { .. } => {}
    }
    Ok(())
}
