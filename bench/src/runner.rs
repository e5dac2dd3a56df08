//! One runner per way of keeping a view current: the engine over memory
//! (changes pushed straight into the graph), `Db` over SQLite and redb
//! (write transaction, commit, delivered update), and the baseline: the
//! same rows in an in-memory SQLite database, re-queried after every write.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rindle_core::{Engine, MemoryCatalog, Node, QueryEvent, QueryId, SourceChange, View};
use rindle_replica::{Backend, Db};
use rindle_testkit::IssueTracker;
use rindle_testkit::backends::{ViewFeed, sql_value};
use rusqlite::{Connection, params_from_iter};

use crate::workload::{BASELINE_INDEXES, Workload};

/// Why a run could not go on.
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// A backend refused something.
    Backend(String),
    /// The write of a pair did not change the view: the workload is wrong.
    Unchanged {
        /// The view.
        view: u8,
        /// The runner.
        runner: &'static str,
    },
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Backend(m) => f.write_str(m),
            BenchError::Unchanged { view, runner } => {
                write!(
                    f,
                    "view {view} on {runner}: the pair's write changed nothing"
                )
            }
        }
    }
}

impl std::error::Error for BenchError {}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Backend(e.to_string())
}

/// A way of keeping one view current.
pub trait Runner {
    /// Its name in the tables.
    fn name(&self) -> &'static str;
    /// Builds the query, hydrates a fresh view, reads all of it, and drops it
    /// again; returns the time taken and the number of top-level rows.
    fn hydrate(&mut self) -> Result<(Duration, usize), BenchError>;
    /// Makes the live view the pairs run against.
    fn start(&mut self) -> Result<(), BenchError>;
    /// One pair: the workload's row added then removed, each write carried
    /// all the way to the view; returns its time.
    fn pair(&mut self) -> Result<Duration, BenchError>;
}

/// Touches every cell of every node, so a read cannot be skipped.
fn read_nodes(nodes: &[Node]) -> usize {
    let mut cells = 0;
    for n in nodes {
        for v in n.row.iter() {
            black_box(v);
            cells += 1;
        }
        for (_, children) in &n.relationships {
            cells += read_nodes(children);
        }
    }
    cells
}

fn read_view(view: &View) -> usize {
    let nodes = view.to_nodes();
    black_box(read_nodes(&nodes));
    nodes.len()
}

fn key_of(w: &Workload) -> Vec<rindle_core::Value> {
    vec![w.change.row[0].clone()]
}

/// The engine over in-memory tables: changes pushed into the graph, drained
/// and applied to a view.
pub struct MemoryRunner {
    engine: Engine<MemoryCatalog>,
    workload: Workload,
    view: Option<View>,
    next: u64,
}

impl MemoryRunner {
    /// The dataset in memory, for one view.
    pub fn new(data: &IssueTracker, workload: Workload) -> MemoryRunner {
        MemoryRunner {
            engine: Engine::new(data.memory_catalog()),
            workload,
            view: None,
            next: 1_000,
        }
    }

    fn push(&mut self, change: SourceChange) -> Result<bool, BenchError> {
        self.engine
            .push(self.workload.change.table, change)
            .map_err(err)?;
        let view = self.view.as_mut().ok_or_else(|| err("no live view"))?;
        let mut changed = false;
        for event in self.engine.drain() {
            match event {
                QueryEvent::Changed { changes, .. } => {
                    changed |= !changes.is_empty();
                    view.apply_all(&changes).map_err(err)?;
                }
                QueryEvent::Faulted { error, .. } => return Err(err(error)),
                _ => {}
            }
        }
        view.flush();
        Ok(changed)
    }
}

impl Runner for MemoryRunner {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn hydrate(&mut self) -> Result<(Duration, usize), BenchError> {
        let id = QueryId(self.next);
        self.next += 1;
        let t0 = Instant::now();
        let nodes = self.engine.add_query(id, &self.workload.ast).map_err(err)?;
        let format = self.engine.format(id).cloned().ok_or_else(|| err("gone"))?;
        let view = View::hydrated(format, &nodes).map_err(err)?;
        let rows = read_view(&view);
        let took = t0.elapsed();
        self.engine.remove_query(id);
        Ok((took, rows))
    }

