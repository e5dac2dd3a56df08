//! The engine: a catalog of sources, the live queries over it, and the push
//! loop that keeps them current.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::ast::Ast;
use crate::build::{Pipeline, ViewFormat, build_pipeline};
use crate::change::{Change, Node, SourceChange};
use crate::error::{ChangeError, EngineError, PushError, QueryError};
use crate::operator::{Ctx, Fetch, Push};
use crate::source::{Catalog, Source, TableId};
use crate::value::Row;

/// Identifies a live query, chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueryId(pub u64);

/// How [`Engine::push`] treats changes that contradict the stored table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeMode {
    /// Refuse them with a [`ChangeError`] (the default, and what servers use):
    /// an Add of a present key, a Remove or Edit of an absent row, or one whose
    /// old row differs from the stored row.
    #[default]
    Strict,
    /// Repair them as an upsert would: an Add of a present key edits it, a
    /// Remove of an absent key does nothing, an Edit of an absent key adds, and
    /// the stored row stands in for a mismatched old row. Shape errors (width,
    /// types, unknown table) are still refused.
    Lenient,
}

/// Runs one query's derivation (see [`Engine::push_isolated`]).
pub type Isolate<'a> =
    dyn FnMut(QueryId, &mut dyn FnMut() -> Result<(), EngineError>) -> Result<(), EngineError> + 'a;

/// What happened to a query since the last [`Engine::drain`].
#[derive(Debug)]
#[non_exhaustive]
pub enum QueryEvent {
    /// The query's result changed; apply `changes` in order.
    Changed {
        /// The query.
        query: QueryId,
        /// Its output changes, in order.
        changes: Vec<Change>,
    },
    /// Maintaining the query failed; it has been removed from the engine.
    Faulted {
        /// The query.
        query: QueryId,
        /// Why.
        error: EngineError,
    },
}

struct LiveQuery {
    pipeline: Pipeline,
    pending: Vec<Change>,
}

/// Live queries over a catalog of tables.
///
/// Writes enter with [`Engine::push`], one base-table change at a time; each is
/// validated, pushed through every query that reads its table, then applied to
/// the table's source. Output changes collect per query until
/// [`Engine::drain`]. No clock, no I/O, no threads: the host drives it.
pub struct Engine<C: Catalog> {
    catalog: C,
    /// Sorted by id (a sorted vector: pushes visit every query anyway, and
    /// one more ordered-map type would cost the browser build ~9 kB).
    queries: Vec<(QueryId, LiveQuery)>,
    seq: u64,
    mode: ChangeMode,
    faults: Vec<(QueryId, EngineError)>,
}

impl<C: Catalog> Engine<C> {
    /// An engine over `catalog` with no queries, in [`ChangeMode::Strict`].
    pub fn new(catalog: C) -> Engine<C> {
        Engine {
            catalog,
            queries: Vec::new(),
            seq: 0,
            mode: ChangeMode::Strict,
            faults: Vec::new(),
        }
    }

    /// Sets how contradicting changes are treated.
    pub fn set_mode(&mut self, mode: ChangeMode) {
        self.mode = mode;
    }

    /// The catalog.
    pub fn catalog(&self) -> &C {
        &self.catalog
    }

    /// The catalog, mutably: for maintenance that does not change any table's
    /// rows (adding tables, moving a backend's sources to a newly committed
    /// snapshot after its changes were pushed). Writing rows here bypasses the
    /// live queries and leaves them stale.
    pub fn catalog_mut(&mut self) -> &mut C {
        &mut self.catalog
    }

    /// The catalog, handing back ownership (the queries are dropped).
    pub fn into_catalog(self) -> C {
        self.catalog
    }

    /// Lowers, registers and hydrates a query; returns its current result.
    pub fn add_query(&mut self, id: QueryId, ast: &Ast) -> Result<Vec<Node>, QueryError> {
        let Err(at) = self.find(id) else {
            return Err(QueryError::DuplicateId(id));
        };
        let mut pipeline = build_pipeline(ast, &mut self.catalog)?;
        let nodes = read_all(&mut pipeline, &self.catalog)?;
        self.queries.insert(
            at,
            (
                id,
                LiveQuery {
                    pipeline,
                    pending: Vec::new(),
                },
            ),
        );
        Ok(nodes)
    }

    /// Unregisters a query; false if it was not registered. Its undrained
    /// changes are dropped.
    pub fn remove_query(&mut self, id: QueryId) -> bool {
        self.take(id).is_some()
    }

    fn find(&self, id: QueryId) -> Result<usize, usize> {
        self.queries.binary_search_by(|(q, _)| q.cmp(&id))
    }

