//! Table schemas: typed columns and a primary key.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use serde::Serialize;

use crate::error::{ChangeError, SchemaError};
use crate::read::{self, Json, Object, ReadError};
use crate::value::{Row, Value};

/// The declared type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum ColumnType {
    /// 64-bit integers ([`Value::Int`]).
    Integer,
    /// Floats; an integer given for a real column is stored as the float it
    /// converts to (as SQLite's REAL affinity does), so every backend holds the
    /// same values.
    Real,
    /// UTF-8 text.
    Text,
    /// Booleans.
    Boolean,
    /// JSON, stored as its text; ordered like text.
    Json,
}

impl ColumnType {
    /// True when a non-null `v` may be stored in a column of this type.
    pub fn admits(self, v: &Value) -> bool {
        matches!(
            (self, v),
            (ColumnType::Integer, Value::Int(_))
                | (ColumnType::Real, Value::Int(_) | Value::Float(_))
                | (ColumnType::Text | ColumnType::Json, Value::Text(_))
                | (ColumnType::Boolean, Value::Bool(_))
        )
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Integer => "integer",
            ColumnType::Real => "real",
            ColumnType::Text => "text",
            ColumnType::Boolean => "boolean",
            ColumnType::Json => "json",
        })
    }
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    /// The column name.
    pub name: String,
    /// The declared type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Whether null is allowed. Primary-key columns never are.
    pub nullable: bool,
}

/// The wire spellings of the column types, in declaration order.
const TYPE_NAMES: &[&str] = &["integer", "real", "text", "boolean", "json"];
const TYPES: [ColumnType; 5] = [
    ColumnType::Integer,
    ColumnType::Real,
    ColumnType::Text,
    ColumnType::Boolean,
    ColumnType::Json,
];

impl ColumnType {
    /// Reads a type from its wire name (`"integer"`, `"real"`, `"text"`,
    /// `"boolean"`, `"json"`).
    pub fn from_json(v: &Json) -> Result<ColumnType, ReadError> {
        read::one_of(v, "column type", TYPE_NAMES).map(|i| TYPES[i])
    }
}

impl Column {
    /// Reads `{"name", "type", "nullable"}` (nullable defaults to true).
    pub fn from_json(v: &Json) -> Result<Column, ReadError> {
        let f = Object::new(v, "a column object", &["name", "type", "nullable"])?;
        Ok(Column {
            name: f.need("name", read::string)?,
            ty: f.need("type", ColumnType::from_json)?,
            nullable: f.field("nullable", read::boolean)?.unwrap_or(true),
        })
    }
}

read::deserialize_via_tree!(ColumnType, ColumnType::from_json);
read::deserialize_via_tree!(Column, Column::from_json);

impl Column {
    /// A nullable column.
    pub fn new(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.into(),
            ty,
            nullable: true,
        }
    }

    /// This column, with null refused.
    pub fn not_null(mut self) -> Column {
        self.nullable = false;
        self
    }
}

/// A table: its name, columns in row order, and primary key.
///
/// Built with [`TableSchema::new`], which checks that column names are unique and
/// the primary key is non-empty and names existing columns.
#[derive(Clone, PartialEq, Eq)]
pub struct TableSchema {
    name: Arc<str>,
    columns: Vec<Column>,
    primary_key: Vec<usize>,
}

