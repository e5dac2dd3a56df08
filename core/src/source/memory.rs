//! The in-memory source: rows in a hash map by key, one ordered index per requested order.

use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::{Bound as RangeBound, ControlFlow};

use hashbrown::HashMap;

use super::{Catalog, FetchRequest, Source, StartBasis, TableId};
use crate::change::SourceChange;
use crate::error::{ChangeError, SchemaError, SourceError};
use crate::ordering::{SortOrder, SortedRow, sorted_columns};
use crate::schema::TableSchema;
use crate::value::{Row, Value};

/// An ordered index: for each value of the constraint columns, the rows with
/// those values in `order`.
#[derive(Debug)]
struct Index {
    order: Arc<SortOrder>,
    constraint: Vec<usize>,
    partitions: HashMap<Vec<Value>, BTreeSet<SortedRow>>,
}

/// Calls `f` with a row's partition key for `constraint` columns, borrowed
/// from the row when there is at most one column (no copy).
fn with_partition_key<R>(constraint: &[usize], row: &[Value], f: impl FnOnce(&[Value]) -> R) -> R {
    match constraint {
        [] => f(&[]),
        [c] => f(core::slice::from_ref(&row[*c])),
        _ => f(&partition_key(constraint, row)),
    }
}

/// A row's partition key for `constraint` columns, copied.
fn partition_key(constraint: &[usize], row: &[Value]) -> Vec<Value> {
    constraint.iter().map(|&c| row[c].clone()).collect()
}

impl Index {
    fn insert(&mut self, row: &Row) {
        let entry = SortedRow::new(row.clone(), &self.order);
        let partitions = &mut self.partitions;
        let inserted = with_partition_key(&self.constraint, row, |k| match partitions.get_mut(k) {
            Some(set) => {
                set.insert(entry);
                None
            }
            None => Some(entry),
        });
        if let Some(entry) = inserted {
            // A new partition: its key is copied once, here.
            self.partitions
                .entry(partition_key(&self.constraint, row))
                .or_default()
                .insert(entry);
        }
    }

    fn remove(&mut self, row: &Row) {
        let probe = SortedRow::new(row.clone(), &self.order);
        let partitions = &mut self.partitions;
        with_partition_key(&self.constraint, row, |k| {
            if let Some(set) = partitions.get_mut(k) {
                set.remove(&probe);
                if set.is_empty() {
                    partitions.remove(k);
                }
            }
        });
    }
}

/// One table held in memory.
///
/// Rows live in a hash map keyed by their primary-key cells (a lookup by key
/// is one hash probe and builds nothing); [`Source::prepare`] adds an index
/// per (order, constraint columns) pair so fetches are range scans. A fetch of a
/// shape never prepared is answered by sorting the matching rows, which is
/// correct but linear in the table.
#[derive(Debug)]
pub struct MemorySource {
    schema: TableSchema,
    primary: HashMap<Vec<Value>, Row>,
    indexes: Vec<Index>,
}

impl MemorySource {
    /// An empty table.
    pub fn new(schema: TableSchema) -> MemorySource {
        MemorySource {
            schema,
            primary: HashMap::new(),
            indexes: Vec::new(),
        }
    }

    /// Loads a row, checking its shape and that its key is new (integers in
    /// real columns are stored as floats, see [`TableSchema::normalize`]).
    ///
    /// For initial data: rows inserted here are not pushed through any live
    /// query (an [`crate::Engine`] owns its catalog, so it cannot happen behind
    /// its back).
    pub fn insert(&mut self, row: Row) -> Result<(), ChangeError> {
        self.schema.check_row(&row)?;
        let row = self.schema.normalize(row);
        if !self.add(&row) {
            return Err(ChangeError::DuplicateKey {
                table: self.schema.name_arc().clone(),
                key: self.schema.key_of(&row),
            });
        }
        Ok(())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.primary.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.primary.is_empty()
    }

    /// Every row in primary-key order.
    pub fn rows(&self) -> impl Iterator<Item = Row> + use<> {
        let mut rows: Vec<Row> = self.primary.values().cloned().collect();
        SortOrder::primary_key(&self.schema).sort_rows(&mut rows, false);
        rows.into_iter()
    }

    /// Number of secondary indexes built so far.
    pub fn index_count(&self) -> usize {
        self.indexes.len()
    }

