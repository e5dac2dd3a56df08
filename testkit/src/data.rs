//! Backend-neutral test data: tables with JSON cells, writes, and scenarios.
//!
//! This is the JSON form the scenario runner reads, and the form the harness
//! hands to every subject under test, so each backend (memory, SQLite, redb, the
//! daemon) converts it the same way.

use std::collections::BTreeMap;
use std::fmt;

use rindle_core::{Ast, Column, ColumnType, Row, SchemaError, SourceChange, TableSchema, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A table: its schema and rows, cells as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableData {
    /// The table name.
    pub name: String,
    /// Columns in row order.
    pub columns: Vec<Column>,
    /// The primary-key column names, in key order.
    pub primary_key: Vec<String>,
    /// Rows, positional against `columns`.
    #[serde(default)]
    pub rows: Vec<Vec<Json>>,
}

/// What a write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteOp {
    /// Insert `row`.
    Add,
    /// Delete `row`.
    Remove,
    /// Replace `old` with `row`.
    Edit,
}

/// One row change of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Write {
    /// The table.
    pub table: String,
    /// Add, remove or edit.
    pub op: WriteOp,
    /// The row added or removed, or the new row of an edit.
    pub row: Vec<Json>,
    /// The old row of an edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Vec<Json>>,
}

/// Tables, a query, and transactions to run against it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The tables with their initial rows.
    pub tables: Vec<TableData>,
    /// The query.
    pub query: Ast,
    /// Transactions, each a list of writes.
    #[serde(default)]
    pub steps: Vec<Vec<Write>>,
}

/// Test data that does not fit its schema.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DataError {
    /// The schema itself is invalid.
    Schema(SchemaError),
    /// Two tables share a name.
    DuplicateTable(String),
    /// A write names a table that does not exist.
    UnknownTable(String),
    /// A row has the wrong number of cells.
    RowWidth {
        /// The table.
        table: String,
        /// Column count.
        expected: usize,
        /// Cell count.
        got: usize,
    },
    /// A cell does not fit its column's type.
    Cell {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column type.
        ty: ColumnType,
        /// The cell.
        got: Json,
    },
    /// An edit without `old`, or a remove or add with one.
    BadWrite {
        /// The table.
        table: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A write that contradicts the table's rows (duplicate key, absent row).
    Conflict {
        /// The table.
        table: String,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Schema(e) => write!(f, "{e}"),
            DataError::DuplicateTable(t) => write!(f, "table `{t}` is defined twice"),
            DataError::UnknownTable(t) => write!(f, "unknown table `{t}`"),
            DataError::RowWidth {
                table,
                expected,
                got,
            } => write!(
                f,
                "a row of table `{table}` has {got} cells, the table has {expected} columns"
            ),
            DataError::Cell {
                table,
                column,
                ty,
                got,
            } => write!(
                f,
                "cell {got} does not fit column `{column}` ({ty}) of table `{table}`"
            ),
            DataError::BadWrite { table, reason } => write!(f, "write to `{table}`: {reason}"),
            DataError::Conflict { table, reason } => write!(f, "write to `{table}`: {reason}"),
        }
    }
}

impl std::error::Error for DataError {}

/// A JSON cell as a value of a column of type `ty`; `None` when it does not fit.
/// JSON columns take any JSON and hold its text.
pub fn cell_to_value(ty: ColumnType, cell: &Json) -> Option<Value> {
    if cell.is_null() {
        return Some(Value::Null);
    }
    match ty {
        ColumnType::Integer => cell.as_i64().map(Value::Int),
        ColumnType::Real => match cell.as_i64() {
            Some(i) => Some(Value::Int(i)),
            None => cell.as_f64().map(Value::Float),
        },
        ColumnType::Text => cell.as_str().map(Value::text),
        ColumnType::Boolean => cell.as_bool().map(Value::Bool),
        ColumnType::Json => Some(Value::text(&cell.to_string())),
        _ => None,
    }
}

/// A value of a column of type `ty` as a JSON cell.
pub fn value_to_json(ty: ColumnType, v: &Value) -> Json {
    match (ty, v) {
        (ColumnType::Json, Value::Text(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.to_string()))
        }
        (_, Value::Null) => Json::Null,
        (_, Value::Bool(b)) => Json::Bool(*b),
        (_, Value::Int(i)) => Json::from(*i),
        (_, Value::Float(f)) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        (_, Value::Text(s)) => Json::String(s.to_string()),
    }
}

impl TableData {
    /// The core schema of this table.
    pub fn schema(&self) -> Result<TableSchema, DataError> {
        let pk: Vec<&str> = self.primary_key.iter().map(String::as_str).collect();
        TableSchema::new(&self.name, self.columns.clone(), &pk).map_err(DataError::Schema)
    }

