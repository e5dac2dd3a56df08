//! The Cluster as a harness subject: a backend's cluster with `n` workers, the
//! query's events applied to a view after every transaction's progress
//! markers have all arrived.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use rindle_core::{Ast, QueryId, View};
use rindle_replica::cluster::{Cluster, ClusterBackend, ClusterEvent, ClusterOptions};
use serde_json::Value as Json;
use tempfile::TempDir;

use crate::backends::create_table_sql;
use crate::data::{Model, TableData, Write, WriteOp};
use crate::harness::{Subject, SubjectError};
use crate::render::view_json;

fn err(e: impl std::fmt::Display) -> SubjectError {
    SubjectError::from_display(e)
}

/// How long a test waits for an event before calling the cluster stuck.
const PATIENCE: Duration = Duration::from_secs(30);

/// Creates a backend's tables (with rows) in a cluster.
pub type Setup<B> = fn(&Cluster<B>, &[TableData]) -> Result<(), SubjectError>;

fn insert_rows<B: ClusterBackend>(
    c: &Cluster<B>,
    tables: &[TableData],
) -> Result<(), SubjectError> {
    c.transaction(|tx| {
        for t in tables {
            for cells in &t.rows {
                tx.insert(&t.name, t.row(cells).map_err(err)?)
                    .map_err(err)?;
            }
        }
        Ok::<_, SubjectError>(())
    })
    .map_err(err)?;
    Ok(())
}

/// SQLite: tables created with SQL, then registered.
pub fn sqlite_setup(
    c: &Cluster<rindle_sqlite::SqliteBackend>,
    tables: &[TableData],
) -> Result<(), SubjectError> {
    c.transaction(|tx| {
        for t in tables {
            tx.backend()
                .execute_batch(&create_table_sql(t))
                .map_err(err)?;
        }
        Ok::<_, SubjectError>(())
    })
    .map_err(err)?;
    for t in tables {
        c.register_table(t.name.as_str()).map_err(err)?;
    }
    insert_rows(c, tables)
}

/// redb: tables declared from their schemas.
pub fn redb_setup(
    c: &Cluster<rindle_redb::RedbBackend>,
    tables: &[TableData],
) -> Result<(), SubjectError> {
    for t in tables {
        c.register_table(t.schema().map_err(err)?).map_err(err)?;
    }
    insert_rows(c, tables)
}

struct Live<B: ClusterBackend> {
    cluster: Cluster<B>,
    events: Receiver<ClusterEvent>,
    _dir: TempDir,
    view: Option<View>,
    tables: Vec<TableData>,
    model: Model,
}

/// A backend's [`Cluster`] with a number of workers.
pub struct ClusterSubject<B: ClusterBackend> {
    name: String,
    workers: usize,
    file: &'static str,
    setup: Setup<B>,
    live: Option<Live<B>>,
}

impl<B: ClusterBackend> ClusterSubject<B>
where
    B::Config: From<std::path::PathBuf>,
{
    /// A cluster of `workers` over a fresh `file` in a temporary directory.
    pub fn new(workers: usize, file: &'static str, setup: Setup<B>) -> ClusterSubject<B> {
        ClusterSubject {
            name: format!("cluster({workers})"),
            workers,
            file,
            setup,
            live: None,
        }
    }
}

/// Applies events until every worker's progress marker for `cv` arrived.
fn settle<B: ClusterBackend>(live: &mut Live<B>, cv: u64) -> Result<(), SubjectError> {
    let mut pending = live.cluster.worker_count();
    while pending > 0 {
        match live.events.recv_timeout(PATIENCE).map_err(err)? {
            ClusterEvent::Progress { cv: c, .. } if c == cv => pending -= 1,
            ClusterEvent::Progress { .. } => {}
            ClusterEvent::Changed { changes, .. } => live
                .view
                .as_mut()
                .ok_or_else(|| err("no view"))?
                .apply_all(&changes)
                .map_err(err)?,
            ClusterEvent::Faulted { message, .. } => {
                return Err(SubjectError(format!("faulted: {message}")));
            }
            other => return Err(SubjectError(format!("unexpected {other:?}"))),
        }
    }
    Ok(())
}

