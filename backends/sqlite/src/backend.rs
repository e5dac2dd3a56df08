//! The write side: one writer connection, changes captured by the preupdate
//! hook, and table registration by introspection.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rindle_core::{Column, Row, SourceChange, TableSchema};
use rindle_replica::Backend;
use rindle_replica::cluster::{ClusterBackend, Interrupter};
use rusqlite::hooks::{AuthAction, AuthContext, Authorization, PreUpdateCase};
use rusqlite::{Connection, params_from_iter};

use crate::SqliteError;
use crate::convert::{column_type, quote, to_sql, to_value};
use crate::source::{Reader, SqliteCatalog};

/// What the preupdate hook records during a write transaction.
#[derive(Default)]
struct Capture {
    tables: HashMap<String, TableSchema>,
    changes: Vec<(String, SourceChange)>,
    error: Option<SqliteError>,
}

/// Locks the capture state; a poisoned lock (a panic elsewhere) still holds
/// consistent data, since every update is a single push or assignment.
fn lock(c: &Mutex<Capture>) -> MutexGuard<'_, Capture> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

fn capture_row<'a>(
    schema: &TableSchema,
    n: i32,
    get: &dyn Fn(i32) -> rusqlite::Result<rusqlite::types::ValueRef<'a>>,
) -> Result<Row, SqliteError> {
    let width = schema.columns().len();
    if usize::try_from(n).ok() != Some(width) {
        return Err(SqliteError::Refused {
            table: schema.name().into(),
            reason: format!("the table now has {n} columns, {width} were registered"),
        });
    }
    let mut cells = Vec::with_capacity(width);
    for i in 0..n {
        let idx = usize::try_from(i).unwrap_or_default();
        cells.push(to_value(schema, idx, get(i)?)?);
    }
    Ok(Row::new(cells))
}

/// The table the commit version lives in, written in each transaction.
const META_DDL: &str =
    "CREATE TABLE IF NOT EXISTS _rindle_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)";

/// Who wrote the SQL being prepared: what the authorizer lets through.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// The backend's own statements: anything.
    Internal = 0,
    /// An embedding application: no transaction control, no ATTACH, no
    /// change to a registered table's shape, no write to the stored commit
    /// version.
    User = 1,
    /// A remote client of a daemon: also only a few PRAGMAs, and nothing
    /// that writes or reshapes the daemon's own `_rindle_*` tables.
    Client = 2,
}

/// PRAGMAs whose argument names a table, an index or a schema (never a
/// setting): they report and change nothing, with or without it.
const INFO_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "collation_list",
    "function_list",
    "compile_options",
];

/// PRAGMAs that may be read (without a value) but not set.
const READ_PRAGMAS: &[&str] = &[
    "user_version",
    "application_id",
    "data_version",
    "schema_version",
    "page_count",
    "page_size",
    "freelist_count",
];

/// PRAGMAs a client may set: they live inside the transaction.
const SET_PRAGMAS: &[&str] = &["user_version", "defer_foreign_keys"];

/// Whether `PRAGMA name` (with `value`: an argument or an assignment, as
/// SQLite's authorizer reports both) only reads — or, when `may_set`, sets
/// one of the few transactional pragmas.
pub(crate) fn pragma_allowed(name: &str, value: Option<&str>, may_set: bool) -> bool {
    let is = |list: &[&str]| list.iter().any(|p| p.eq_ignore_ascii_case(name));
    is(INFO_PRAGMAS) || (value.is_none() && is(READ_PRAGMAS)) || (may_set && is(SET_PRAGMAS))
}

fn is_internal_table(t: &str) -> bool {
    t.len() >= 8 && t[..8].eq_ignore_ascii_case("_rindle_")
}

