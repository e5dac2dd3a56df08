//! The fresh-query oracle: an AST compiled into ONE SQLite `SELECT` that returns
//! the whole nested result as JSON, in the engine's order.
//!
//! The proof that view-after-write == fresh-query must not rest on an evaluator
//! written by the same hands as the engine, so the oracle leaves evaluation to
//! SQLite. Where SQL and QUERY.md could disagree, the compiler emits SQL that
//! follows QUERY.md (each case is pinned by a test in `tests/oracle.rs`):
//!
//! - Tables are created without declared column types, so SQLite applies no
//!   type affinity and compares stored values as they are. Booleans are stored
//!   as 0 / 1 and rendered back as JSON booleans.
//! - Comparator version 2 orders kinds null < bool < number < text, while SQLite
//!   would compare a boolean (an integer) with a number. Columns are typed, so a
//!   comparison between a column and a literal of another kind is decided by the
//!   kinds' ranks when the query is compiled.
//! - Every operator but IS / IS NOT is false on null; the SQL guards each
//!   comparison with `IS NOT NULL` instead of relying on three-valued logic.
//! - LIKE is case-sensitive and ILIKE folds ASCII only, while SQLite's LIKE
//!   folds ASCII case and treats a trailing escape as a mismatch: patterns are
//!   translated to GLOB (case-sensitive, UTF-8 aware), with `lower()` on both
//!   sides for ILIKE. LIKE never matches a non-text value, where SQLite would
//!   match `5 LIKE '5'`.
//! - Null elements of an IN / NOT IN list match nothing (SQL's `x NOT IN (1,
//!   NULL)` is never true).
//! - IEEE total order puts -0.0 below 0 and 0.0; SQLite holds them equal. A
//!   one-line SQL function, `rindle_negzero(x)` (is `x` the float -0.0?),
//!   breaks those ties in ORDER BY, comparisons, correlations and GROUP BY.
//!
//! Semantics of the shapes beyond single tables, as this oracle defines them:
//! a child level's rows are its table's rows whose `childField`s equal the
//! parent row's `parentField`s (null never joins), filtered by the child's
//! `where` and `start`, ordered, then limited per parent. A relationship
//! aggregate is computed over those rows: `count` (0 without rows), `sum` and
//! `avg` (null without non-null values). A root aggregate yields one row per
//! group, `{<group columns>, <count|sum|avg>: value}`, filtered by `having`
//! (which names group columns and the aggregate), ordered by `orderBy`
//! completed with the group columns; without `groupBy` it yields exactly one
//! row. `select` keeps the named columns plus the primary key.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use rindle_core::{
    Aggregate, Ast, Bound, ColumnType, Condition, CorrelatedSubquery, Correlation, Direction,
    ExistsOp, Literal, SimpleOp, SourceChange, TableSchema, Value, ValueKind, ValuePosition,
};
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, params_from_iter};
use serde_json::Value as Json;

use crate::backends::sql_value;
use crate::data::{DataError, TableData};

/// Why the oracle could not answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum OracleError {
    /// The test data does not fit its schema.
    Data(DataError),
    /// The AST names a table that does not exist.
    UnknownTable(String),
    /// The AST names a column its level's table does not have.
    UnknownColumn {
        /// The table (or `<aggregate>` for `having`).
        table: String,
        /// The column.
        column: String,
    },
    /// A malformed condition or correlation.
    Invalid(String),
    /// A shape outside QUERY.md's supported subset.
    Unsupported(String),
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// SQLite returned JSON that does not parse (a bug in the compiler).
    Json(serde_json::Error),
}

impl fmt::Display for OracleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OracleError::Data(e) => write!(f, "{e}"),
            OracleError::UnknownTable(t) => write!(f, "unknown table `{t}`"),
            OracleError::UnknownColumn { table, column } => {
                write!(f, "unknown column `{column}` of `{table}`")
            }
            OracleError::Invalid(r) => write!(f, "invalid query: {r}"),
            OracleError::Unsupported(r) => write!(f, "unsupported query shape: {r}"),
            OracleError::Sqlite(e) => write!(f, "sqlite: {e}"),
            OracleError::Json(e) => write!(f, "oracle produced bad JSON: {e}"),
        }
    }
}

