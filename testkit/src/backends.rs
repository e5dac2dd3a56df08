//! The durable backends as harness subjects: each backend's live `Db` on a
//! fresh database, the query's updates applied to a view. SQLite's tables are
//! created with declared types and written with real SQL statements; redb's
//! are declared in code and written through the backend-neutral row API.

use std::cell::RefCell;
use std::rc::Rc;

use rindle_core::{Ast, Change, ColumnType, QueryId, Row, Value, View};
use rindle_replica::{Backend, Db, QueryHandle, Update, WriteTx};
use rindle_sqlite::SqlWrite;
use serde_json::Value as Json;
use tempfile::TempDir;

use crate::data::{Model, TableData, Write, WriteOp};
use crate::harness::{Subject, SubjectError};
use crate::render::view_json;

/// An engine value as a SQLite parameter (booleans as 0 / 1), the testkit's
/// one convention for writing values into SQLite.
pub fn sql_value(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as Sql;
    match v {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::Int(i) => Sql::Integer(*i),
        Value::Float(f) => Sql::Real(*f),
        Value::Text(s) => Sql::Text(s.to_string()),
    }
}

fn declared(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Integer => "INTEGER",
        ColumnType::Real => "REAL",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Json => "JSON",
        _ => "TEXT",
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `CREATE TABLE` for a table, with declared types and its primary key.
pub fn create_table_sql(t: &TableData) -> String {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let nn = if c.nullable { "" } else { " NOT NULL" };
            format!("{} {}{nn}", quote(&c.name), declared(c.ty))
        })
        .collect();
    let pk: Vec<String> = t.primary_key.iter().map(|k| quote(k)).collect();
    format!(
        "CREATE TABLE {} ({}, PRIMARY KEY ({}))",
        quote(&t.name),
        cols.join(", "),
        pk.join(", ")
    )
}

