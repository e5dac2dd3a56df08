//! A subscriber's copies of the footprint's tables.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Op, ProtocolError, TableShape};
use crate::error::SchemaError;
use crate::schema::TableSchema;
use crate::source::MemoryCatalog;
use crate::value::{Row, Value};

/// Rows of one table, by primary key.
#[derive(Clone, Debug)]
struct TableCopy {
    shape: TableShape,
    rows: BTreeMap<Vec<Value>, Row>,
}

impl TableCopy {
    fn key(&self, row: &Row) -> Result<Vec<Value>, ProtocolError> {
        if row.len() != self.shape.columns.len() {
            return Err(ProtocolError::RowWidth {
                table: self.shape.name.clone(),
                expected: self.shape.columns.len(),
                got: row.len(),
            });
        }
        Ok(self
            .shape
            .primary_key
            .iter()
            .map(|&i| row[i as usize].clone())
            .collect())
    }
}

/// Table copies kept current by a subscription's row operations.
///
/// Operations are checked before any is applied: an add of a key already
/// held, a remove or edit of a row not held exactly as sent, a row of the
/// wrong width or an unknown table is a [`ProtocolError`] and changes nothing.
#[derive(Clone, Debug, Default)]
pub struct Replica {
    tables: BTreeMap<String, TableCopy>,
}

/// What a checked operation does to one key.
type Pending = BTreeMap<(String, Vec<Value>), Option<Row>>;

impl Replica {
    /// Empty copies of the given tables.
    pub fn new(tables: &[TableShape]) -> Result<Replica, ProtocolError> {
        let mut out = BTreeMap::new();
        for shape in tables {
            shape.validate()?;
            let copy = TableCopy {
                shape: shape.clone(),
                rows: BTreeMap::new(),
            };
            if out.insert(shape.name.clone(), copy).is_some() {
                return Err(ProtocolError::InvalidTable {
                    table: shape.name.clone(),
                    reason: "listed twice",
                });
            }
        }
        Ok(Replica { tables: out })
    }

    /// Takes the rows of every table `old` holds with the same shape.
    pub(super) fn adopt(&mut self, old: &mut Replica) {
        for (name, copy) in self.tables.iter_mut() {
            if let Some(prev) = old.tables.remove(name)
                && prev.shape == copy.shape
            {
                copy.rows = prev.rows;
            }
        }
    }

    /// The tables' shapes, sorted by name.
    pub fn tables(&self) -> impl Iterator<Item = &TableShape> {
        self.tables.values().map(|t| &t.shape)
    }

    /// The rows of `table` in primary-key order, if it is one of the copies.
    pub fn rows(&self, table: &str) -> Option<impl Iterator<Item = &Row>> {
        self.tables.get(table).map(|t| t.rows.values())
    }

    /// The row of `table` with primary key `key`.
    pub fn get(&self, table: &str, key: &[Value]) -> Option<&Row> {
        self.tables.get(table)?.rows.get(key)
    }

    /// Rows held, over every table.
    pub fn len(&self) -> usize {
        self.tables.values().map(|t| t.rows.len()).sum()
    }