impl std::error::Error for OracleError {}

impl From<rusqlite::Error> for OracleError {
    fn from(e: rusqlite::Error) -> Self {
        OracleError::Sqlite(e)
    }
}

impl From<DataError> for OracleError {
    fn from(e: DataError) -> Self {
        OracleError::Data(e)
    }
}

/// A SQLite database holding the test tables, answering queries from scratch.
pub struct Oracle {
    conn: Connection,
    tables: BTreeMap<String, TableSchema>,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn kind_of(ty: ColumnType) -> ValueKind {
    match ty {
        ColumnType::Boolean => ValueKind::Bool,
        ColumnType::Integer | ColumnType::Real => ValueKind::Number,
        _ => ValueKind::Text,
    }
}

impl Oracle {
    /// A fresh in-memory database with the tables and their rows.
    pub fn new(tables: &[TableData]) -> Result<Oracle, OracleError> {
        let conn = Connection::open_in_memory()?;
        conn.create_scalar_function(
            "rindle_negzero",
            1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| {
                Ok(match ctx.get_raw(0) {
                    ValueRef::Real(f) => i64::from(f == 0.0 && f.is_sign_negative()),
                    _ => 0,
                })
            },
        )?;
        let mut oracle = Oracle {
            conn,
            tables: BTreeMap::new(),
        };
        for t in tables {
            let schema = t.schema()?;
            let cols: Vec<String> = schema.columns().iter().map(|c| quote(&c.name)).collect();
            let pk: Vec<String> = schema
                .primary_key()
                .iter()
                .map(|&i| quote(&schema.columns()[i].name))
                .collect();
            // No declared types: no affinity, values compared as stored.
            oracle.conn.execute_batch(&format!(
                "CREATE TABLE {} ({}, PRIMARY KEY ({}))",
                quote(&t.name),
                cols.join(", "),
                pk.join(", ")
            ))?;
            oracle.tables.insert(t.name.clone(), schema);
            for cells in &t.rows {
                let row = t.row(cells)?;
                oracle.apply(&t.name, &SourceChange::Add(row))?;
            }
        }
        Ok(oracle)
    }

    /// Applies one row change with plain SQL.
    pub fn apply(&mut self, table: &str, change: &SourceChange) -> Result<(), OracleError> {
        let schema = self
            .tables
            .get(table)
            .ok_or_else(|| OracleError::UnknownTable(table.into()))?;
        let key_match = |offset: usize| -> String {
            schema
                .primary_key()
                .iter()
                .enumerate()
                .map(|(n, &i)| {
                    format!("{} = ?{}", quote(&schema.columns()[i].name), offset + n + 1)
                })
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let key_params = |row: &[Value]| -> Vec<SqlValue> {
            schema
                .primary_key()
                .iter()
                .map(|&i| sql_value(&row[i]))
                .collect()
        };
        let t = quote(table);
        let affected = match change {
            SourceChange::Add(row) => {
                let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
                self.conn.execute(
                    &format!("INSERT INTO {t} VALUES ({})", marks.join(", ")),
                    params_from_iter(row.iter().map(sql_value)),
                )?
            }
            SourceChange::Remove(row) => self.conn.execute(
                &format!("DELETE FROM {t} WHERE {}", key_match(0)),
                params_from_iter(key_params(row)),
            )?,
            SourceChange::Edit { old, new } => {
                let sets: Vec<String> = schema
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} = ?{}", quote(&c.name), i + 1))
                    .collect();
                let mut params: Vec<SqlValue> = new.iter().map(sql_value).collect();
                params.extend(key_params(old));
                self.conn.execute(
                    &format!(
                        "UPDATE {t} SET {} WHERE {}",
                        sets.join(", "),
                        key_match(new.len())
                    ),
                    params_from_iter(params),
                )?
            }
        };
        if affected != 1 {
            return Err(OracleError::Invalid(format!(
                "change to `{table}` matched {affected} rows: {change:?}"
            )));
        }
        Ok(())
    }