    fn get(&self, id: QueryId) -> Option<&LiveQuery> {
        self.find(id).ok().map(|i| &self.queries[i].1)
    }

    fn get_mut(&mut self, id: QueryId) -> Option<&mut LiveQuery> {
        self.find(id).ok().map(|i| &mut self.queries[i].1)
    }

    fn take(&mut self, id: QueryId) -> Option<LiveQuery> {
        self.find(id).ok().map(|i| self.queries.remove(i).1)
    }

    /// The ids of the registered queries, ascending.
    pub fn query_ids(&self) -> impl Iterator<Item = QueryId> + '_ {
        self.queries.iter().map(|(id, _)| *id)
    }

    /// The registered queries that read `table`, ascending.
    pub fn queries_reading(&self, table: &str) -> Vec<QueryId> {
        let Some(t) = self.catalog.table_id(table) else {
            return Vec::new();
        };
        self.queries
            .iter()
            .filter(|(_, q)| q.pipeline.reads(t))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Removes a query as failed: it is reported by the next
    /// [`Engine::drain`] as [`QueryEvent::Faulted`] with `error`.
    pub fn fault_query(&mut self, id: QueryId, error: EngineError) -> bool {
        if self.take(id).is_some() {
            self.faults.push((id, error));
            true
        } else {
            false
        }
    }

    /// How many per-partition states (per-parent limit windows, relationship
    /// aggregate values) a query holds; it tracks the parents on show.
    pub fn partitions(&self, id: QueryId) -> Option<usize> {
        self.get(id).map(|q| q.pipeline.root.partitions())
    }

    /// The result format of a query.
    pub fn format(&self, id: QueryId) -> Option<&Arc<ViewFormat>> {
        self.get(id).map(|q| q.pipeline.format())
    }

    /// Reads a query's current result from its pipeline (as hydration does).
    pub fn read(&mut self, id: QueryId) -> Option<Result<Vec<Node>, EngineError>> {
        let i = self.find(id).ok()?;
        Some(read_all(&mut self.queries[i].1.pipeline, &self.catalog))
    }

    /// Validates one base-table change, pushes it through every query reading
    /// the table, and applies it to the table.
    ///
    /// A change refused by validation returns an error and changes nothing. An
    /// Edit that changes the primary key is pushed as Remove(old) then Add(new).
    /// A query whose maintenance fails is removed and reported by
    /// [`Engine::drain`]; the other queries carry on.
    pub fn push(&mut self, table: &str, change: SourceChange) -> Result<(), PushError> {
        self.push_isolated(table, change, &mut |_, derive| derive())
    }

    /// [`Engine::push`], with each query's derivation run through `isolate`:
    /// it is called with the query's id and a closure that derives the query's
    /// changes, and returns that closure's result — or an error of its own, for
    /// instance when a host catches a panic there. A query whose derivation
    /// errs is torn down and reported as faulted; the others are unaffected.
    pub fn push_isolated(
        &mut self,
        table: &str,
        change: SourceChange,
        isolate: &mut Isolate<'_>,
    ) -> Result<(), PushError> {
        let id = self
            .catalog
            .table_id(table)
            .ok_or_else(|| ChangeError::UnknownTable {
                table: table.into(),
            })?;
        let (first, second) = validate(self.catalog.source(id), change, self.mode)?;
        for step in first.into_iter().chain(second) {
            self.push_step(id, &step, isolate)?;
        }
        Ok(())
    }

    fn push_step(
        &mut self,
        table: TableId,
        change: &SourceChange,
        isolate: &mut Isolate<'_>,
    ) -> Result<(), PushError> {
        self.seq += 1;
        let cx = Ctx {
            catalog: &self.catalog,
            push: Some(Push {
                table,
                change,
                seq: self.seq,
            }),
        };
        let mut failed = Vec::new();
        for (id, q) in self.queries.iter_mut() {
            if !q.pipeline.reads(table) {
                continue;
            }
            // Straight into the query's pending changes; a failure takes
            // this step's back out (the query is torn down anyway).
            let before = q.pending.len();
            let (root, out) = (&mut q.pipeline.root, &mut q.pending);
            let drained = isolate(*id, &mut || loop {
                match root.pull(&cx) {
                    Ok(Some(c)) => out.push(c),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            });
            if let Err(e) = drained {
                q.pending.truncate(before);
                failed.push((*id, e));
            }
        }
        for (id, e) in failed {
            self.take(id);
            self.faults.push((id, e));
        }
        if let Err(e) = self.catalog.source_mut(table).apply(change) {
            // The queries reading the table have taken the change; the table has
            // not. They can no longer be trusted.
            let stale: Vec<QueryId> = self
                .queries
                .iter()
                .filter(|(_, q)| q.pipeline.reads(table))
                .map(|(id, _)| *id)
                .collect();
            for id in stale {
                self.take(id);
                self.faults.push((
                    id,
                    EngineError::Internal("the source refused a change the query had taken"),
                ));
            }
            return Err(PushError::Source(e));
        }
        Ok(())
    }

    /// Takes every query's accumulated changes (queries with none are left out)
    /// and every fault since the last call, in query-id order.
    pub fn drain(&mut self) -> Vec<QueryEvent> {
        let mut events: Vec<QueryEvent> = self
            .faults
            .drain(..)
            .map(|(query, error)| QueryEvent::Faulted { query, error })
            .collect();
        for (id, q) in self.queries.iter_mut() {
            if !q.pending.is_empty() {
                events.push(QueryEvent::Changed {
                    query: *id,
                    changes: core::mem::take(&mut q.pending),
                });
            }
        }
        events
    }

    /// Takes one query's accumulated changes.
    pub fn take_changes(&mut self, id: QueryId) -> Vec<Change> {
        self.get_mut(id)
            .map(|q| core::mem::take(&mut q.pending))
            .unwrap_or_default()
    }
}

fn read_all(pipeline: &mut Pipeline, catalog: &dyn Catalog) -> Result<Vec<Node>, EngineError> {
    let cx = Ctx {
        catalog,
        push: None,
    };
    let mut nodes = Vec::new();
    pipeline.root.fetch(&cx, &Fetch::default(), &mut |n| {
        nodes.push(n);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(nodes)
}

fn cells_equal(a: &Row, b: &Row) -> bool {
    a.iter()
        .zip(b.iter())
        .all(|(x, y)| x == y && x.kind() == y.kind())
}

/// Checks a change against the table and turns it into the steps to push.
fn validate(
    source: &dyn Source,
    change: SourceChange,
    mode: ChangeMode,
) -> Result<(Option<SourceChange>, Option<SourceChange>), PushError> {
    let schema = source.schema();
    let strict = mode == ChangeMode::Strict;
    let table = || schema.name_arc().clone();
    if let Some(r) = change.old_row() {
        schema.check_row(r)?;
    }
    if let Some(r) = change.new_row() {
        schema.check_row(r)?;
    }
    let change = match change {
        SourceChange::Add(r) => SourceChange::Add(schema.normalize(r)),
        SourceChange::Remove(r) => SourceChange::Remove(schema.normalize(r)),
        SourceChange::Edit { old, new } => SourceChange::Edit {
            old: schema.normalize(old),
            new: schema.normalize(new),
        },
    };
    // The stored row under the key of `row`, checked against `row` itself.
    // The stored row under `row`'s key (the key copied only for an error).
    let lookup = |row: &Row| match schema.key_slice(row) {
        Some(key) => source.get(key),
        None => source.get(&schema.key_of(row)),
    };
    let stored = |row: &Row| -> Result<Option<Row>, PushError> {
        match lookup(row)? {
            None if strict => Err(ChangeError::MissingRow {
                table: table(),
                key: schema.key_of(row),
            }
            .into()),
            Some(s) if strict && !cells_equal(&s, row) => Err(ChangeError::RowMismatch {
                table: table(),
                key: schema.key_of(row),
            }
            .into()),
            found => Ok(found),
        }
    };
    let absent = |row: &Row| -> Result<Option<Row>, PushError> {
        match lookup(row)? {
            Some(_) if strict => Err(ChangeError::DuplicateKey {
                table: table(),
                key: schema.key_of(row),
            }
            .into()),
            found => Ok(found),
        }
    };
    let edit =
        |old: Row, new: Row| (!cells_equal(&old, &new)).then_some(SourceChange::Edit { old, new });
    // At most two steps (a key-changing edit); no allocation for them.
    Ok(match change {
        SourceChange::Add(row) => match absent(&row)? {
            None => (Some(SourceChange::Add(row)), None),
            Some(existing) => (edit(existing, row), None),
        },
        SourceChange::Remove(row) => (stored(&row)?.map(SourceChange::Remove), None),
        SourceChange::Edit { old, new } if schema.same_key(&old, &new) => match stored(&old)? {
            None => (Some(SourceChange::Add(new)), None),
            Some(s) => (edit(s, new), None),
        },
        SourceChange::Edit { old, new } => {
            let old = stored(&old)?;
            let second = match absent(&new)? {
                None => Some(SourceChange::Add(new)),
                Some(o) => edit(o, new),
            };
            (old.map(SourceChange::Remove), second)
        }
    })
}
