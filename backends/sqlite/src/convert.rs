//! Between SQLite's values and the engine's: declared types, cells, keys.

use rindle_core::{ColumnType, Row, TableSchema, Value};
use rusqlite::types::{Value as SqlValue, ValueRef};

use crate::SqliteError;

/// The engine type of a declared SQLite column type, by SQLite's affinity
/// rules, with `BOOL…` read as boolean and `JSON` as JSON text; `None` for
/// columns without a type or of type BLOB, which the engine cannot order.
pub(crate) fn column_type(declared: &str) -> Option<ColumnType> {
    let d = declared.to_ascii_uppercase();
    if d.contains("BOOL") {
        Some(ColumnType::Boolean)
    } else if d.contains("JSON") {
        Some(ColumnType::Json)
    } else if d.contains("INT") {
        Some(ColumnType::Integer)
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        Some(ColumnType::Text)
    } else if d.contains("BLOB") || d.is_empty() {
        None
    } else {
        // REAL, FLOAT, DOUBLE, NUMERIC, DECIMAL, ...
        Some(ColumnType::Real)
    }
}

/// A stored cell as an engine value. SQLite keeps neither the sign of a zero
/// in a REAL column nor a JSON column's number as text, so -0.0 reads as 0.0
/// and a JSON number as its text, wherever it comes from.
pub(crate) fn to_value(
    schema: &TableSchema,
    col: usize,
    v: ValueRef<'_>,
) -> Result<Value, SqliteError> {
    let c = &schema.columns()[col];
    let bad = |what: &str| SqliteError::Value {
        table: schema.name().into(),
        column: c.name.clone(),
        reason: format!("holds {what}, which does not fit a {} column", c.ty),
    };
    Ok(match (c.ty, v) {
        (_, ValueRef::Null) => Value::Null,
        (ColumnType::Boolean, ValueRef::Integer(i)) => Value::Bool(i != 0),
        (ColumnType::Integer, ValueRef::Integer(i)) => Value::Int(i),
        (ColumnType::Real, ValueRef::Integer(i)) => Value::Int(i),
        (ColumnType::Real, ValueRef::Real(f)) => Value::Float(if f == 0.0 { 0.0 } else { f }),
        (ColumnType::Json, ValueRef::Integer(i)) => Value::text(&i.to_string()),
        (ColumnType::Json, ValueRef::Real(f)) => Value::text(&format!("{f:?}")),
        (ColumnType::Text | ColumnType::Json, ValueRef::Text(t)) => {
            Value::text(std::str::from_utf8(t).map_err(|_| bad("invalid UTF-8 text"))?)
        }
        (_, ValueRef::Blob(_)) => return Err(bad("a blob")),
        (_, ValueRef::Text(_)) => return Err(bad("text")),
        (_, ValueRef::Real(_)) => return Err(bad("a real")),
        (_, ValueRef::Integer(_)) => return Err(bad("an integer")),
    })
}

/// An engine value as a SQL parameter.
pub(crate) fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Int(i) => SqlValue::Integer(*i),
        Value::Float(f) => SqlValue::Real(*f),
        Value::Text(s) => SqlValue::Text(s.to_string()),
    }
}

/// Reads a full row of `schema` from a result row whose columns are the
/// table's, in order.
pub(crate) fn read_row(schema: &TableSchema, r: &rusqlite::Row<'_>) -> Result<Row, SqliteError> {
    let mut cells = Vec::with_capacity(schema.columns().len());
    for i in 0..schema.columns().len() {
        cells.push(to_value(schema, i, r.get_ref(i)?)?);
    }
    Ok(Row::new(cells))
}

/// A quoted SQL identifier.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types() {
        assert_eq!(column_type("INTEGER"), Some(ColumnType::Integer));
        assert_eq!(column_type("bigint"), Some(ColumnType::Integer));
        assert_eq!(column_type("VARCHAR(20)"), Some(ColumnType::Text));
        assert_eq!(column_type("BOOLEAN"), Some(ColumnType::Boolean));
        assert_eq!(column_type("json"), Some(ColumnType::Json));
        assert_eq!(column_type("DOUBLE PRECISION"), Some(ColumnType::Real));
        assert_eq!(column_type("NUMERIC"), Some(ColumnType::Real));
        assert_eq!(column_type("BLOB"), None);
        assert_eq!(column_type(""), None);
    }
}