    /// Adds a row whose key is absent; false (and nothing changed) when it
    /// is present.
    fn add(&mut self, row: &Row) -> bool {
        match self.primary.entry(self.schema.key_of(row)) {
            hashbrown::hash_map::Entry::Occupied(_) => return false,
            hashbrown::hash_map::Entry::Vacant(v) => {
                v.insert(row.clone());
            }
        }
        for ix in &mut self.indexes {
            ix.insert(row);
        }
        true
    }

    /// True when `columns` include every primary-key column.
    fn covers_key(&self, columns: impl Iterator<Item = usize> + Clone) -> bool {
        self.schema
            .primary_key()
            .iter()
            .all(|k| columns.clone().any(|c| c == *k))
    }

    /// Takes out the row stored under `row`'s key, from every index too.
    fn take(&mut self, row: &[Value]) -> Option<Row> {
        let stored = match self.schema.key_slice(row) {
            Some(key) => self.primary.remove(key),
            None => self.primary.remove(self.schema.key_of(row).as_slice()),
        }?;
        for ix in &mut self.indexes {
            ix.remove(&stored);
        }
        Some(stored)
    }

    fn inconsistent(&self, reason: &'static str) -> SourceError {
        SourceError::Inconsistent {
            table: self.schema.name_arc().clone(),
            reason,
        }
    }
}

/// Scans one ordered set from the request's start in its direction.
fn scan(
    set: &BTreeSet<SortedRow>,
    order: &Arc<SortOrder>,
    req: &FetchRequest<'_>,
    check_constraint: bool,
    sink: &mut dyn FnMut(&Row) -> ControlFlow<()>,
) {
    // The start as a range bound, built once (each probe clones two Arcs).
    let start = req.start.map(|s| {
        let probe = SortedRow::new(s.row.clone(), order);
        match s.basis {
            StartBasis::At => RangeBound::Included(probe),
            StartBasis::After => RangeBound::Excluded(probe),
        }
    });
    let range = match (start, req.reverse) {
        (Some(b), false) => (b, RangeBound::Unbounded),
        (Some(b), true) => (RangeBound::Unbounded, b),
        (None, _) => (RangeBound::Unbounded, RangeBound::Unbounded),
    };
    let mut visit = |s: &SortedRow| {
        if check_constraint && !req.constraint.iter().all(|(c, v)| s.row[*c] == *v) {
            return ControlFlow::Continue(());
        }
        sink(&s.row)
    };
    if req.reverse {
        for s in set.range(range).rev() {
            if visit(s).is_break() {
                return;
            }
        }
    } else {
        for s in set.range(range) {
            if visit(s).is_break() {
                return;
            }
        }
    }
}

impl Source for MemorySource {
    fn schema(&self) -> &TableSchema {
        &self.schema
    }

    fn prepare(&mut self, order: &SortOrder, constraint_columns: &[usize]) {
        let order = order.clone().completed(&self.schema);
        if self.covers_key(constraint_columns.iter().copied()) {
            // At most one row matches: fetches look it up by key.
            return;
        }
        if self
            .indexes
            .iter()
            .any(|ix| *ix.order == order && ix.constraint == constraint_columns)
        {
            return;
        }
        let mut ix = Index {
            order: Arc::new(order),
            constraint: constraint_columns.to_vec(),
            partitions: HashMap::new(),
        };
        for row in self.primary.values() {
            ix.insert(row);
        }
        self.indexes.push(ix);
    }