/// Why `action` is refused to SQL from `mode`, if it is.
fn refusal(
    mode: Mode,
    action: &AuthAction<'_>,
    registered: &dyn Fn(&str) -> bool,
) -> Option<String> {
    let client = mode == Mode::Client;
    match *action {
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
            Some("transaction control is the daemon's: each request is one transaction".into())
        }
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
            Some("ATTACH and DETACH are not allowed".into())
        }
        AuthAction::AlterTable { table_name, .. }
        | AuthAction::DropTable { table_name }
        | AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::CreateTempTrigger { table_name, .. }
            if registered(table_name) =>
        {
            Some(format!(
                "table `{table_name}` is registered for live queries: its shape and triggers cannot change"
            ))
        }
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
            if table_name.eq_ignore_ascii_case("_rindle_meta") =>
        {
            Some("`_rindle_meta` holds the commit version and cannot be written".into())
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } if client => (!pragma_allowed(pragma_name, pragma_value, true)).then(|| {
            format!(
                "PRAGMA {pragma_name}{} is not allowed (allowed: {}; reading {}; setting {})",
                if pragma_value.is_some() {
                    " with a value"
                } else {
                    ""
                },
                INFO_PRAGMAS.join(", "),
                READ_PRAGMAS.join(", "),
                SET_PRAGMAS.join(", ")
            )
        }),
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::CreateIndex { table_name, .. }
        | AuthAction::DropIndex { table_name, .. }
        | AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::CreateTable { table_name }
            if client && is_internal_table(table_name) =>
        {
            Some(format!("`{table_name}` is the daemon's own table"))
        }
        _ => None,
    }
}

fn is_denied(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::AuthorizationForStatementDenied)
}

/// The default WAL bound: 64 MiB.
pub const DEFAULT_WAL_MAX_BYTES: u64 = 64 << 20;

/// What the WAL upkeep has done, shared with whoever reports it.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Checkpoints that truncated the WAL.
    pub checkpoints: AtomicU64,
    /// Checkpoints that could not finish because another connection held a
    /// snapshot (retried a second later).
    pub busy: AtomicU64,
}

/// The SQLite backend: a WAL database file with one writer connection.
pub struct SqliteBackend {
    path: PathBuf,
    writer: Connection,
    capture: Arc<Mutex<Capture>>,
    /// Who the SQL being prepared comes from (a [`Mode`] as u8), so the
    /// authorizer can refuse what that author may not do.
    mode: Arc<AtomicU8>,
    /// Why the authorizer last refused, for the error.
    denied: Arc<Mutex<Option<String>>>,
    in_tx: bool,
    /// The meta table exists (created with the first stored cv).
    meta_ready: bool,
    wal_max_bytes: u64,
    wal_stats: Arc<WalStats>,
    /// After a busy checkpoint, no other attempt before this.
    retry_at: Option<Instant>,
}

impl SqliteBackend {
    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Bounds the WAL: once it passes half of `bytes`, the next transaction
    /// (or [`rindle_replica::cluster::Cluster::maintain_if_due`]) first
    /// checkpoints it and truncates it to zero, so it stays under `bytes`
    /// unless one transaction alone writes more than half of it, or another
    /// process holds a read snapshot open.
    pub fn set_wal_max_bytes(&mut self, bytes: u64) {
        self.wal_max_bytes = bytes.max(1);
    }

    /// The bound set by [`SqliteBackend::set_wal_max_bytes`].
    pub fn wal_max_bytes(&self) -> u64 {
        self.wal_max_bytes
    }

    /// What the WAL upkeep has done so far.
    pub fn wal_stats(&self) -> Arc<WalStats> {
        self.wal_stats.clone()
    }