    /// The SQL the oracle runs for `ast`, with its parameters.
    pub fn compile(&self, ast: &Ast) -> Result<(String, Vec<SqlValue>), OracleError> {
        let mut c = Compiler {
            tables: &self.tables,
            params: Vec::new(),
            aliases: 0,
        };
        let expr = c.root(ast)?;
        Ok((format!("SELECT {expr}"), c.params))
    }

    /// The query's result from scratch: a JSON array of row objects, or for a
    /// singular root the object or null.
    pub fn query(&self, ast: &Ast) -> Result<Json, OracleError> {
        let (sql, params) = self.compile(ast)?;
        let text: Option<String> = self
            .conn
            .query_row(&sql, params_from_iter(params), |r| r.get(0))?;
        match text {
            None => Ok(Json::Null),
            Some(t) => serde_json::from_str(&t).map_err(OracleError::Json),
        }
    }

    /// The underlying connection (for inspection in tests).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// Names visible to conditions: a table level's columns, or a root
/// aggregate's group columns and aggregate.
struct Scope<'a> {
    table: String,
    cols: Vec<(String, String, ColumnType)>,
    /// The level's alias and schema, for correlated subqueries.
    level: Option<(String, &'a TableSchema)>,
}

impl Scope<'_> {
    fn column(&self, name: &str) -> Result<(String, ColumnType), OracleError> {
        self.cols
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, e, t)| (e.clone(), *t))
            .ok_or_else(|| OracleError::UnknownColumn {
                table: self.table.clone(),
                column: name.into(),
            })
    }
}

/// What a level's row subquery projects.
enum Projection {
    /// `json_object(...) AS o` plus the order keys.
    Object,
    /// A constant (EXISTS, count).
    Nothing,
    /// One column as `v` (sum, avg).
    Column(String),
}

struct Compiler<'a> {
    tables: &'a BTreeMap<String, TableSchema>,
    params: Vec<SqlValue>,
    aliases: usize,
}

/// The level's `orderBy` (first mention of a column wins), completed with the
/// `key` columns it lacks, ascending: the total order the engine uses.
fn completed_order<'k>(ast: &Ast, key: impl Iterator<Item = &'k str>) -> Vec<(String, Direction)> {
    let mut names: Vec<(String, Direction)> = Vec::new();
    for (n, d) in ast.order_by.iter().flatten() {
        if !names.iter().any(|(m, _)| m == n) {
            names.push((n.clone(), *d));
        }
    }
    for k in key {
        if !names.iter().any(|(m, _)| m == k) {
            names.push((k.to_string(), Direction::Asc));
        }
    }
    names
}

fn and_all(parts: &[String]) -> String {
    if parts.is_empty() {
        "1".into()
    } else {
        format!("({})", parts.join(" AND "))
    }
}

fn opposite(d: Direction) -> Direction {
    match d {
        Direction::Asc => Direction::Desc,
        Direction::Desc => Direction::Asc,
    }
}

fn dir_sql(d: Direction) -> &'static str {
    match d {
        Direction::Asc => "ASC",
        Direction::Desc => "DESC",
    }
}

impl<'a> Compiler<'a> {
    fn param(&mut self, v: &Value) -> String {
        self.params.push(sql_value(v));
        format!("?{}", self.params.len())
    }