impl<B: ClusterBackend> Subject for ClusterSubject<B>
where
    B::Config: From<std::path::PathBuf>,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self, tables: &[TableData], query: &Ast) -> Result<Json, SubjectError> {
        let model = Model::new(tables).map_err(err)?;
        let dir = tempfile::tempdir().map_err(err)?;
        let (cluster, events) = Cluster::<B>::open(
            dir.path().join(self.file),
            ClusterOptions::new(self.workers),
        )
        .map_err(err)?;
        (self.setup)(&cluster, tables)?;
        // Let the setup transactions' markers pass.
        let mut live = Live {
            cluster,
            events,
            _dir: dir,
            view: None,
            tables: tables.to_vec(),
            model,
        };
        let cv = live.cluster.cv();
        settle_quiet(&mut live, cv)?;
        let (_, format) = live.cluster.add_query(QueryId(1), query).map_err(err)?;
        loop {
            match live.events.recv_timeout(PATIENCE).map_err(err)? {
                ClusterEvent::Hydrated { changes, .. } => {
                    let nodes: Vec<_> = changes
                        .into_iter()
                        .filter_map(|c| match c {
                            rindle_core::Change::Add(n) => Some(n),
                            _ => None,
                        })
                        .collect();
                    live.view = Some(View::hydrated(format, &nodes).map_err(err)?);
                    break;
                }
                ClusterEvent::Progress { .. } => {}
                other => return Err(SubjectError(format!("unexpected {other:?}"))),
            }
        }
        let out = view_json(live.view.as_ref().ok_or_else(|| err("no view"))?);
        self.live = Some(live);
        Ok(out)
    }

    fn step(&mut self, tx: &[Write]) -> Result<Json, SubjectError> {
        let live = self.live.as_mut().ok_or_else(|| err("step before start"))?;
        for w in tx {
            live.model.apply(w).map_err(err)?;
        }
        let tables = live.tables.clone();
        let (cv, ()) = live
            .cluster
            .transaction(|ctx| {
                for w in tx {
                    let t = tables
                        .iter()
                        .find(|t| t.name == w.table)
                        .ok_or_else(|| err(format!("unknown table {}", w.table)))?;
                    let row = t.row(&w.row).map_err(err)?;
                    let old = w.old.as_ref().map(|o| t.row(o)).transpose().map_err(err)?;
                    let schema = t.schema().map_err(err)?;
                    match (w.op, old) {
                        (WriteOp::Add, _) => ctx.insert(&t.name, row),
                        (WriteOp::Remove, _) => ctx.delete(&t.name, row),
                        (WriteOp::Edit, Some(o)) if !schema.same_key(&o, &row) => ctx
                            .delete(&t.name, o)
                            .and_then(|()| ctx.insert(&t.name, row)),
                        (WriteOp::Edit, _) => ctx.update(&t.name, row),
                    }
                    .map_err(err)?;
                }
                Ok::<_, SubjectError>(())
            })
            .map_err(err)?;
        settle(live, cv)?;
        Ok(view_json(live.view.as_ref().ok_or_else(|| err("no view"))?))
    }
}

/// Drains the markers of setup transactions (no query is placed yet).
fn settle_quiet<B: ClusterBackend>(live: &mut Live<B>, cv: u64) -> Result<(), SubjectError> {
    if cv == 0 {
        return Ok(());
    }
    let mut pending = live.cluster.worker_count();
    while pending > 0 {
        if let ClusterEvent::Progress { cv: c, .. } =
            live.events.recv_timeout(PATIENCE).map_err(err)?
            && c == cv
        {
            pending -= 1;
        }
    }
    Ok(())
}