    fn fetch(
        &self,
        req: &FetchRequest<'_>,
        sink: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        if self.covers_key(req.constraint.iter().map(|(c, _)| *c)) {
            // The constraint fixes the whole key: one lookup, no index.
            let found = match (self.schema.primary_key(), req.constraint) {
                // The usual case, a one-column key constrained once: no copy.
                ([k], [(c, v)]) if k == c => self.primary.get(core::slice::from_ref(v)),
                (pk, _) => {
                    let mut key = Vec::with_capacity(pk.len());
                    for &k in pk {
                        match req.constraint.iter().find(|(c, _)| *c == k) {
                            Some((_, v)) => key.push(v.clone()),
                            None => return Ok(()),
                        }
                    }
                    self.primary.get(&key)
                }
            };
            if let Some(row) = found
                && req.admits(row)
            {
                let _ = sink(row);
            }
            return Ok(());
        }
        let cols = sorted_columns(req.constraint.iter().map(|(c, _)| *c).collect());
        if let Some(ix) = self
            .indexes
            .iter()
            .find(|ix| *ix.order == *req.order && ix.constraint == cols)
        {
            // Partition key in the index's column order; a constraint naming a
            // column twice with different values matches nothing.
            let mut key = Vec::with_capacity(cols.len());
            for c in &cols {
                let mut vals = req
                    .constraint
                    .iter()
                    .filter(|(k, _)| k == c)
                    .map(|(_, v)| v);
                let v = vals.next().cloned().unwrap_or(Value::Null);
                if vals.any(|w| *w != v) {
                    return Ok(());
                }
                key.push(v);
            }
            if let Some(set) = ix.partitions.get(&key) {
                scan(set, &ix.order, req, false, sink);
            }
            return Ok(());
        }
        if let Some(ix) = self
            .indexes
            .iter()
            .find(|ix| *ix.order == *req.order && ix.constraint.is_empty())
        {
            if let Some(set) = ix.partitions.get(&Vec::new()) {
                scan(set, &ix.order, req, true, sink);
            }
            return Ok(());
        }
        // Not prepared: sort the matching rows.
        let mut rows: Vec<Row> = self
            .primary
            .values()
            .filter(|r| req.admits(r))
            .cloned()
            .collect();
        req.order.sort_rows(&mut rows, req.reverse);
        for r in &rows {
            if sink(r).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn get(&self, key: &[Value]) -> Result<Option<Row>, SourceError> {
        if key.len() != self.schema.primary_key().len() {
            return Ok(None);
        }
        Ok(self.primary.get(key).cloned())
    }

    fn apply(&mut self, change: &SourceChange) -> Result<(), SourceError> {
        match change {
            SourceChange::Add(row) => {
                if !self.add(row) {
                    return Err(self.inconsistent("add of a key that is present"));
                }
            }
            SourceChange::Remove(row) => {
                if self.take(row).is_none() {
                    return Err(self.inconsistent("remove of a key that is absent"));
                }
            }
            SourceChange::Edit { old, new } => {
                if !self.schema.same_key(old, new) {
                    return Err(self.inconsistent("edit that changes the primary key"));
                }
                if self.take(old).is_none() {
                    return Err(self.inconsistent("edit of a key that is absent"));
                }
                self.add(new);
            }
        }
        Ok(())
    }
}

/// A catalog of in-memory tables.
#[derive(Debug, Default)]
pub struct MemoryCatalog {
    /// Tables in the order they were added; a table's id is its index. Names
    /// are found by a scan: a catalog holds a handful of tables, and a map
    /// would cost the browser build more than it saves.
    sources: Vec<MemorySource>,
}

impl MemoryCatalog {
    /// An empty catalog.
    pub fn new() -> MemoryCatalog {
        MemoryCatalog::default()
    }

    /// Adds an empty table.
    pub fn add_table(&mut self, schema: TableSchema) -> Result<TableId, SchemaError> {
        if self.table_id(schema.name()).is_some() {
            return Err(SchemaError::DuplicateTable {
                table: schema.name().into(),
            });
        }
        let id = TableId(self.sources.len());
        self.sources.push(MemorySource::new(schema));
        Ok(id)
    }

    /// Loads a row into a table (see [`MemorySource::insert`]).
    pub fn insert(&mut self, table: &str, row: Row) -> Result<(), ChangeError> {
        let Some(id) = self.table_id(table) else {
            return Err(ChangeError::UnknownTable {
                table: table.into(),
            });
        };
        self.sources[id.0].insert(row)
    }

    /// A table by name.
    pub fn table(&self, name: &str) -> Option<&MemorySource> {
        self.sources.iter().find(|s| s.schema().name() == name)
    }

    /// Every table, in the order they were added.
    pub fn tables(&self) -> impl Iterator<Item = &MemorySource> {
        self.sources.iter()
    }
}

impl Catalog for MemoryCatalog {
    fn table_id(&self, name: &str) -> Option<TableId> {
        self.sources
            .iter()
            .position(|s| s.schema().name() == name)
            .map(TableId)
    }

    fn source(&self, id: TableId) -> &dyn Source {
        &self.sources[id.0]
    }

    fn source_mut(&mut self, id: TableId) -> &mut dyn Source {
        &mut self.sources[id.0]
    }
}