/// The SQL statement and parameters that perform a write.
pub fn write_sql(t: &TableData, w: &Write, row: &Row, old: Option<&Row>) -> (String, Vec<Value>) {
    let key_cols: Vec<usize> = t
        .primary_key
        .iter()
        .filter_map(|k| t.columns.iter().position(|c| &c.name == k))
        .collect();
    let table = quote(&t.name);
    let key_match = |offset: usize| -> String {
        key_cols
            .iter()
            .enumerate()
            .map(|(n, &c)| format!("{} = ?{}", quote(&t.columns[c].name), offset + n + 1))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let key_of = |r: &Row| -> Vec<Value> { key_cols.iter().map(|&c| r[c].clone()).collect() };
    match (w.op, old) {
        (WriteOp::Add, _) => {
            let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
            (
                format!("INSERT INTO {table} VALUES ({})", marks.join(", ")),
                row.cells().to_vec(),
            )
        }
        (WriteOp::Remove, _) => (
            format!("DELETE FROM {table} WHERE {}", key_match(0)),
            key_of(row),
        ),
        (WriteOp::Edit, old) => {
            let old = old.unwrap_or(row);
            let sets: Vec<String> = t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{} = ?{}", quote(&c.name), i + 1))
                .collect();
            let mut params = row.cells().to_vec();
            params.extend(key_of(old));
            (
                format!(
                    "UPDATE {table} SET {} WHERE {}",
                    sets.join(", "),
                    key_match(row.len())
                ),
                params,
            )
        }
    }
}

/// How a [`DbSubject`] drives one backend: opening, creating tables, writing.
pub trait Driver {
    /// The backend.
    type Backend: Backend;
    /// The subject's name in reports.
    const NAME: &'static str;
    /// Opens a database in `dir`.
    fn open(dir: &std::path::Path) -> Result<Db<Self::Backend>, SubjectError>;
    /// Creates and registers the tables and loads their rows.
    fn create(db: &Db<Self::Backend>, tables: &[TableData]) -> Result<(), SubjectError>;
    /// Performs one write inside `tx`.
    fn write(
        tx: &mut WriteTx<'_, Self::Backend>,
        table: &TableData,
        w: &Write,
        row: &Row,
        old: Option<&Row>,
    ) -> Result<(), SubjectError>;
}

/// SQLite, every write a real SQL statement.
pub struct Sqlite;

impl Driver for Sqlite {
    type Backend = rindle_sqlite::SqliteBackend;
    const NAME: &'static str = "sqlite";

    fn open(dir: &std::path::Path) -> Result<Db<Self::Backend>, SubjectError> {
        Db::open(dir.join("subject.db")).map_err(err)
    }

    fn create(db: &Db<Self::Backend>, tables: &[TableData]) -> Result<(), SubjectError> {
        let mut tx = db.write().map_err(err)?;
        for t in tables {
            tx.execute_batch(&create_table_sql(t)).map_err(err)?;
            for cells in &t.rows {
                let row = t.row(cells).map_err(err)?;
                let w = Write {
                    table: t.name.clone(),
                    op: WriteOp::Add,
                    row: cells.clone(),
                    old: None,
                };
                Self::write(&mut tx, t, &w, &row, None)?;
            }
        }
        tx.commit().map_err(err)?;
        for t in tables {
            db.register_table(t.name.as_str()).map_err(err)?;
        }
        Ok(())
    }

    fn write(
        tx: &mut WriteTx<'_, Self::Backend>,
        table: &TableData,
        w: &Write,
        row: &Row,
        old: Option<&Row>,
    ) -> Result<(), SubjectError> {
        let (sql, params) = write_sql(table, w, row, old);
        match tx.execute(&sql, &params).map_err(err)? {
            1 => Ok(()),
            n => Err(SubjectError(format!("`{sql}` changed {n} rows"))),
        }
    }
}

/// Creates and loads tables through the backend-neutral row API.
fn row_api_create<B: Backend<TableSpec = rindle_core::TableSchema>>(
    db: &Db<B>,
    tables: &[TableData],
) -> Result<(), SubjectError> {
    for t in tables {
        db.register_table(t.schema().map_err(err)?).map_err(err)?;
    }
    let mut tx = db.write().map_err(err)?;
    for t in tables {
        for cells in &t.rows {
            tx.insert(&t.name, t.row(cells).map_err(err)?)
                .map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(())
}

/// Performs one write through the backend-neutral row API (a key change is a
/// delete and an insert).
fn row_api_write<B: Backend>(
    tx: &mut WriteTx<'_, B>,
    table: &TableData,
    w: &Write,
    row: &Row,
    old: Option<&Row>,
) -> Result<(), SubjectError> {
    let schema = table.schema().map_err(err)?;
    match (w.op, old) {
        (WriteOp::Add, _) => tx.insert(&table.name, row.clone()),
        (WriteOp::Remove, _) => tx.delete(&table.name, row.clone()),
        (WriteOp::Edit, Some(old)) if !schema.same_key(old, row) => tx
            .delete(&table.name, old.clone())
            .and_then(|()| tx.insert(&table.name, row.clone())),
        (WriteOp::Edit, _) => tx.update(&table.name, row.clone()),
    }
    .map_err(err)
}

/// redb, every write through the backend-neutral row API.
pub struct Redb;

impl Driver for Redb {
    type Backend = rindle_redb::RedbBackend;
    const NAME: &'static str = "redb";

    fn open(dir: &std::path::Path) -> Result<Db<Self::Backend>, SubjectError> {
        Db::open(dir.join("subject.redb")).map_err(err)
    }

    fn create(db: &Db<Self::Backend>, tables: &[TableData]) -> Result<(), SubjectError> {
        row_api_create(db, tables)
    }

    fn write(
        tx: &mut WriteTx<'_, Self::Backend>,
        table: &TableData,
        w: &Write,
        row: &Row,
        old: Option<&Row>,
    ) -> Result<(), SubjectError> {
        row_api_write(tx, table, w, row, old)
    }
}

/// The in-memory `Db` (`rindle_replica::memory`), written with the row API.
pub struct InMemory;

impl Driver for InMemory {
    type Backend = rindle_replica::memory::MemoryBackend;
    const NAME: &'static str = "memory-db";

    fn open(_dir: &std::path::Path) -> Result<Db<Self::Backend>, SubjectError> {
        Db::open(()).map_err(err)
    }

    fn create(db: &Db<Self::Backend>, tables: &[TableData]) -> Result<(), SubjectError> {
        row_api_create(db, tables)
    }

    fn write(
        tx: &mut WriteTx<'_, Self::Backend>,
        table: &TableData,
        w: &Write,
        row: &Row,
        old: Option<&Row>,
    ) -> Result<(), SubjectError> {
        row_api_write(tx, table, w, row, old)
    }
}

/// A query's subscription applied to a view: each commit's updates wait in
/// a buffer until [`ViewFeed::apply`] moves them into the view.
pub struct ViewFeed<B: Backend> {
    _handle: QueryHandle<B>,
    view: View,
    updates: Rc<RefCell<Vec<Update>>>,
}

impl<B: Backend> ViewFeed<B> {
    /// Subscribes to the query and applies its hydration.
    pub fn new(handle: QueryHandle<B>) -> Result<ViewFeed<B>, SubjectError> {
        let format = handle.format().map_err(err)?;
        let updates: Rc<RefCell<Vec<Update>>> = Rc::default();
        let sink = updates.clone();
        handle
            .subscribe(move |u| sink.borrow_mut().push(u.clone()))
            .map_err(err)?;
        let mut feed = ViewFeed {
            _handle: handle,
            view: View::new(format),
            updates,
        };
        feed.apply()?;
        Ok(feed)
    }

    /// Applies the delivered updates to the view; returns the changes of the
    /// `Changed` ones. A fault or an unexpected update is an error.
    pub fn apply(&mut self) -> Result<Vec<Change>, SubjectError> {
        let mut changed = Vec::new();
        for u in self.updates.borrow_mut().drain(..) {
            match u {
                Update::Hydrated { changes, .. } => self.view.apply_all(&changes).map_err(err)?,
                Update::Changed { changes, .. } => {
                    self.view.apply_all(&changes).map_err(err)?;
                    changed.extend(changes);
                }
                Update::Faulted { message, .. } => {
                    return Err(SubjectError(format!("faulted: {message}")));
                }
                other => return Err(SubjectError(format!("unexpected {other:?}"))),
            }
        }
        Ok(changed)
    }

    /// The view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The view, mutably (to flush it, say).
    pub fn view_mut(&mut self) -> &mut View {
        &mut self.view
    }
}

struct Live<B: Backend> {
    // Field order matters: the subscription's handle must drop before the
    // database.
    feed: ViewFeed<B>,
    db: Db<B>,
    _dir: TempDir,
    tables: Vec<TableData>,
    model: Model,
    /// The changes delivered by the last step.
    last: Vec<Change>,
}

/// A backend's live `Db` on a fresh database, its query's updates applied to
/// a view.
pub struct DbSubject<D: Driver> {
    live: Option<Live<D::Backend>>,
}

impl<D: Driver> Default for DbSubject<D> {
    fn default() -> Self {
        DbSubject { live: None }
    }
}

impl<D: Driver> DbSubject<D> {
    /// A subject with nothing loaded.
    pub fn new() -> DbSubject<D> {
        DbSubject::default()
    }
}

/// SQLite through `rindle_sqlite::Db`, writing with SQL.
pub type SqliteSubject = DbSubject<Sqlite>;
/// redb through `rindle_redb::Db`, writing with the row API.
pub type RedbSubject = DbSubject<Redb>;
/// The in-memory `Db` with transactions, writing with the row API.
pub type MemoryDbSubject = DbSubject<InMemory>;

fn err(e: impl std::fmt::Display) -> SubjectError {
    SubjectError::from_display(e)
}

impl<D: Driver> DbSubject<D> {
    /// The changes the last step delivered (already applied to the view).
    pub fn last_changes(&self) -> &[Change] {
        self.live.as_ref().map_or(&[], |l| &l.last)
    }
}

impl<D: Driver> Subject for DbSubject<D> {
    fn name(&self) -> &str {
        D::NAME
    }

    fn start(&mut self, tables: &[TableData], query: &Ast) -> Result<Json, SubjectError> {
        let model = Model::new(tables).map_err(err)?;
        let dir = tempfile::tempdir().map_err(err)?;
        let db = D::open(dir.path())?;
        D::create(&db, tables)?;
        let feed = ViewFeed::new(db.query(QueryId(1), query).map_err(err)?)?;
        let out = view_json(feed.view());
        self.live = Some(Live {
            feed,
            db,
            _dir: dir,
            tables: tables.to_vec(),
            model,
            last: Vec::new(),
        });
        Ok(out)
    }

    fn step(&mut self, tx: &[Write]) -> Result<Json, SubjectError> {
        let live = self.live.as_mut().ok_or_else(|| err("step before start"))?;
        let mut wtx = live.db.write().map_err(err)?;
        for w in tx {
            let t = live
                .tables
                .iter()
                .find(|t| t.name == w.table)
                .ok_or_else(|| err(format!("unknown table {}", w.table)))?;
            live.model.apply(w).map_err(err)?;
            let row = t.row(&w.row).map_err(err)?;
            let old = w.old.as_ref().map(|o| t.row(o)).transpose().map_err(err)?;
            D::write(&mut wtx, t, w, &row, old.as_ref())?;
        }
        wtx.commit().map_err(err)?;
        live.last = live.feed.apply()?;
        Ok(view_json(live.feed.view()))
    }
}