    fn start(&mut self) -> Result<(), BenchError> {
        let id = QueryId(1);
        let nodes = self.engine.add_query(id, &self.workload.ast).map_err(err)?;
        let format = self.engine.format(id).cloned().ok_or_else(|| err("gone"))?;
        self.view = Some(View::hydrated(format, &nodes).map_err(err)?);
        Ok(())
    }

    fn pair(&mut self) -> Result<Duration, BenchError> {
        let row = self.workload.change.row.clone();
        let t0 = Instant::now();
        let added = self.push(SourceChange::Add(row.clone()))?;
        let removed = self.push(SourceChange::Remove(row))?;
        let took = t0.elapsed();
        if !(added && removed) {
            return Err(BenchError::Unchanged {
                view: self.workload.spec.number,
                runner: "memory",
            });
        }
        Ok(took)
    }
}

/// `Db` over a backend: every write is a committed transaction whose update
/// reaches the subscriber's view.
pub struct DbRunner<B: Backend> {
    name: &'static str,
    db: Db<B>,
    workload: Workload,
    live: Option<ViewFeed<B>>,
    next: u64,
    // Keeps the database files until the runner goes.
    _dir: tempfile::TempDir,
}

impl<B: Backend> DbRunner<B> {
    fn subscribe(&self, id: QueryId) -> Result<ViewFeed<B>, BenchError> {
        ViewFeed::new(self.db.query(id, &self.workload.ast).map_err(err)?).map_err(err)
    }

    fn write(&mut self, add: bool) -> Result<bool, BenchError> {
        let w = &self.workload;
        let mut tx = self.db.write().map_err(err)?;
        if add {
            tx.insert(w.change.table, w.change.row.clone())
                .map_err(err)?;
        } else {
            tx.delete_key(w.change.table, &key_of(w)).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        let live = self.live.as_mut().ok_or_else(|| err("no live view"))?;
        let changed = !live.apply().map_err(err)?.is_empty();
        live.view_mut().flush();
        Ok(changed)
    }
}

impl<B: Backend> Runner for DbRunner<B> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn hydrate(&mut self) -> Result<(Duration, usize), BenchError> {
        let id = QueryId(self.next);
        self.next += 1;
        let t0 = Instant::now();
        let live = self.subscribe(id)?;
        let rows = read_view(live.view());
        let took = t0.elapsed();
        drop(live);
        Ok((took, rows))
    }

    fn start(&mut self) -> Result<(), BenchError> {
        self.live = Some(self.subscribe(QueryId(1))?);
        Ok(())
    }

    fn pair(&mut self) -> Result<Duration, BenchError> {
        let t0 = Instant::now();
        let added = self.write(true)?;
        let removed = self.write(false)?;
        let took = t0.elapsed();
        if !(added && removed) {
            return Err(BenchError::Unchanged {
                view: self.workload.spec.number,
                runner: self.name,
            });
        }
        Ok(took)
    }
}

/// Loads the dataset into a SQLite file (or `:memory:` connection) with the
/// baseline's indexes only, analyzed.
fn load_sqlite(data: &IssueTracker, conn: &mut Connection) -> Result<(), BenchError> {
    data.load_sqlite(conn).map_err(err)?;
    conn.execute_batch(&format!(
        "DROP INDEX issue_creator; DROP INDEX comment_issue; DROP INDEX comment_creator;
         {BASELINE_INDEXES} ANALYZE;"
    ))
    .map_err(err)
}

/// `Db` over a SQLite file in a fresh temporary directory, with the
/// baseline's indexes.
pub fn sqlite_runner(
    data: &IssueTracker,
    workload: Workload,
) -> Result<DbRunner<rindle_sqlite::SqliteBackend>, BenchError> {
    let dir = tempfile::tempdir().map_err(err)?;
    let path = dir.path().join("bench.db");
    {
        let mut conn = Connection::open(&path).map_err(err)?;
        load_sqlite(data, &mut conn)?;
    }
    let db = Db::open(path).map_err(err)?;
    for t in ["user", "issue", "comment"] {
        db.register_table(t.to_string()).map_err(err)?;
    }
    Ok(DbRunner {
        name: "SQLite",
        db,
        workload,
        live: None,
        next: 1_000,
        _dir: dir,
    })
}