    fn level_scope(&mut self, ast: &Ast) -> Result<Scope<'a>, OracleError> {
        let schema = self
            .tables
            .get(&ast.table)
            .ok_or_else(|| OracleError::UnknownTable(ast.table.clone()))?;
        self.aliases += 1;
        let alias = format!("t{}", self.aliases);
        Ok(Scope {
            table: ast.table.clone(),
            cols: schema
                .columns()
                .iter()
                .map(|c| (c.name.clone(), format!("{alias}.{}", quote(&c.name)), c.ty))
                .collect(),
            level: Some((alias, schema)),
        })
    }

    fn root(&mut self, ast: &Ast) -> Result<String, OracleError> {
        if ast.aggregate.is_some() {
            return self.root_aggregate(ast);
        }
        self.level_result(ast, None)
    }

    fn check_plain_level(ast: &Ast) -> Result<(), OracleError> {
        if ast.group_by.is_some() || ast.having.is_some() {
            return Err(OracleError::Unsupported(format!(
                "`groupBy` / `having` on `{}` without a root aggregate",
                ast.table
            )));
        }
        Ok(())
    }

    /// A row-producing level's JSON: an array expression, or for `one` the
    /// object or null.
    fn level_result(
        &mut self,
        ast: &Ast,
        parent: Option<(&Scope<'_>, &Correlation)>,
    ) -> Result<String, OracleError> {
        Self::check_plain_level(ast)?;
        let scope = self.level_scope(ast)?;
        let (rows, nkeys) = self.rows(ast, &scope, parent, Projection::Object)?;
        if ast.one {
            return Ok(format!("(SELECT json(o) FROM ({rows}))"));
        }
        let keys = self.order(ast, &scope)?;
        let outer: Vec<String> = keys
            .iter()
            .take(nkeys)
            .enumerate()
            .map(|(i, (_, d))| format!("k{i} {}", dir_sql(*d)))
            .collect();
        Ok(format!(
            "(SELECT json_group_array(json(o) ORDER BY {}) FROM ({rows}))",
            outer.join(", ")
        ))
    }

    /// The level's rows: `SELECT <projection> FROM ... WHERE ... ORDER BY ...
    /// LIMIT ...`; returns the SQL and the number of order keys projected.
    fn rows(
        &mut self,
        ast: &Ast,
        scope: &Scope<'_>,
        parent: Option<(&Scope<'_>, &Correlation)>,
        projection: Projection,
    ) -> Result<(String, usize), OracleError> {
        let (alias, schema) = scope.level.clone().expect("a table level");
        let mut filters = Vec::new();
        if let Some((p, corr)) = parent {
            filters.push(self.correlation(p, scope, corr)?);
        }
        if let Some(w) = &ast.where_ {
            filters.push(self.condition(scope, w)?);
        }
        if let Some(b) = &ast.start {
            filters.push(self.start(ast, scope, b)?);
        }
        let keys = self.order(ast, scope)?;
        let is_object = matches!(projection, Projection::Object);
        let mut select = match projection {
            Projection::Object => format!("{} AS o", self.object(ast, scope)?),
            Projection::Nothing => "1 AS x".into(),
            Projection::Column(c) => format!("{} AS v", scope.column(&c)?.0),
        };
        let mut nkeys = 0;
        if is_object {
            for (i, (e, _)) in keys.iter().enumerate() {
                write!(select, ", {e} AS k{i}").expect("write to a String");
            }
            nkeys = keys.len();
        }
        let order: Vec<String> = keys
            .iter()
            .map(|(e, d)| format!("{e} {}", dir_sql(*d)))
            .collect();
        let limit = match (ast.one, ast.limit) {
            (true, l) => format!(" LIMIT {}", l.unwrap_or(1).min(1)),
            (false, Some(l)) => format!(" LIMIT {}", l.min(i64::MAX as u64)),
            (false, None) => String::new(),
        };
        Ok((
            format!(
                "SELECT {select} FROM {} AS {alias} WHERE {} ORDER BY {}{limit}",
                quote(schema.name()),
                and_all(&filters),
                order.join(", ")
            ),
            nkeys,
        ))
    }

    /// The level's total order: `orderBy` completed with the primary key, with
    /// -0.0 tie-breaks after float columns.
    fn order(&self, ast: &Ast, scope: &Scope<'_>) -> Result<Vec<(String, Direction)>, OracleError> {
        let (_, schema) = scope.level.clone().expect("a table level");
        let names = completed_order(
            ast,
            schema
                .primary_key()
                .iter()
                .map(|&k| schema.columns()[k].name.as_str()),
        );
        let mut keys = Vec::new();
        for (n, d) in names {
            let (e, ty) = scope.column(&n)?;
            if ty == ColumnType::Real {
                keys.push((e.clone(), d));
                keys.push((format!("rindle_negzero({e})"), opposite(d)));
            } else {
                keys.push((e, d));
            }
        }
        Ok(keys)
    }

    fn render_column(e: &str, ty: ColumnType) -> String {
        match ty {
            ColumnType::Boolean => format!(
                "CASE WHEN {e} IS NULL THEN NULL WHEN {e} THEN json('true') ELSE json('false') END"
            ),
            ColumnType::Json => format!("json({e})"),
            _ => e.to_string(),
        }
    }

    fn object(&mut self, ast: &Ast, scope: &Scope<'_>) -> Result<String, OracleError> {
        let (_, schema) = scope.level.clone().expect("a table level");
        let mut parts = Vec::new();
        for (i, c) in schema.columns().iter().enumerate() {
            let keep = match &ast.select {
                None => true,
                Some(sel) => sel.contains(&c.name) || schema.primary_key().contains(&i),
            };
            if keep {
                let (e, ty) = scope.column(&c.name)?;
                parts.push(format!(
                    "'{}', {}",
                    c.name.replace('\'', "''"),
                    Self::render_column(&e, ty)
                ));
            }
        }
        for s in ast.select.iter().flatten() {
            scope.column(s)?;
        }
        for r in &ast.related {
            let alias = r.subquery.alias.clone().ok_or_else(|| {
                OracleError::Invalid(format!("a relationship of `{}` has no alias", ast.table))
            })?;
            let value = self.related(scope, r)?;
            parts.push(format!("'{}', {value}", alias.replace('\'', "''")));
        }
        Ok(format!("json_object({})", parts.join(", ")))
    }

    fn related(
        &mut self,
        parent: &Scope<'_>,
        r: &CorrelatedSubquery,
    ) -> Result<String, OracleError> {
        let sub = &r.subquery;
        match &sub.aggregate {
            None => Ok(format!(
                "json({})",
                self.level_result(sub, Some((parent, &r.correlation)))?
            )),
            Some(agg) => {
                Self::check_plain_level(sub)?;
                if !sub.related.is_empty() || sub.select.is_some() || sub.one {
                    return Err(OracleError::Unsupported(format!(
                        "aggregate relationship `{}` with `related`, `select` or `one`",
                        sub.alias.as_deref().unwrap_or(&sub.table)
                    )));
                }
                let scope = self.level_scope(sub)?;
                let (projection, f) = match agg {
                    Aggregate::Count => (Projection::Nothing, "count(*)".to_string()),
                    Aggregate::Sum(c) | Aggregate::Avg(c) => {
                        let (_, ty) = scope.column(c)?;
                        if kind_of(ty) != ValueKind::Number {
                            return Err(OracleError::Unsupported(format!(
                                "sum / avg of non-numeric column `{c}`"
                            )));
                        }
                        let f = if matches!(agg, Aggregate::Sum(_)) {
                            "sum(v)"
                        } else {
                            "avg(v)"
                        };
                        (Projection::Column(c.clone()), f.to_string())
                    }
                };
                let (rows, _) =
                    self.rows(sub, &scope, Some((parent, &r.correlation)), projection)?;
                Ok(format!("(SELECT {f} FROM ({rows}))"))
            }
        }
    }

    fn correlation(
        &mut self,
        parent: &Scope<'_>,
        child: &Scope<'_>,
        corr: &Correlation,
    ) -> Result<String, OracleError> {
        if corr.parent_field.is_empty() || corr.parent_field.len() != corr.child_field.len() {
            return Err(OracleError::Invalid(format!(
                "correlation fields must be non-empty and pair up: {:?} / {:?}",
                corr.parent_field, corr.child_field
            )));
        }
        let mut parts = Vec::new();
        for (p, c) in corr.parent_field.iter().zip(&corr.child_field) {
            let (pe, pt) = parent.column(p)?;
            let (ce, ct) = child.column(c)?;
            if kind_of(pt) != kind_of(ct) {
                // Values of different kinds are never equal: nothing joins.
                parts.push("0".into());
            } else if pt == ColumnType::Real || ct == ColumnType::Real {
                parts.push(format!(
                    "({ce} = {pe} AND rindle_negzero({ce}) = rindle_negzero({pe}))"
                ));
            } else {
                parts.push(format!("{ce} = {pe}"));
            }
        }
        Ok(and_all(&parts))
    }

    fn condition(&mut self, scope: &Scope<'_>, c: &Condition) -> Result<String, OracleError> {
        match c {
            Condition::And { conditions } => {
                let parts = conditions
                    .iter()
                    .map(|c| self.condition(scope, c))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(and_all(&parts))
            }
            Condition::Or { conditions } => {
                if conditions.is_empty() {
                    return Ok("0".into());
                }
                let parts = conditions
                    .iter()
                    .map(|c| self.condition(scope, c))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(format!("({})", parts.join(" OR ")))
            }
            Condition::Simple { op, left, right } => self.simple(scope, *op, left, right),
            Condition::CorrelatedSubquery { op, related, .. } => {
                if scope.level.is_none() {
                    return Err(OracleError::Unsupported("EXISTS in `having`".into()));
                }
                let sub = &related.subquery;
                Self::check_plain_level(sub)?;
                let child = self.level_scope(sub)?;
                let (rows, _) = self.rows(
                    sub,
                    &child,
                    Some((scope, &related.correlation)),
                    Projection::Nothing,
                )?;
                Ok(match op {
                    ExistsOp::Exists => format!("EXISTS ({rows})"),
                    ExistsOp::NotExists => format!("NOT EXISTS ({rows})"),
                })
            }
        }
    }

    fn simple(
        &mut self,
        scope: &Scope<'_>,
        op: SimpleOp,
        left: &ValuePosition,
        right: &ValuePosition,
    ) -> Result<String, OracleError> {
        let ValuePosition::Column { name } = left else {
            return Err(OracleError::Invalid(format!(
                "the left side of `{op}` must be a column"
            )));
        };
        let ValuePosition::Literal { value } = right else {
            return Err(OracleError::Invalid(format!(
                "the right side of `{name} {op}` must be a literal"
            )));
        };
        let (e, ty) = scope.column(name)?;
        let scalar = || match value {
            Literal::Scalar(v) => Ok(v.clone()),
            Literal::List(_) => Err(OracleError::Invalid(format!(
                "`{name} {op}` takes a single value"
            ))),
        };
        let cmp = |op: SimpleOp| -> Option<&'static str> {
            Some(match op {
                SimpleOp::Eq => "=",
                SimpleOp::Ne => "!=",
                SimpleOp::Lt => "<",
                SimpleOp::Le => "<=",
                SimpleOp::Gt => ">",
                SimpleOp::Ge => ">=",
                _ => return None,
            })
        };
        if let Some(sql_op) = cmp(op) {
            let v = scalar()?;
            if v.is_null() {
                return Ok("0".into());
            }
            return Ok(self.compare(&e, ty, &v, sql_op));
        }
        match op {
            SimpleOp::Is | SimpleOp::IsNot => {
                let v = scalar()?;
                let is = if v.is_null() {
                    format!("({e} IS NULL)")
                } else {
                    self.compare(&e, ty, &v, "=")
                };
                Ok(if op == SimpleOp::Is {
                    is
                } else {
                    format!("(NOT {is})")
                })
            }
            SimpleOp::Like | SimpleOp::NotLike | SimpleOp::ILike | SimpleOp::NotILike => {
                let negated = matches!(op, SimpleOp::NotLike | SimpleOp::NotILike);
                let fold = matches!(op, SimpleOp::ILike | SimpleOp::NotILike);
                let pattern = match scalar()? {
                    Value::Null => return Ok("0".into()),
                    Value::Text(p) => p,
                    other => {
                        return Err(OracleError::Invalid(format!(
                            "`{name} {op}` needs a string pattern, got {other:?}"
                        )));
                    }
                };
                if kind_of(ty) != ValueKind::Text {
                    // LIKE only ever matches text.
                    return Ok(if negated {
                        format!("({e} IS NOT NULL)")
                    } else {
                        "0".into()
                    });
                }
                let glob = like_to_glob(&pattern, fold);
                let p = self.param(&Value::text(&glob));
                let m = if fold {
                    format!("lower({e}) GLOB {p}")
                } else {
                    format!("{e} GLOB {p}")
                };
                Ok(if negated {
                    format!("({e} IS NOT NULL AND NOT ({m}))")
                } else {
                    format!("({e} IS NOT NULL AND {m})")
                })
            }
            SimpleOp::In | SimpleOp::NotIn => {
                let Literal::List(vs) = value else {
                    return Err(OracleError::Invalid(format!(
                        "`{name} {op}` needs an array"
                    )));
                };
                let eqs: Vec<String> = vs
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(|v| self.compare(&e, ty, v, "="))
                    .collect();
                let any = if eqs.is_empty() {
                    "0".to_string()
                } else {
                    format!("({})", eqs.join(" OR "))
                };
                Ok(if op == SimpleOp::In {
                    any
                } else {
                    format!("({e} IS NOT NULL AND NOT {any})")
                })
            }
            _ => Err(OracleError::Unsupported(format!("operator `{op}`"))),
        }
    }

    /// `e OP v` under comparator version 2, for a non-null literal; false when
    /// `e` is null. Never yields SQL NULL.
    fn compare(&mut self, e: &str, ty: ColumnType, v: &Value, sql_op: &str) -> String {
        let (kc, kl) = (kind_of(ty), v.kind());
        if kc != kl {
            // Decided by the kinds' ranks for every non-null cell.
            let o = kc.cmp(&kl);
            let holds = match sql_op {
                "=" => o.is_eq(),
                "!=" => o.is_ne(),
                "<" => o.is_lt(),
                "<=" => o.is_le(),
                ">" => o.is_gt(),
                _ => o.is_ge(),
            };
            return if holds {
                format!("({e} IS NOT NULL)")
            } else {
                "0".into()
            };
        }
        let p = self.param(v);
        let zero = match v {
            Value::Int(0) => Some(0),
            Value::Float(f) if *f == 0.0 => Some(i32::from(f.is_sign_negative())),
            _ => None,
        };
        match zero {
            Some(lit_negzero) if kc == ValueKind::Number => format!(
                "({e} IS NOT NULL AND (CASE WHEN {e} < {p} THEN -1 WHEN {e} > {p} THEN 1 \
                 ELSE {lit_negzero} - rindle_negzero({e}) END) {sql_op} 0)"
            ),
            _ => format!("({e} IS NOT NULL AND {e} {sql_op} {p})"),
        }
    }

    /// Rows at or after (or strictly after) the partial start row in the
    /// level's order; unnamed order columns count as null.
    fn start(&mut self, ast: &Ast, scope: &Scope<'_>, b: &Bound) -> Result<String, OracleError> {
        let (_, schema) = scope.level.clone().expect("a table level");
        for (name, _) in &b.row {
            scope.column(name)?;
        }
        let names = completed_order(
            ast,
            schema
                .primary_key()
                .iter()
                .map(|&k| schema.columns()[k].name.as_str()),
        );
        let mut acc = if b.exclusive { "0" } else { "1" }.to_string();
        for (n, d) in names.iter().rev() {
            let (e, ty) = scope.column(n)?;
            let v = b.get(n).cloned().unwrap_or(Value::Null);
            let (after, eq) = if v.is_null() {
                let after = match d {
                    Direction::Asc => format!("({e} IS NOT NULL)"),
                    Direction::Desc => "0".into(),
                };
                (after, format!("({e} IS NULL)"))
            } else {
                let after = match d {
                    Direction::Asc => self.compare(&e, ty, &v, ">"),
                    Direction::Desc => {
                        format!("({e} IS NULL OR {})", self.compare(&e, ty, &v, "<"))
                    }
                };
                (after, self.compare(&e, ty, &v, "="))
            };
            acc = format!("({after} OR ({eq} AND {acc}))");
        }
        Ok(acc)
    }

    fn root_aggregate(&mut self, ast: &Ast) -> Result<String, OracleError> {
        let agg = ast.aggregate.as_ref().expect("checked by the caller");
        if !ast.related.is_empty() || ast.start.is_some() || ast.one || ast.select.is_some() {
            return Err(OracleError::Unsupported(
                "a root aggregate with `related`, `start`, `one` or `select`".into(),
            ));
        }
        let scope = self.level_scope(ast)?;
        let (alias, schema) = scope.level.clone().expect("a table level");
        let (name, f, f_ty) = match agg {
            Aggregate::Count => ("count", "count(*)".to_string(), ColumnType::Integer),
            Aggregate::Sum(c) | Aggregate::Avg(c) => {
                let (e, ty) = scope.column(c)?;
                if kind_of(ty) != ValueKind::Number {
                    return Err(OracleError::Unsupported(format!(
                        "sum / avg of non-numeric column `{c}`"
                    )));
                }
                match agg {
                    Aggregate::Sum(_) => ("sum", format!("sum({e})"), ColumnType::Real),
                    _ => ("avg", format!("avg({e})"), ColumnType::Real),
                }
            }
        };
        let groups: Vec<String> = ast.group_by.clone().unwrap_or_default();
        let mut out_cols = Vec::new();
        for g in &groups {
            let (e, ty) = scope.column(g)?;
            out_cols.push((g.clone(), e, ty));
        }
        // The output's names: group columns and the aggregate.
        let mut out_scope = Scope {
            table: format!("{} (aggregate)", ast.table),
            cols: out_cols.clone(),
            level: None,
        };
        out_scope.cols.push((name.into(), f.clone(), f_ty));

        let mut filters = Vec::new();
        if let Some(w) = &ast.where_ {
            filters.push(self.condition(&scope, w)?);
        }
        let having = match &ast.having {
            Some(h) => format!(" HAVING {}", self.condition(&out_scope, h)?),
            None => String::new(),
        };
        let mut group_sql = Vec::new();
        for (_, e, ty) in &out_cols {
            group_sql.push(e.clone());
            if *ty == ColumnType::Real {
                group_sql.push(format!("rindle_negzero({e})"));
            }
        }
        // Order: orderBy over the output names, completed with the group columns.
        let names = completed_order(ast, groups.iter().map(String::as_str));
        let mut keys = Vec::new();
        for (n, d) in names {
            let (e, ty) = out_scope.column(&n)?;
            keys.push((e.clone(), d));
            if ty == ColumnType::Real {
                keys.push((format!("rindle_negzero({e})"), opposite(d)));
            }
        }
        let mut obj = Vec::new();
        for (g, e, ty) in &out_cols {
            obj.push(format!(
                "'{}', {}",
                g.replace('\'', "''"),
                Self::render_column(e, *ty)
            ));
        }
        obj.push(format!("'{name}', {f}"));
        let mut select = format!("json_object({}) AS o", obj.join(", "));
        for (i, (e, _)) in keys.iter().enumerate() {
            write!(select, ", {e} AS k{i}").expect("write to a String");
        }
        let group = if group_sql.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", group_sql.join(", "))
        };
        let order = if keys.is_empty() {
            String::new()
        } else {
            format!(
                " ORDER BY {}",
                keys.iter()
                    .map(|(e, d)| format!("{e} {}", dir_sql(*d)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let limit = ast.limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default();
        let rows = format!(
            "SELECT {select} FROM {} AS {alias} WHERE {}{group}{having}{order}{limit}",
            quote(schema.name()),
            and_all(&filters)
        );
        let outer = if keys.is_empty() {
            String::new()
        } else {
            format!(
                " ORDER BY {}",
                keys.iter()
                    .enumerate()
                    .map(|(i, (_, d))| format!("k{i} {}", dir_sql(*d)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Ok(format!(
            "(SELECT json_group_array(json(o){outer}) FROM ({rows}))"
        ))
    }
}

/// Translates a LIKE pattern (QUERY.md: `%` any run, `_` one character, `\`
/// makes the next character literal, a trailing `\` is literal) into a GLOB
/// pattern; with `fold`, ASCII letters are lowered.
pub fn like_to_glob(pattern: &str, fold: bool) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let lit = |c: char, out: &mut String| {
        let c = if fold { c.to_ascii_lowercase() } else { c };
        match c {
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '\\' => lit(chars.next().unwrap_or('\\'), &mut out),
            c => lit(c, &mut out),
        }
    }
    out
}
