//! Lowering: an [`Ast`] checked against a [`Catalog`] and turned into a
//! [`Pipeline`] of operators.
//!
//! Per level: the source connection (the level's order, its simple filters
//! pushed down), then Skip for `start`, then Take for `limit` / `one`. Every
//! `orderBy` is completed with the primary key first, so orders are total.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::ToString;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::ast::{Ast, Condition};
use crate::error::BuildError;
use crate::operator::Operator;
use crate::operator::connection::Connection;
use crate::operator::skip::Skip;
use crate::operator::take::Take;
use crate::ordering::SortOrder;
use crate::predicate::Predicate;
use crate::schema::TableSchema;
use crate::source::{Catalog, TableId};
use crate::value::{Row, Value};

/// How deep an AST may nest (levels plus condition nesting).
pub const MAX_AST_DEPTH: usize = 64;

/// The shape of a query's result: what a [`crate::View`] needs to hold it.
#[derive(Clone, Debug)]
pub struct ViewFormat {
    schema: TableSchema,
    order: Arc<SortOrder>,
    singular: bool,
    relationships: Vec<(Arc<str>, ViewFormat)>,
}

impl ViewFormat {
    /// The level's table.
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

    /// The child levels by relationship alias, in declared order.
    pub fn relationships(&self) -> &[(Arc<str>, ViewFormat)] {
        &self.relationships
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
/// Refuses, with a [`BuildError`] naming the problem: unknown tables and
/// columns, malformed conditions, and shapes this engine does not maintain.
pub fn build_pipeline(ast: &Ast, catalog: &mut dyn Catalog) -> Result<Pipeline, BuildError> {
    check_depth(ast, 1)?;
    let table = catalog
        .table_id(&ast.table)
        .ok_or_else(|| BuildError::UnknownTable {
            table: ast.table.clone(),
        })?;
    let schema = catalog.source(table).schema().clone();
    let unsupported = |reason: &str| BuildError::Unsupported {
        table: ast.table.clone(),
        reason: reason.to_string(),
    };
    if !ast.related.is_empty() {
        return Err(unsupported("`related` relationships are not supported yet"));
    }
    if ast.aggregate.is_some() {
        return Err(unsupported("`aggregate` is not supported yet"));
    }
    if ast.group_by.is_some() || ast.having.is_some() {
        return Err(unsupported(
            "`groupBy` / `having` need a root aggregate, which is not supported yet",
        ));
    }
    if ast.select.is_some() {
        return Err(unsupported("`select` projections are not supported yet"));
    }

    let order = resolve_order(ast, &schema)?;
    let filter = ast
        .where_
        .as_ref()
        .map(|w| Predicate::compile(w, &schema))
        .transpose()?;
    catalog.source_mut(table).prepare(&order, &[]);

    let mut op: Box<dyn Operator> = Box::new(Connection::new(
        table,
        schema.clone(),
        order.clone(),
        filter,
    ));
    if let Some(start) = &ast.start {
        let mut cells = alloc::vec![Value::Null; schema.columns().len()];
        for (name, v) in &start.row {
            let c = schema
                .column_index(name)
                .ok_or_else(|| BuildError::UnknownColumn {
                    table: ast.table.clone(),
                    column: name.clone(),
                    place: "start",
                })?;
            cells[c] = v.clone();
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
    if let Some(limit) = limit {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        op = Box::new(Take::new(op, order.clone(), limit, Vec::new()));
    }
    Ok(Pipeline {
        root: op,
        tables: alloc::vec![table],
        format: Arc::new(ViewFormat {
            schema,
            order: Arc::new(order),
            singular: ast.one,
            relationships: Vec::new(),
        }),
    })
}

fn resolve_order(ast: &Ast, schema: &TableSchema) -> Result<SortOrder, BuildError> {
    let mut keys = Vec::new();
    for (name, dir) in ast.order_by.iter().flatten() {
        let c = schema
            .column_index(name)
            .ok_or_else(|| BuildError::UnknownColumn {
                table: ast.table.clone(),
                column: name.clone(),
                place: "orderBy",
            })?;
        // A repeated column can never decide the order again; keep the first.
        if !keys.iter().any(|(k, _)| *k == c) {
            keys.push((c, *dir));
        }
    }
    Ok(SortOrder::new(keys).completed(schema))
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
        Condition::CorrelatedSubquery { related, .. } => {
            let sub = &related.subquery;
            if related.correlation.parent_field.len() != related.correlation.child_field.len()
                || related.correlation.parent_field.is_empty()
            {
                return Err(BuildError::InvalidCondition {
                    table: sub.table.clone(),
                    reason: format!(
                        "correlation fields must be non-empty and pair up, got {} parent and {} child fields",
                        related.correlation.parent_field.len(),
                        related.correlation.child_field.len()
                    ),
                });
            }
            check_depth(sub, depth + 1)?;
        }
        Condition::Simple { .. } => {}
    }
    Ok(())
}