    /// A JSON row as a core row, checked against the column types.
    pub fn row(&self, cells: &[Json]) -> Result<Row, DataError> {
        if cells.len() != self.columns.len() {
            return Err(DataError::RowWidth {
                table: self.name.clone(),
                expected: self.columns.len(),
                got: cells.len(),
            });
        }
        let mut out = Vec::with_capacity(cells.len());
        for (c, cell) in self.columns.iter().zip(cells) {
            let fits = cell_to_value(c.ty, cell).filter(|v| !v.is_null() || c.nullable);
            match fits {
                Some(v) => out.push(v),
                None => {
                    return Err(DataError::Cell {
                        table: self.name.clone(),
                        column: c.name.clone(),
                        ty: c.ty,
                        got: cell.clone(),
                    });
                }
            }
        }
        Ok(Row::new(out))
    }

    /// A core row of this table as JSON cells.
    pub fn json_row(&self, row: &Row) -> Vec<Json> {
        self.columns
            .iter()
            .zip(row.iter())
            .map(|(c, v)| value_to_json(c.ty, v))
            .collect()
    }
}

/// The rows of every table, keyed by primary key: a model of what a database
/// holds, used to check writes and resolve generated ones.
#[derive(Clone, Debug, Default)]
pub struct Model {
    tables: BTreeMap<String, ModelTable>,
}

/// A table's definition (without rows), schema, and rows by key.
type ModelTable = (TableData, TableSchema, BTreeMap<Vec<Value>, Row>);

impl Model {
    /// A model holding the tables' rows; refuses invalid schemas, rows, and
    /// duplicate keys.
    pub fn new(tables: &[TableData]) -> Result<Model, DataError> {
        let mut m = Model::default();
        for t in tables {
            let schema = t.schema()?;
            let mut rows = BTreeMap::new();
            for cells in &t.rows {
                let row = t.row(cells)?;
                if rows.insert(schema.key_of(&row), row).is_some() {
                    return Err(DataError::Conflict {
                        table: t.name.clone(),
                        reason: format!(
                            "duplicate primary key in row {}",
                            Json::from(cells.clone())
                        ),
                    });
                }
            }
            let mut data = t.clone();
            data.rows.clear();
            if m.tables
                .insert(t.name.clone(), (data, schema, rows))
                .is_some()
            {
                return Err(DataError::DuplicateTable(t.name.clone()));
            }
        }
        Ok(m)
    }

    /// Checks a write against the current rows and applies it; returns the core
    /// change it amounts to.
    pub fn apply(&mut self, w: &Write) -> Result<SourceChange, DataError> {
        let (data, schema, rows) = self
            .tables
            .get_mut(&w.table)
            .ok_or_else(|| DataError::UnknownTable(w.table.clone()))?;
        let conflict = |reason: String| DataError::Conflict {
            table: w.table.clone(),
            reason,
        };
        let row = data.row(&w.row)?;
        let old = match (w.op, &w.old) {
            (WriteOp::Edit, Some(o)) => Some(data.row(o)?),
            (WriteOp::Edit, None) => {
                return Err(DataError::BadWrite {
                    table: w.table.clone(),
                    reason: "an edit needs `old`",
                });
            }
            (_, Some(_)) => {
                return Err(DataError::BadWrite {
                    table: w.table.clone(),
                    reason: "only an edit takes `old`",
                });
            }
            (_, None) => None,
        };
        let present = |rows: &BTreeMap<Vec<Value>, Row>, r: &Row| -> Result<(), DataError> {
            match rows.get(&schema.key_of(r)) {
                Some(s) if s == r => Ok(()),
                Some(_) => Err(conflict(format!(
                    "row {:?} differs from the stored row of its key",
                    r
                ))),
                None => Err(conflict(format!("no row with key {:?}", schema.key_of(r)))),
            }
        };
        let change = match old {
            None if w.op == WriteOp::Add => {
                if rows.contains_key(&schema.key_of(&row)) {
                    return Err(conflict(format!(
                        "a row with key {:?} already exists",
                        schema.key_of(&row)
                    )));
                }
                rows.insert(schema.key_of(&row), row.clone());
                SourceChange::Add(row)
            }
            None => {
                present(rows, &row)?;
                rows.remove(&schema.key_of(&row));
                SourceChange::Remove(row)
            }
            Some(old) => {
                present(rows, &old)?;
                let (ko, kn) = (schema.key_of(&old), schema.key_of(&row));
                if ko != kn && rows.contains_key(&kn) {
                    return Err(conflict(format!("a row with key {kn:?} already exists")));
                }
                rows.remove(&ko);
                rows.insert(kn, row.clone());
                SourceChange::Edit { old, new: row }
            }
        };
        Ok(change)
    }

    /// The schema of a table.
    pub fn schema(&self, table: &str) -> Option<&TableSchema> {
        self.tables.get(table).map(|(_, s, _)| s)
    }

    /// The current rows of a table, in primary-key order.
    pub fn rows(&self, table: &str) -> impl Iterator<Item = &Row> {
        self.tables
            .get(table)
            .into_iter()
            .flat_map(|(_, _, rows)| rows.values())
    }

    /// The tables, with their current rows as JSON, in name order.
    pub fn tables(&self) -> Vec<TableData> {
        self.tables
            .values()
            .map(|(data, _, rows)| {
                let mut t = data.clone();
                t.rows = rows.values().map(|r| data.json_row(r)).collect();
                t
            })
            .collect()
    }
}