    /// Checkpoints the WAL into the database and truncates it, waiting at
    /// most `wait` for other connections' snapshots to end. Returns whether
    /// it finished; outside a transaction only.
    pub fn checkpoint_truncate(&mut self, wait: Duration) -> Result<bool, SqliteError> {
        if self.in_tx {
            return Err(SqliteError::Busy);
        }
        self.writer.busy_timeout(wait)?;
        let busy: rusqlite::Result<i64> =
            self.writer
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0));
        self.writer.busy_timeout(BUSY_TIMEOUT)?;
        let done = busy? == 0;
        let counter = if done {
            &self.wal_stats.checkpoints
        } else {
            &self.wal_stats.busy
        };
        counter.fetch_add(1, AtomicOrdering::Relaxed);
        Ok(done)
    }

    /// Checks that a client may run `sql` under [`SqliteBackend::execute_client`]'s
    /// rules by preparing it, without running it. A statement that cannot be
    /// prepared yet (it names a table an earlier statement creates) passes;
    /// it is checked again when it runs.
    pub fn check_client(&mut self, sql: &str) -> Result<(), SqliteError> {
        if !self.in_tx {
            return Err(SqliteError::NoTransaction);
        }
        self.mode.store(Mode::Client as u8, AtomicOrdering::SeqCst);
        let prepared = self.writer.prepare(sql).map(drop);
        self.mode
            .store(Mode::Internal as u8, AtomicOrdering::SeqCst);
        match prepared {
            Err(e) if is_denied(&e) => Err(self.denied(e)),
            // SQLite's own refusal to write the schema table (it would take
            // `writable_schema`, which clients cannot set).
            Err(rusqlite::Error::SqliteFailure(_, Some(m)))
                if m.contains("may not be modified") =>
            {
                Err(SqliteError::NotPermitted(m))
            }
            _ => Ok(()),
        }
    }

    /// Runs one statement from a remote client: what
    /// [`SqliteBackend::execute`] refuses, and also every PRAGMA but a few
    /// that only read or are transactional (`table_info`, `index_list`,
    /// `user_version`, `defer_foreign_keys`, ...; so never `writable_schema`,
    /// and the schema table stays read-only), and any write or DDL on the
    /// daemon's own `_rindle_*` tables.
    pub fn execute_client(
        &mut self,
        sql: &str,
        params: &[rindle_core::Value],
    ) -> Result<usize, SqliteError> {
        let params: Vec<rusqlite::types::Value> = params.iter().map(to_sql).collect();
        self.guarded(Mode::Client, |c| {
            Ok(c.execute(sql, params_from_iter(params))?)
        })
    }

    fn denied(&self, e: rusqlite::Error) -> SqliteError {
        match self.denied.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(reason) => SqliteError::NotPermitted(reason),
            None => SqliteError::Sqlite(e),
        }
    }

    /// Runs one SQL statement with parameters inside the open transaction;
    /// returns the number of rows it changed.
    ///
    /// A failing statement is undone on its own (its captured changes too) and
    /// the transaction stays open and usable. Statements that would end or
    /// nest transactions, attach databases, or alter, drop or add triggers to
    /// a registered table are refused.
    pub fn execute(
        &mut self,
        sql: &str,
        params: &[rindle_core::Value],
    ) -> Result<usize, SqliteError> {
        let params: Vec<rusqlite::types::Value> = params.iter().map(to_sql).collect();
        self.guarded(
            Mode::User,
            |c| Ok(c.execute(sql, params_from_iter(params))?),
        )
    }

    /// Runs one statement with parameters inside the open transaction and
    /// returns its rows (reads see the transaction's own writes). Refused
    /// and undone like [`SqliteBackend::execute`].
    pub fn query(
        &mut self,
        sql: &str,
        params: &[rindle_core::Value],
    ) -> Result<crate::Rows, SqliteError> {
        self.guarded(Mode::User, |c| {
            crate::plain::collect(&mut c.prepare(sql)?, params)
        })
    }

    /// Runs several `;`-separated statements without parameters, all or
    /// nothing within the open transaction (see [`SqliteBackend::execute`]).
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), SqliteError> {
        self.guarded(Mode::User, |c| Ok(c.execute_batch(sql)?))
    }

    fn guarded<T>(
        &mut self,
        mode: Mode,
        f: impl FnOnce(&Connection) -> Result<T, SqliteError>,
    ) -> Result<T, SqliteError> {
        if !self.in_tx {
            return Err(SqliteError::NoTransaction);
        }
        let mark = lock(&self.capture).changes.len();
        self.writer.execute_batch("SAVEPOINT rindle_statement")?;
        self.mode.store(mode as u8, AtomicOrdering::SeqCst);
        let result = f(&self.writer).map_err(|e| match e {
            SqliteError::Sqlite(e) if is_denied(&e) => self.denied(e),
            e => e,
        });
        self.mode
            .store(Mode::Internal as u8, AtomicOrdering::SeqCst);
        let captured_error = lock(&self.capture).error.take();
        match (result, captured_error) {
            (Ok(v), None) => {
                self.writer.execute_batch("RELEASE rindle_statement")?;
                Ok(v)
            }
            (r, e) => {
                self.writer
                    .execute_batch("ROLLBACK TO rindle_statement; RELEASE rindle_statement")?;
                lock(&self.capture).changes.truncate(mark);
                Err(e.unwrap_or_else(|| r.err().unwrap_or(SqliteError::NoTransaction)))
            }
        }
    }

    fn introspect(&self, name: &str) -> Result<TableSchema, SqliteError> {
        let refuse = |reason: String| SqliteError::Refused {
            table: name.into(),
            reason,
        };
        let kind: Option<String> = self
            .writer
            .query_row(
                "SELECT type FROM sqlite_schema WHERE name = ?1 AND type IN ('table', 'view')",
                [name],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        match kind.as_deref() {
            None => return Err(refuse("no such table".into())),
            Some("view") => return Err(refuse("it is a view, not a table".into())),
            _ => {}
        }
        let sql: String = self.writer.query_row(
            "SELECT coalesce(sql, '') FROM sqlite_schema WHERE name = ?1 AND type = 'table'",
            [name],
            |r| r.get(0),
        )?;
        if sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL") {
            return Err(refuse("it is a virtual table".into()));
        }
        let triggers: i64 = self.writer.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ?1",
            [name],
            |r| r.get(0),
        )?;
        if triggers > 0 {
            return Err(refuse(format!(
                "it has {triggers} trigger(s); writes made by triggers would bypass the query keys"
            )));
        }
        let mut stmt = self
            .writer
            .prepare("SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo(?1)")?;
        let mut cols: Vec<(String, String, bool, i64, i64)> = stmt
            .query_map([name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        if let Some((c, ..)) = cols
            .iter()
            .find(|(.., hidden)| *hidden == 2 || *hidden == 3)
        {
            return Err(refuse(format!("column `{c}` is generated")));
        }
        cols.retain(|(.., hidden)| *hidden == 0);
        let mut columns = Vec::with_capacity(cols.len());
        for (cname, declared, not_null, _, _) in &cols {
            let ty = column_type(declared).ok_or_else(|| {
                refuse(format!(
                    "column `{cname}` has type `{declared}`; declare INTEGER, REAL, TEXT, BOOLEAN or JSON"
                ))
            })?;
            let mut c = Column::new(cname, ty);
            if *not_null {
                c = c.not_null();
            }
            columns.push(c);
        }
        let mut pk: Vec<(i64, &str)> = cols
            .iter()
            .filter(|c| c.3 > 0)
            .map(|c| (c.3, c.0.as_str()))
            .collect();
        if pk.is_empty() {
            return Err(refuse("it has no primary key".into()));
        }
        pk.sort();
        let pk: Vec<&str> = pk.into_iter().map(|(_, n)| n).collect();
        TableSchema::new(name, columns, &pk).map_err(|e| refuse(e.to_string()))
    }
}