impl TableSchema {
    /// A schema from the table name, its columns and the names of its primary-key
    /// columns (in key order).
    pub fn new(
        name: &str,
        mut columns: Vec<Column>,
        primary_key: &[&str],
    ) -> Result<TableSchema, SchemaError> {
        if columns.is_empty() {
            return Err(SchemaError::NoColumns { table: name.into() });
        }
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].iter().any(|d| d.name == c.name) {
                return Err(SchemaError::DuplicateColumn {
                    table: name.into(),
                    column: c.name.clone(),
                });
            }
        }
        if primary_key.is_empty() {
            return Err(SchemaError::NoPrimaryKey { table: name.into() });
        }
        let mut pk = Vec::with_capacity(primary_key.len());
        for k in primary_key {
            let idx = columns.iter().position(|c| c.name == *k).ok_or_else(|| {
                SchemaError::UnknownKeyColumn {
                    table: name.into(),
                    column: (*k).into(),
                }
            })?;
            if pk.contains(&idx) {
                return Err(SchemaError::DuplicateColumn {
                    table: name.into(),
                    column: (*k).into(),
                });
            }
            columns[idx].nullable = false;
            pk.push(idx);
        }
        Ok(TableSchema {
            name: name.into(),
            columns,
            primary_key: pk,
        })
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table name as a shared string.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The columns, in row order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Indexes of the primary-key columns, in key order.
    pub fn primary_key(&self) -> &[usize] {
        &self.primary_key
    }

    /// The position of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The primary-key values of a row of this table.
    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.primary_key.iter().map(|&i| row[i].clone()).collect()
    }

    /// The row's primary-key cells as a slice of the row, when the key
    /// columns are consecutive and in key order (a leading `id`, say): the
    /// key without a copy. `None` otherwise (use [`TableSchema::key_of`]).
    pub fn key_slice<'r>(&self, row: &'r [Value]) -> Option<&'r [Value]> {
        let first = *self.primary_key.first()?;
        let run = self
            .primary_key
            .iter()
            .enumerate()
            .all(|(i, &c)| c == first + i);
        run.then(|| row.get(first..first + self.primary_key.len()))
            .flatten()
    }

    /// True when two rows of this table have the same primary key.
    pub fn same_key(&self, a: &[Value], b: &[Value]) -> bool {
        self.primary_key.iter().all(|&i| a[i] == b[i])
    }

    /// The row as stored: integers in real columns become floats. Other cells
    /// are unchanged; the row is not checked (see [`TableSchema::check_row`]).
    pub fn normalize(&self, row: Row) -> Row {
        let needs = self
            .columns
            .iter()
            .zip(row.iter())
            .any(|(c, v)| c.ty == ColumnType::Real && matches!(v, Value::Int(_)));
        if !needs {
            return row;
        }
        Row::new(
            self.columns
                .iter()
                .zip(row.iter())
                .map(|(c, v)| match (c.ty, v) {
                    (ColumnType::Real, Value::Int(i)) => Value::Float(*i as f64),
                    _ => v.clone(),
                })
                .collect(),
        )
    }

    /// Checks a row's width and each cell against its column's type and
    /// nullability.
    pub fn check_row(&self, row: &Row) -> Result<(), ChangeError> {
        if row.len() != self.columns.len() {
            return Err(ChangeError::RowWidth {
                table: self.name.clone(),
                expected: self.columns.len(),
                got: row.len(),
            });
        }
        for (c, v) in self.columns.iter().zip(row.iter()) {
            let ok = if v.is_null() {
                c.nullable
            } else {
                c.ty.admits(v)
            };
            if !ok {
                return Err(ChangeError::CellType {
                    table: self.name.clone(),
                    column: c.name.clone(),
                    expected: c.ty,
                    nullable: c.nullable,
                    got: v.clone(),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TableSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.name)?;
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}", c.name, c.ty)?;
            if self.primary_key.contains(&i) {
                f.write_str(" key")?;
            } else if !c.nullable {
                f.write_str(" not null")?;
            }
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row;
    use alloc::vec;

    fn issue() -> TableSchema {
        TableSchema::new(
            "issue",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("title", ColumnType::Text).not_null(),
                Column::new("score", ColumnType::Real),
            ],
            &["id"],
        )
        .unwrap()
    }

    #[test]
    fn schema_validation() {
        let s = issue();
        assert_eq!(s.primary_key(), &[0]);
        assert!(!s.columns()[0].nullable);
        assert!(matches!(
            TableSchema::new("t", vec![Column::new("a", ColumnType::Text)], &[]),
            Err(SchemaError::NoPrimaryKey { .. })
        ));
        assert!(matches!(
            TableSchema::new("t", vec![Column::new("a", ColumnType::Text)], &["b"]),
            Err(SchemaError::UnknownKeyColumn { .. })
        ));
        assert!(matches!(
            TableSchema::new(
                "t",
                vec![
                    Column::new("a", ColumnType::Text),
                    Column::new("a", ColumnType::Text)
                ],
                &["a"]
            ),
            Err(SchemaError::DuplicateColumn { .. })
        ));
    }

    #[test]
    fn row_checks() {
        let s = issue();
        s.check_row(&row![1, "t", 2.5]).unwrap();
        s.check_row(&row![1, "t", 2]).unwrap();
        s.check_row(&row![1, "t", Value::Null]).unwrap();
        assert!(matches!(
            s.check_row(&row![1, "t"]),
            Err(ChangeError::RowWidth { .. })
        ));
        assert!(matches!(
            s.check_row(&row![Value::Null, "t", 1]),
            Err(ChangeError::CellType { .. })
        ));
        assert!(matches!(
            s.check_row(&row![1, Value::Null, 1]),
            Err(ChangeError::CellType { .. })
        ));
        assert!(matches!(
            s.check_row(&row![1.5, "t", 1]),
            Err(ChangeError::CellType { .. })
        ));
        assert!(matches!(
            s.check_row(&row![1, 3, 1]),
            Err(ChangeError::CellType { .. })
        ));
    }
}
