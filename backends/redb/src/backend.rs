//! The redb backend: write path, schema persistence, sources.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use redb::{
    Database, ReadableDatabase, ReadableTable, TableDefinition, TableError, WriteTransaction,
};
use rindle_core::{Catalog, MemorySource, Row, Source, SourceChange, TableId, TableSchema};
use rindle_replica::Backend;
use rindle_replica::cluster::ClusterBackend;

use crate::RedbError;
use crate::format::{decode_row, decode_schema, encode_key, encode_row, encode_schema};

const SCHEMAS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("_rindle_schema");

fn rows_table(name: &str) -> String {
    format!("rows:{name}")
}

/// The redb backend.
pub struct RedbBackend {
    db: Arc<Database>,
    tx: Option<WriteTransaction>,
    changes: Vec<(String, SourceChange)>,
}

/// The registered tables, each held in ordered in-memory indexes loaded from a
/// pinned redb snapshot and kept current by the engine's applied changes.
pub struct RedbCatalog {
    sources: Vec<MemorySource>,
    names: BTreeMap<String, TableId>,
}

impl RedbCatalog {
    fn add(&mut self, source: MemorySource) -> TableId {
        let name = source.schema().name().to_string();
        if let Some(&id) = self.names.get(&name) {
            self.sources[id.0] = source;
            return id;
        }
        let id = TableId(self.sources.len());
        self.names.insert(name, id);
        self.sources.push(source);
        id
    }
}

impl Catalog for RedbCatalog {
    fn table_id(&self, name: &str) -> Option<TableId> {
        self.names.get(name).copied()
    }

    fn source(&self, id: TableId) -> &dyn Source {
        &self.sources[id.0]
    }

    fn source_mut(&mut self, id: TableId) -> &mut dyn Source {
        &mut self.sources[id.0]
    }
}

