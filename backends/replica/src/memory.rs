//! The in-memory backend: the live layer over [`MemoryCatalog`], with
//! transactions and the same row API as the durable backends.
//!
//! Nothing persists: a [`MemoryDb`] is a cache or a test double that behaves
//! like the SQLite and redb databases, so swapping one for another changes one
//! line and no result. The backend keeps the committed rows by primary key
//! (sharing each row's cells with the catalog's indexes) to check keys and to
//! report the old row of an update or delete; a transaction's writes wait in
//! an overlay until commit.

use std::collections::BTreeMap;
use std::fmt;

use rindle_core::{Catalog, MemoryCatalog, Row, SchemaError, SourceChange, TableSchema, Value};

use crate::{Backend, Db};

/// A live database held in memory.
pub type MemoryDb = Db<MemoryBackend>;

/// Why an in-memory write failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MemoryError {
    /// An insert's primary key is already present.
    DuplicateKey {
        /// The table.
        table: String,
    },
    /// An update or delete names a key that is not present.
    NoSuchRow {
        /// The table.
        table: String,
    },
    /// A write outside a transaction, or a second `begin`.
    NoTransaction,
    /// A transaction is already open.
    Busy,
    /// The table was registered before with another schema.
    SchemaMismatch {
        /// The table.
        table: String,
    },
    /// The catalog refused the table.
    Schema(SchemaError),
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryError::DuplicateKey { table } => {
                write!(f, "a row with this primary key is already in `{table}`")
            }
            MemoryError::NoSuchRow { table } => {
                write!(f, "no row with this primary key in `{table}`")
            }
            MemoryError::NoTransaction => f.write_str("no write transaction is open"),
            MemoryError::Busy => f.write_str("a write transaction is already open"),
            MemoryError::SchemaMismatch { table } => {
                write!(
                    f,
                    "table `{table}` is already registered with another schema"
                )
            }
            MemoryError::Schema(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for MemoryError {}

type Key = Vec<Value>;

/// A table's committed rows by primary key.
struct Table {
    schema: TableSchema,
    rows: BTreeMap<Key, Row>,
}

/// The in-memory backend (see the module docs).
#[derive(Default)]
pub struct MemoryBackend {
    tables: BTreeMap<String, Table>,
    /// The open transaction: each touched key's row as the transaction leaves
    /// it (`None`: deleted), and its changes in order.
    overlay: Option<BTreeMap<(String, Key), Option<Row>>>,
    changes: Vec<(String, SourceChange)>,
}

fn key(schema: &TableSchema, row: &Row) -> Key {
    schema
        .primary_key()
        .iter()
        .map(|&i| row.get(i).cloned().unwrap_or(Value::Null))
        .collect()
}

impl MemoryBackend {
    /// The row stored under `key` as the open transaction sees it.
    fn current(&self, table: &str, key: &Key) -> Result<Option<Row>, MemoryError> {
        let overlay = self.overlay.as_ref().ok_or(MemoryError::NoTransaction)?;
        if let Some(row) = overlay.get(&(table.to_string(), key.clone())) {
            return Ok(row.clone());
        }
        Ok(self
            .tables
            .get(table)
            .and_then(|t| t.rows.get(key))
            .cloned())
    }

    fn stage(&mut self, table: &str, key: Key, row: Option<Row>, change: SourceChange) {
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.insert((table.to_string(), key), row);
        }
        self.changes.push((table.to_string(), change));
    }
}

impl Backend for MemoryBackend {
    type Catalog = MemoryCatalog;
    type Config = ();
    type TableSpec = TableSchema;
    type Error = MemoryError;

    fn open(_: ()) -> Result<(MemoryBackend, MemoryCatalog), MemoryError> {
        Ok((MemoryBackend::default(), MemoryCatalog::new()))
    }

    fn register_table(
        &mut self,
        catalog: &mut MemoryCatalog,
        schema: TableSchema,
    ) -> Result<TableSchema, MemoryError> {
        if let Some(t) = self.tables.get(schema.name()) {
            return if t.schema == schema {
                Ok(schema)
            } else {
                Err(MemoryError::SchemaMismatch {
                    table: schema.name().into(),
                })
            };
        }
        if self.overlay.is_some() {
            return Err(MemoryError::Busy);
        }
        catalog
            .add_table(schema.clone())
            .map_err(MemoryError::Schema)?;
        debug_assert!(catalog.table_id(schema.name()).is_some());
        self.tables.insert(
            schema.name().to_string(),
            Table {
                schema: schema.clone(),
                rows: BTreeMap::new(),
            },
        );
        Ok(schema)
    }

    fn begin(&mut self) -> Result<(), MemoryError> {
        if self.overlay.is_some() {
            return Err(MemoryError::Busy);
        }
        self.overlay = Some(BTreeMap::new());
        self.changes.clear();
        Ok(())
    }

    fn insert(&mut self, schema: &TableSchema, row: &Row) -> Result<(), MemoryError> {
        let k = key(schema, row);
        if self.current(schema.name(), &k)?.is_some() {
            return Err(MemoryError::DuplicateKey {
                table: schema.name().into(),
            });
        }
        self.stage(
            schema.name(),
            k,
            Some(row.clone()),
            SourceChange::Add(row.clone()),
        );
        Ok(())
    }

    fn update(&mut self, schema: &TableSchema, row: &Row) -> Result<(), MemoryError> {
        let k = key(schema, row);
        let Some(old) = self.current(schema.name(), &k)? else {
            return Err(MemoryError::NoSuchRow {
                table: schema.name().into(),
            });
        };
        let change = SourceChange::Edit {
            old,
            new: row.clone(),
        };
        self.stage(schema.name(), k, Some(row.clone()), change);
        Ok(())
    }

    fn delete(&mut self, schema: &TableSchema, row: &Row) -> Result<(), MemoryError> {
        let k = key(schema, row);
        let Some(old) = self.current(schema.name(), &k)? else {
            return Err(MemoryError::NoSuchRow {
                table: schema.name().into(),
            });
        };
        self.stage(schema.name(), k, None, SourceChange::Remove(old));
        Ok(())
    }

    fn commit(&mut self) -> Result<Vec<(String, SourceChange)>, MemoryError> {
        let overlay = self.overlay.take().ok_or(MemoryError::NoTransaction)?;
        for ((table, k), row) in overlay {
            if let Some(t) = self.tables.get_mut(&table) {
                match row {
                    Some(row) => t.rows.insert(k, row),
                    None => t.rows.remove(&k),
                };
            }
        }
        Ok(std::mem::take(&mut self.changes))
    }

    fn rollback(&mut self) -> Result<(), MemoryError> {
        self.overlay = None;
        self.changes.clear();
        Ok(())
    }

    fn advance(&mut self, _catalog: &mut MemoryCatalog) -> Result<(), MemoryError> {
        // The engine applied every committed change to the catalog's sources.
        Ok(())
    }
}
