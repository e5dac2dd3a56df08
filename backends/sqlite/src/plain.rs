//! Plain SQL results: what a control plane returns for ad-hoc reads, and a
//! read-only connection that refuses anything but reading.

use std::path::Path;
use std::time::{Duration, Instant};

use rindle_core::Value;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Statement, params_from_iter};

use crate::SqliteError;
use crate::convert::to_sql;

/// Rows of an ad-hoc statement: column names and cells. Integers, reals,
/// text and null come back as themselves; a BLOB as lowercase hex text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    /// The result's column names.
    pub columns: Vec<String>,
    /// The rows, positional against `columns`.
    pub rows: Vec<Vec<Value>>,
}

fn cell(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::text(&String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => Value::text(&b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}

/// Bounds on one ad-hoc read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// How long the statement may run before it is interrupted.
    pub time: Duration,
    /// The most rows it may return.
    pub max_rows: usize,
    /// The most bytes of cell data it may return (text and BLOBs by their
    /// length, every other cell as 8).
    pub max_bytes: usize,
}

impl Default for ReadLimits {
    /// 5 s, 100,000 rows, 32 MiB.
    fn default() -> ReadLimits {
        ReadLimits {
            time: Duration::from_secs(5),
            max_rows: 100_000,
            max_bytes: 32 << 20,
        }
    }
}

const UNLIMITED: ReadLimits = ReadLimits {
    time: Duration::MAX,
    max_rows: usize::MAX,
    max_bytes: usize::MAX,
};

fn cell_bytes(v: &ValueRef<'_>) -> usize {
    match v {
        ValueRef::Text(t) => t.len(),
        ValueRef::Blob(b) => b.len(),
        _ => 8,
    }
}

/// Runs a prepared statement and collects its rows.
pub(crate) fn collect(stmt: &mut Statement<'_>, params: &[Value]) -> Result<Rows, SqliteError> {
    collect_limited(stmt, params, &UNLIMITED)
}

fn collect_limited(
    stmt: &mut Statement<'_>,
    params: &[Value],
    limits: &ReadLimits,
) -> Result<Rows, SqliteError> {
    let columns: Vec<String> = stmt.column_names().map(String::from).collect();
    let n = columns.len();
    let params: Vec<rusqlite::types::Value> = params.iter().map(to_sql).collect();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut q = stmt.query(params_from_iter(params))?;
    while let Some(r) = q.next()? {
        if rows.len() == limits.max_rows {
            return Err(SqliteError::ResultTooLarge {
                what: "rows",
                limit: limits.max_rows,
            });
        }
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            let v = r.get_ref(i)?;
            bytes = bytes.saturating_add(cell_bytes(&v));
            cells.push(cell(v));
        }
        if bytes > limits.max_bytes {
            return Err(SqliteError::ResultTooLarge {
                what: "bytes",
                limit: limits.max_bytes,
            });
        }
        rows.push(cells);
    }
    Ok(Rows { columns, rows })
}

/// A read-only connection to a database file: one statement at a time, and
/// only statements that read. INSERT / UPDATE / DELETE (with RETURNING too),
/// DDL, ATTACH, PRAGMA assignments and transaction control are refused
/// before they run, so the data is never touched.
pub struct ReadOnly {
    conn: Connection,
}

impl std::fmt::Debug for ReadOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnly").finish_non_exhaustive()
    }
}

impl ReadOnly {
    /// Opens `path` read-only (it must exist).
    pub fn open(path: &Path) -> Result<ReadOnly, SqliteError> {
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA query_only = ON")?;
        conn.authorizer(Some(|ctx: AuthContext<'_>| match ctx.action {
            AuthAction::Read { .. } | AuthAction::Select | AuthAction::Function { .. } => {
                Authorization::Allow
            }
            AuthAction::Recursive => Authorization::Allow,
            // Reading a pragma that only reports (`PRAGMA table_info(t)`,
            // `SELECT * FROM pragma_index_list('t')`).
            AuthAction::Pragma {
                pragma_name,
                pragma_value,
            } if crate::backend::pragma_allowed(pragma_name, pragma_value, false) => {
                Authorization::Allow
            }
            _ => Authorization::Deny,
        }))?;
        Ok(ReadOnly { conn })
    }

    /// Runs one reading statement with parameters, within `limits`: past its
    /// time the statement is interrupted ([`SqliteError::TimedOut`]), and a
    /// result over its rows or bytes is refused
    /// ([`SqliteError::ResultTooLarge`]).
    pub fn query_limited(
        &mut self,
        sql: &str,
        params: &[Value],
        limits: ReadLimits,
    ) -> Result<Rows, SqliteError> {
        let deadline = Instant::now().checked_add(limits.time);
        if let Some(deadline) = deadline {
            // Checked every thousand virtual-machine steps.
            self.conn
                .progress_handler(1000, Some(move || Instant::now() >= deadline))?;
        }
        let result = self
            .prepare(sql)
            .and_then(|mut stmt| collect_limited(&mut stmt, params, &limits));
        if deadline.is_some() {
            self.conn.progress_handler(0, None::<fn() -> bool>)?;
        }
        result.map_err(|e| match e {
            SqliteError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::OperationInterrupted =>
            {
                SqliteError::TimedOut { limit: limits.time }
            }
            e => e,
        })
    }

    fn prepare(&self, sql: &str) -> Result<Statement<'_>, SqliteError> {
        let stmt = self.conn.prepare(sql).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::AuthorizationForStatementDenied =>
            {
                SqliteError::NotReadOnly
            }
            e => SqliteError::Sqlite(e),
        })?;
        if !stmt.readonly() {
            return Err(SqliteError::NotReadOnly);
        }
        Ok(stmt)
    }

    /// Runs one reading statement with parameters.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, SqliteError> {
        collect(&mut self.prepare(sql)?, params)
    }
}

/// The size in bytes of the WAL of the database at `path` (0 when there is
/// none).
pub fn wal_size(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Checkpoints the WAL of the database at `path` into the main file and
/// truncates it (what a clean shutdown does once every other connection is
/// closed). Returns whether the whole WAL was checkpointed.
pub fn checkpoint(path: &Path) -> Result<bool, SqliteError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    Ok(busy == 0)
}