impl Backend for SqliteBackend {
    type Catalog = SqliteCatalog;
    type Config = PathBuf;
    type TableSpec = String;
    type Error = SqliteError;

    fn open(path: PathBuf) -> Result<(SqliteBackend, SqliteCatalog), SqliteError> {
        let mut writer = Connection::open(&path)?;
        writer.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SqliteError::Refused {
                table: path.display().to_string(),
                reason: format!("the database cannot use WAL journaling (it is `{mode}`)"),
            });
        }
        writer.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        let capture = Arc::new(Mutex::new(Capture::default()));
        let hook_capture = capture.clone();
        writer.preupdate_hook(Some(
            move |_action, db: &str, table: &str, case: &PreUpdateCase| {
                if db != "main" {
                    return;
                }
                let mut cap = lock(&hook_capture);
                let Some(schema) = cap.tables.get(table).cloned() else {
                    return;
                };
                let change = match case {
                    PreUpdateCase::Insert(n) => capture_row(&schema, n.get_column_count(), &|i| {
                        n.get_new_column_value(i)
                    })
                    .map(SourceChange::Add),
                    PreUpdateCase::Delete(o) => capture_row(&schema, o.get_column_count(), &|i| {
                        o.get_old_column_value(i)
                    })
                    .map(SourceChange::Remove),
                    PreUpdateCase::Update {
                        old_value_accessor: o,
                        new_value_accessor: n,
                    } => capture_row(&schema, o.get_column_count(), &|i| {
                        o.get_old_column_value(i)
                    })
                    .and_then(|old| {
                        capture_row(&schema, n.get_column_count(), &|i| {
                            n.get_new_column_value(i)
                        })
                        .map(|new| SourceChange::Edit { old, new })
                    }),
                    PreUpdateCase::Unknown => return,
                };
                match change {
                    Ok(c) => cap.changes.push((table.to_string(), c)),
                    Err(e) => {
                        if cap.error.is_none() {
                            cap.error = Some(e);
                        }
                    }
                }
            },
        ))?;
        let mode = Arc::new(AtomicU8::new(Mode::Internal as u8));
        let denied = Arc::new(Mutex::new(None));
        let (auth_mode, auth_denied, auth_capture) =
            (mode.clone(), denied.clone(), capture.clone());
        writer.authorizer(Some(move |ctx: AuthContext<'_>| {
            let mode = match auth_mode.load(AtomicOrdering::SeqCst) {
                m if m == Mode::User as u8 => Mode::User,
                m if m == Mode::Client as u8 => Mode::Client,
                _ => return Authorization::Allow,
            };
            let registered = |t: &str| lock(&auth_capture).tables.contains_key(t);
            match refusal(mode, &ctx.action, &registered) {
                None => Authorization::Allow,
                Some(reason) => {
                    *auth_denied.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                    Authorization::Deny
                }
            }
        }))?;
        let reader = Reader::open(&path)?;
        Ok((
            SqliteBackend {
                path,
                writer,
                capture,
                mode,
                denied,
                in_tx: false,
                meta_ready: false,
                wal_max_bytes: DEFAULT_WAL_MAX_BYTES,
                wal_stats: Arc::default(),
                retry_at: None,
            },
            SqliteCatalog::new(reader),
        ))
    }

    fn register_table(
        &mut self,
        catalog: &mut SqliteCatalog,
        name: String,
    ) -> Result<TableSchema, SqliteError> {
        let schema = ClusterBackend::register(self, name)?;
        // The reader may predate the table's creation.
        catalog.reader().repin()?;
        catalog.add(schema.clone());
        Ok(schema)
    }

    fn begin(&mut self) -> Result<(), SqliteError> {
        self.writer.execute_batch("BEGIN IMMEDIATE")?;
        let mut cap = lock(&self.capture);
        cap.changes.clear();
        cap.error = None;
        self.in_tx = true;
        Ok(())
    }

    fn insert(&mut self, table: &TableSchema, row: &Row) -> Result<(), SqliteError> {
        let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} VALUES ({})",
            quote(table.name()),
            marks.join(", ")
        );
        self.execute(&sql, row.cells()).map(|_| ())
    }

    fn update(&mut self, table: &TableSchema, row: &Row) -> Result<(), SqliteError> {
        let cols = table.columns();
        let sets: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", quote(&c.name), i + 1))
            .collect();
        let keys: Vec<String> = table
            .primary_key()
            .iter()
            .enumerate()
            .map(|(n, &c)| format!("{} = ?{}", quote(&cols[c].name), cols.len() + n + 1))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {}",
            quote(table.name()),
            sets.join(", "),
            keys.join(" AND ")
        );
        let mut params = row.cells().to_vec();
        params.extend(table.key_of(row));
        match self.execute(&sql, &params)? {
            1 => Ok(()),
            _ => Err(SqliteError::NoSuchRow {
                table: table.name().into(),
            }),
        }
    }

    fn delete(&mut self, table: &TableSchema, row: &Row) -> Result<(), SqliteError> {
        let cols = table.columns();
        let keys: Vec<String> = table
            .primary_key()
            .iter()
            .enumerate()
            .map(|(n, &c)| format!("{} = ?{}", quote(&cols[c].name), n + 1))
            .collect();
        let sql = format!(
            "DELETE FROM {} WHERE {}",
            quote(table.name()),
            keys.join(" AND ")
        );
        match self.execute(&sql, &table.key_of(row))? {
            1 => Ok(()),
            _ => Err(SqliteError::NoSuchRow {
                table: table.name().into(),
            }),
        }
    }

    fn commit(&mut self) -> Result<Vec<(String, SourceChange)>, SqliteError> {
        self.in_tx = false;
        if let Err(e) = self.writer.execute_batch("COMMIT") {
            let _ = self.writer.execute_batch("ROLLBACK");
            lock(&self.capture).changes.clear();
            return Err(e.into());
        }
        Ok(std::mem::take(&mut lock(&self.capture).changes))
    }

    fn rollback(&mut self) -> Result<(), SqliteError> {
        self.in_tx = false;
        lock(&self.capture).changes.clear();
        if self.writer.is_autocommit() {
            return Ok(());
        }
        Ok(self.writer.execute_batch("ROLLBACK")?)
    }

    fn advance(&mut self, catalog: &mut SqliteCatalog) -> Result<(), SqliteError> {
        catalog.advance()
    }

    fn hold(&mut self, catalog: &mut SqliteCatalog) -> Result<(), SqliteError> {
        catalog.hold()
    }

    fn maintenance_due(&self) -> bool {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        crate::plain::wal_size(&self.path) > self.wal_max_bytes / 2
    }

    fn maintain(&mut self) -> Result<(), SqliteError> {
        // The daemon's own snapshots are released by now; another process's
        // read may still need the log, so wait for it only briefly.
        if self.checkpoint_truncate(Duration::from_millis(250))? {
            self.retry_at = None;
        } else {
            // Counted in `WalStats::busy` for whoever reports it.
            self.retry_at = Some(Instant::now() + Duration::from_secs(1));
        }
        Ok(())
    }

    fn load_cv(&mut self) -> Result<u64, SqliteError> {
        let exists: i64 = self.writer.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '_rindle_meta'",
            [],
            |r| r.get(0),
        )?;
        if exists == 0 {
            return Ok(0);
        }
        self.meta_ready = true;
        let cv: Option<i64> = self
            .writer
            .query_row("SELECT value FROM _rindle_meta WHERE key = 'cv'", [], |r| {
                r.get(0)
            })
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        Ok(cv.and_then(|v| u64::try_from(v).ok()).unwrap_or(0))
    }

    fn store_cv(&mut self, cv: u64) -> Result<(), SqliteError> {
        if !self.meta_ready {
            self.writer.execute_batch(META_DDL)?;
            self.meta_ready = true;
        }
        let cv = i64::try_from(cv).map_err(|_| SqliteError::Refused {
            table: "_rindle_meta".into(),
            reason: "the commit version overflowed".into(),
        })?;
        self.writer
            .prepare_cached(
                "INSERT INTO _rindle_meta (key, value) VALUES ('cv', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute([cv])?;
        Ok(())
    }
}