/// Loads a table from a read snapshot.
fn load(db: &Database, schema: &TableSchema) -> Result<MemorySource, RedbError> {
    let read = db.begin_read()?;
    let mut source = MemorySource::new(schema.clone());
    let name = rows_table(schema.name());
    let def: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new(&name);
    match read.open_table(def) {
        Ok(t) => {
            for item in t.iter()? {
                let (_, v) = item?;
                let row = decode_row(v.value(), schema.columns().len())?;
                source
                    .insert(row)
                    .map_err(|_| RedbError::Corrupt { what: "row" })?;
            }
        }
        Err(TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(source)
}

impl RedbBackend {
    fn tx(&mut self) -> Result<&mut WriteTransaction, RedbError> {
        self.tx.as_mut().ok_or(RedbError::NoTransaction)
    }

    /// The stored row of `row`'s key, inside the write transaction.
    fn stored(&mut self, schema: &TableSchema, key: &[u8]) -> Result<Option<Row>, RedbError> {
        let name = rows_table(schema.name());
        let tx = self.tx()?;
        let t = tx.open_table(TableDefinition::<&[u8], &[u8]>::new(&name))?;
        let found = t.get(key)?;
        found
            .map(|v| decode_row(v.value(), schema.columns().len()))
            .transpose()
    }

    fn put(&mut self, schema: &TableSchema, key: &[u8], row: &Row) -> Result<(), RedbError> {
        let name = rows_table(schema.name());
        let tx = self.tx()?;
        let mut t = tx.open_table(TableDefinition::<&[u8], &[u8]>::new(&name))?;
        t.insert(key, encode_row(row).as_slice())?;
        Ok(())
    }
}

impl Backend for RedbBackend {
    type Catalog = RedbCatalog;
    type Config = PathBuf;
    type TableSpec = TableSchema;
    type Error = RedbError;

    fn open(path: PathBuf) -> Result<(RedbBackend, RedbCatalog), RedbError> {
        let db = Arc::new(Database::create(path)?);
        let backend = RedbBackend {
            db,
            tx: None,
            changes: Vec::new(),
        };
        let mut catalog = RedbCatalog {
            sources: Vec::new(),
            names: BTreeMap::new(),
        };
        // A reopened database knows its tables.
        let read = backend.db.begin_read()?;
        let schemas: Vec<TableSchema> = match read.open_table(SCHEMAS) {
            Ok(t) => t
                .iter()?
                .map(|item| {
                    let (k, v) = item?;
                    decode_schema(k.value(), v.value())
                })
                .collect::<Result<_, RedbError>>()?,
            Err(TableError::TableDoesNotExist(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        drop(read);
        for s in schemas {
            catalog.add(load(&backend.db, &s)?);
        }
        Ok((backend, catalog))
    }

    fn registered(catalog: &RedbCatalog) -> Vec<TableSchema> {
        catalog.sources.iter().map(|s| s.schema().clone()).collect()
    }

    fn register_table(
        &mut self,
        catalog: &mut RedbCatalog,
        schema: TableSchema,
    ) -> Result<TableSchema, RedbError> {
        if catalog.table_id(schema.name()).is_some() {
            return ClusterBackend::register(self, schema);
        }
        let schema = ClusterBackend::register(self, schema)?;
        catalog.add(load(&self.db, &schema)?);
        Ok(schema)
    }

    fn begin(&mut self) -> Result<(), RedbError> {
        if self.tx.is_some() {
            return Err(RedbError::Busy);
        }
        self.tx = Some(self.db.begin_write()?);
        self.changes.clear();
        Ok(())
    }

    fn insert(&mut self, schema: &TableSchema, row: &Row) -> Result<(), RedbError> {
        let key = encode_key(schema, row);
        if self.stored(schema, &key)?.is_some() {
            return Err(RedbError::DuplicateKey {
                table: schema.name().into(),
            });
        }
        self.put(schema, &key, row)?;
        self.changes
            .push((schema.name().into(), SourceChange::Add(row.clone())));
        Ok(())
    }

    fn update(&mut self, schema: &TableSchema, row: &Row) -> Result<(), RedbError> {
        let key = encode_key(schema, row);
        let Some(old) = self.stored(schema, &key)? else {
            return Err(RedbError::NoSuchRow {
                table: schema.name().into(),
            });
        };
        self.put(schema, &key, row)?;
        self.changes.push((
            schema.name().into(),
            SourceChange::Edit {
                old,
                new: row.clone(),
            },
        ));
        Ok(())
    }

    fn delete(&mut self, schema: &TableSchema, row: &Row) -> Result<(), RedbError> {
        let key = encode_key(schema, row);
        let name = rows_table(schema.name());
        let width = schema.columns().len();
        let tx = self.tx()?;
        let removed = {
            let mut t = tx.open_table(TableDefinition::<&[u8], &[u8]>::new(&name))?;
            let removed = t.remove(key.as_slice())?;
            removed.map(|v| decode_row(v.value(), width)).transpose()?
        };
        let Some(old) = removed else {
            return Err(RedbError::NoSuchRow {
                table: schema.name().into(),
            });
        };
        self.changes
            .push((schema.name().into(), SourceChange::Remove(old)));
        Ok(())
    }

    fn commit(&mut self) -> Result<Vec<(String, SourceChange)>, RedbError> {
        let tx = self.tx.take().ok_or(RedbError::NoTransaction)?;
        let changes = std::mem::take(&mut self.changes);
        tx.commit()?;
        Ok(changes)
    }

    fn rollback(&mut self) -> Result<(), RedbError> {
        self.changes.clear();
        if let Some(tx) = self.tx.take() {
            tx.abort()?;
        }
        Ok(())
    }

    fn advance(&mut self, _catalog: &mut RedbCatalog) -> Result<(), RedbError> {
        // The sources took every committed change as the engine applied it,
        // so they already hold the committed state.
        Ok(())
    }
}

impl ClusterBackend for RedbBackend {
    type Reader = Arc<Database>;

    fn reader(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// Persists the schema; the same schema again is fine, another is refused.
    fn register(&mut self, schema: TableSchema) -> Result<TableSchema, RedbError> {
        if self.tx.is_some() {
            return Err(RedbError::Busy);
        }
        {
            let read = self.db.begin_read()?;
            match read.open_table(SCHEMAS) {
                Ok(t) => {
                    if let Some(stored) = t.get(schema.name())? {
                        if decode_schema(schema.name(), stored.value())? != schema {
                            return Err(RedbError::SchemaMismatch {
                                table: schema.name().into(),
                            });
                        }
                        return Ok(schema);
                    }
                }
                Err(TableError::TableDoesNotExist(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(SCHEMAS)?;
            t.insert(schema.name(), encode_schema(&schema).as_slice())?;
            let name = rows_table(schema.name());
            w.open_table(TableDefinition::<&[u8], &[u8]>::new(&name))?;
        }
        w.commit()?;
        Ok(schema)
    }

    fn open_catalog(db: &Arc<Database>, tables: &[TableSchema]) -> Result<RedbCatalog, RedbError> {
        let mut catalog = RedbCatalog {
            sources: Vec::new(),
            names: BTreeMap::new(),
        };
        for t in tables {
            catalog.add(load(db, t)?);
        }
        Ok(catalog)
    }

    fn add_table(
        db: &Arc<Database>,
        catalog: &mut RedbCatalog,
        schema: &TableSchema,
    ) -> Result<(), RedbError> {
        catalog.add(load(db, schema)?);
        Ok(())
    }

    /// A worker's tables already hold the last commit: they took every
    /// committed change as its engine applied it.
    fn pin(_catalog: &mut RedbCatalog) -> Result<(), RedbError> {
        Ok(())
    }
}