    /// Whether no rows are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one batch's operations, all or nothing.
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), ProtocolError> {
        let pending = self.check(ops)?;
        self.commit(pending);
        Ok(())
    }

    /// Replaces every row with the snapshot's, all or nothing.
    pub(super) fn replace_with(&mut self, ops: &[Op]) -> Result<(), ProtocolError> {
        let mut fresh = self.clone();
        for copy in fresh.tables.values_mut() {
            copy.rows.clear();
        }
        fresh.apply(ops)?;
        *self = fresh;
        Ok(())
    }

    fn check(&self, ops: &[Op]) -> Result<Pending, ProtocolError> {
        let mut pending = Pending::new();
        for op in ops {
            let name = op.table();
            let copy = self
                .tables
                .get(name)
                .ok_or_else(|| ProtocolError::UnknownTable {
                    table: String::from(name),
                })?;
            let held = |pending: &Pending, key: &Vec<Value>| -> Option<Row> {
                match pending.get(&(String::from(name), key.clone())) {
                    Some(state) => state.clone(),
                    None => copy.rows.get(key).cloned(),
                }
            };
            let inconsistent = |reason| ProtocolError::Inconsistent {
                table: String::from(name),
                reason,
            };
            match op {
                Op::Add { row, .. } => {
                    let key = copy.key(row)?;
                    if held(&pending, &key).is_some() {
                        return Err(inconsistent("add of a key already held"));
                    }
                    pending.insert((String::from(name), key), Some(row.clone()));
                }
                Op::Remove { row, .. } => {
                    let key = copy.key(row)?;
                    match held(&pending, &key) {
                        Some(h) if identical(&h, row) => {}
                        _ => return Err(inconsistent("remove of a row not held")),
                    }
                    pending.insert((String::from(name), key), None);
                }
                Op::Edit { old, new, .. } => {
                    let old_key = copy.key(old)?;
                    let new_key = copy.key(new)?;
                    match held(&pending, &old_key) {
                        Some(h) if identical(&h, old) => {}
                        _ => return Err(inconsistent("edit of a row not held")),
                    }
                    if old_key != new_key {
                        if held(&pending, &new_key).is_some() {
                            return Err(inconsistent("edit onto a key already held"));
                        }
                        pending.insert((String::from(name), old_key), None);
                    }
                    pending.insert((String::from(name), new_key), Some(new.clone()));
                }
            }
        }
        Ok(pending)
    }

    fn commit(&mut self, pending: Pending) {
        for ((table, key), state) in pending {
            // `check` resolved every table.
            if let Some(copy) = self.tables.get_mut(&table) {
                match state {
                    Some(row) => {
                        copy.rows.insert(key, row);
                    }
                    None => {
                        copy.rows.remove(&key);
                    }
                }
            }
        }
    }

    /// An in-memory catalog of the copies, to run queries locally. `schemas`
    /// gives each table's column types; each must have the shape the
    /// subscription announced. Tables the subscription does not cover can be
    /// added to the catalog afterwards.
    pub fn to_catalog(&self, schemas: &[TableSchema]) -> Result<MemoryCatalog, ReplicaError> {
        let mut catalog = MemoryCatalog::new();
        for copy in self.tables.values() {
            let schema = schemas
                .iter()
                .find(|s| s.name() == copy.shape.name)
                .ok_or_else(|| ReplicaError::MissingSchema {
                    table: copy.shape.name.clone(),
                })?;
            if TableShape::of(schema) != copy.shape {
                return Err(ReplicaError::ShapeMismatch {
                    table: copy.shape.name.clone(),
                });
            }
            catalog
                .add_table(schema.clone())
                .map_err(ReplicaError::Schema)?;
            for row in copy.rows.values() {
                catalog.insert(&copy.shape.name, row.clone()).map_err(|_| {
                    ReplicaError::RowType {
                        table: copy.shape.name.clone(),
                    }
                })?;
            }
        }
        Ok(catalog)
    }
}

/// Cells equal in kind and bits (the comparator's equality calls 1 and 1.0
/// equal; a copy must hold exactly what was sent).
pub(super) fn identical(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(p), Value::Bool(q)) => p == q,
            (Value::Int(p), Value::Int(q)) => p == q,
            (Value::Float(p), Value::Float(q)) => p.to_bits() == q.to_bits(),
            (Value::Text(p), Value::Text(q)) => p == q,
            _ => false,
        })
}

/// Why table copies could not become a catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaError {
    /// No schema was given for a copied table.
    MissingSchema {
        /// The table.
        table: String,
    },
    /// The given schema's columns or key differ from the announced shape.
    ShapeMismatch {
        /// The table.
        table: String,
    },
    /// A copied row does not fit the given schema's column types.
    RowType {
        /// The table.
        table: String,
    },
    /// The catalog refused a schema.
    Schema(SchemaError),
}

impl core::fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReplicaError::MissingSchema { table } => write!(f, "no schema given for `{table}`"),
            ReplicaError::ShapeMismatch { table } => {
                write!(f, "the schema of `{table}` differs from the subscription's")
            }
            ReplicaError::RowType { table } => {
                write!(f, "a row of `{table}` does not fit its schema")
            }
            ReplicaError::Schema(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ReplicaError {}