/// How long the writer waits for a lock another process holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl ClusterBackend for SqliteBackend {
    type Reader = PathBuf;

    fn reader(&self) -> PathBuf {
        self.path.clone()
    }

    fn register(&mut self, name: String) -> Result<TableSchema, SqliteError> {
        if self.in_tx {
            return Err(SqliteError::Busy);
        }
        let schema = self.introspect(&name)?;
        lock(&self.capture).tables.insert(name, schema.clone());
        Ok(schema)
    }

    fn open_catalog(path: &PathBuf, tables: &[TableSchema]) -> Result<SqliteCatalog, SqliteError> {
        let mut catalog = SqliteCatalog::new(Reader::open(path)?);
        for t in tables {
            catalog.add(t.clone());
        }
        Ok(catalog)
    }

    fn add_table(
        _path: &PathBuf,
        catalog: &mut SqliteCatalog,
        schema: &TableSchema,
    ) -> Result<(), SqliteError> {
        catalog.reader().repin()?;
        catalog.add(schema.clone());
        Ok(())
    }

    fn pin(catalog: &mut SqliteCatalog) -> Result<(), SqliteError> {
        catalog.hold()
    }

    fn release(catalog: &mut SqliteCatalog) -> Result<(), SqliteError> {
        catalog.advance()
    }

    fn interrupter(catalog: &SqliteCatalog) -> Option<Interrupter> {
        // Opened catalogs are pinned already: this takes no snapshot.
        let handle = catalog.reader().connection().ok()?.get_interrupt_handle();
        Some(Arc::new(move || handle.interrupt()))
    }
}