/// `Db` over a redb file in a fresh temporary directory.
pub fn redb_runner(
    data: &IssueTracker,
    workload: Workload,
) -> Result<DbRunner<rindle_redb::RedbBackend>, BenchError> {
    let dir = tempfile::tempdir().map_err(err)?;
    let db = Db::open(dir.path().join("bench.redb")).map_err(err)?;
    load_rows(&db, data)?;
    Ok(DbRunner {
        name: "redb",
        db,
        workload,
        live: None,
        next: 1_000,
        _dir: dir,
    })
}

fn load_rows<B: Backend<TableSpec = rindle_core::TableSchema>>(
    db: &Db<B>,
    data: &IssueTracker,
) -> Result<(), BenchError> {
    for schema in IssueTracker::schemas() {
        db.register_table(schema).map_err(err)?;
    }
    let mut tx = db.write().map_err(err)?;
    for t in ["user", "issue", "comment"] {
        for row in data.rows(t) {
            tx.insert(t, row).map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(())
}

/// What a user would otherwise do: the same rows in an in-memory SQLite
/// database (BENCHMARKS.md's indexes, analyzed), the query's statement
/// prepared once and re-run after every write, every column of every row
/// read.
pub struct Baseline {
    conn: Connection,
    workload: Workload,
    insert: String,
    delete: String,
}

impl Baseline {
    /// The dataset in an in-memory database, for one view.
    pub fn new(data: &IssueTracker, workload: Workload) -> Result<Baseline, BenchError> {
        let mut conn = Connection::open_in_memory().map_err(err)?;
        load_sqlite(data, &mut conn)?;
        conn.set_prepared_statement_cache_capacity(16);
        let width = workload.change.row.len();
        let marks: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
        let table = workload.change.table;
        Ok(Baseline {
            conn,
            insert: format!("INSERT INTO \"{table}\" VALUES ({})", marks.join(", ")),
            delete: format!("DELETE FROM \"{table}\" WHERE id = ?1"),
            workload,
        })
    }

    /// Runs the query; returns the rows read.
    pub fn query(&self) -> Result<usize, BenchError> {
        let mut stmt = self.conn.prepare_cached(&self.workload.sql).map_err(err)?;
        let width = stmt.column_count();
        let mut rows = stmt.query([]).map_err(err)?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(err)? {
            for i in 0..width {
                black_box(row.get_ref(i).map_err(err)?);
            }
            n += 1;
        }
        Ok(n)
    }

    /// The query's rows, each as its cells (for checking the statement).
    pub fn rows(&self) -> Result<Vec<Vec<rusqlite::types::Value>>, BenchError> {
        let mut stmt = self.conn.prepare(&self.workload.sql).map_err(err)?;
        let width = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..width)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect()
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    fn write(&self, add: bool) -> Result<(), BenchError> {
        let row = &self.workload.change.row;
        let n = if add {
            let mut stmt = self.conn.prepare_cached(&self.insert).map_err(err)?;
            stmt.execute(params_from_iter(row.iter().map(sql_value)))
        } else {
            let mut stmt = self.conn.prepare_cached(&self.delete).map_err(err)?;
            stmt.execute([sql_value(&row[0])])
        }
        .map_err(err)?;
        if n == 1 {
            Ok(())
        } else {
            Err(err(format!("the baseline's write changed {n} rows")))
        }
    }
}

impl Runner for Baseline {
    fn name(&self) -> &'static str {
        "SQLite re-query"
    }

    fn hydrate(&mut self) -> Result<(Duration, usize), BenchError> {
        let t0 = Instant::now();
        let n = self.query()?;
        Ok((t0.elapsed(), n))
    }

    fn start(&mut self) -> Result<(), BenchError> {
        self.query().map(drop)
    }

    fn pair(&mut self) -> Result<Duration, BenchError> {
        let t0 = Instant::now();
        self.write(true)?;
        black_box(self.query()?);
        self.write(false)?;
        black_box(self.query()?);
        Ok(t0.elapsed())
    }
}

/// The top-level rows of a view as nodes (for checking the baseline).
pub fn memory_nodes(data: &IssueTracker, workload: &Workload) -> Result<Vec<Node>, BenchError> {
    let mut engine = Engine::new(data.memory_catalog());
    engine.add_query(QueryId(1), &workload.ast).map_err(err)
}
