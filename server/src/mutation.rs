//! `/execute-sql-txn` and `/reject-mutation`: all-or-nothing statements with
//! the client mutation discipline (replay, gap, no advance on failure) and
//! durable idempotency keys, each checked and recorded inside the same
//! transaction as the statements.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use rindle_core::Value;
use rindle_replica::cluster::{ClusterTx, TxError};
use rindle_sqlite::{SqliteBackend, SqliteError};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::daemon::Daemon;
use crate::http::{Reply, bad};

/// The table the client's last mutation id travels in (PROTOCOL.md).
pub(crate) const MUTATIONS: &str = "_rindle_client_mutations";

/// The daemon's own tables, created at start.
pub(crate) const INTERNAL_DDL: &str = "
    CREATE TABLE IF NOT EXISTS _rindle_client_mutations (
        client_id TEXT PRIMARY KEY, last_mutation_id INTEGER);
    CREATE TABLE IF NOT EXISTS _rindle_idempotency (
        key TEXT PRIMARY KEY, cv INTEGER NOT NULL);";

#[derive(Deserialize)]
pub(crate) struct Statement {
    sql: String,
    #[serde(default)]
    params: Vec<Json>,
}

#[derive(Deserialize)]
pub(crate) struct TxnRequest {
    statements: Vec<Statement>,
    #[serde(rename = "clientID", default)]
    client_id: Option<String>,
    #[serde(default)]
    mid: Option<u64>,
    #[serde(rename = "idempotencyKey", default)]
    idempotency_key: Option<String>,
}

/// Why a transaction was not committed.
enum Abort {
    /// `mid` at or below the last: nothing runs.
    Replay { lmid: u64 },
    /// `mid` past last + 1.
    Gap { lmid: u64, mid: u64 },
    /// The idempotency key was already used, by the transaction at `cv`.
    Seen { cv: u64 },
    /// A statement does what a client may not do (400, nothing ran).
    Refused(String),
    /// A statement failed.
    Sql(String),
}

impl From<SqliteError> for Abort {
    fn from(e: SqliteError) -> Abort {
        match e {
            SqliteError::NotPermitted(_) => Abort::Refused(e.to_string()),
            e => Abort::Sql(e.to_string()),
        }
    }
}

/// JSON parameters as values: numbers, strings, booleans, null.
pub(crate) fn params(json: &[Json]) -> Result<Vec<Value>, Reply> {
    json.iter()
        .enumerate()
        .map(|(i, p)| match p {
            Json::Null => Ok(Value::Null),
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::Number(n) => Ok(n
                .as_i64()
                .map(Value::Int)
                .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)))),
            Json::String(s) => Ok(Value::text(s)),
            _ => Err(bad(
                StatusCode::BAD_REQUEST,
                format!("parameter {} is an array or object; give a scalar", i + 1),
            )),
        })
        .collect()
}

fn last_mutation_id(tx: &mut ClusterTx<'_, SqliteBackend>, client: &str) -> Result<u64, Abort> {
    let rows = tx.backend().query(
        "SELECT last_mutation_id FROM _rindle_client_mutations WHERE client_id = ?1",
        &[Value::text(client)],
    )?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(i)) => u64::try_from(*i).unwrap_or(0),
        _ => 0,
    })
}

/// Checks `mid` against the client's last mutation id.
fn check_mid(tx: &mut ClusterTx<'_, SqliteBackend>, client: &str, mid: u64) -> Result<(), Abort> {
    let lmid = last_mutation_id(tx, client)?;
    if mid <= lmid {
        return Err(Abort::Replay { lmid });
    }
    if mid != lmid + 1 {
        return Err(Abort::Gap { lmid, mid });
    }
    Ok(())
}

fn advance(tx: &mut ClusterTx<'_, SqliteBackend>, client: &str, mid: u64) -> Result<(), Abort> {
    tx.backend().execute(
        "INSERT INTO _rindle_client_mutations (client_id, last_mutation_id) VALUES (?1, ?2)
         ON CONFLICT (client_id) DO UPDATE SET last_mutation_id = excluded.last_mutation_id",
        &[Value::text(client), Value::Int(mid as i64)],
    )?;
    Ok(())
}

fn answer(
    daemon: &Daemon,
    result: Result<(u64, ()), TxError<Abort, SqliteError>>,
    client: Option<(&str, u64)>,
) -> Reply {
    let advances = |lmid: u64| client.map(|(c, _)| json!([{ "clientID": c, "lmid": lmid }]));
    match result {
        Ok((cv, ())) => {
            daemon.metrics.commits.fetch_add(1, Ordering::Relaxed);
            let mut body = json!({ "applied": true, "cv": cv });
            if let Some(a) = advances(client.map_or(0, |(_, mid)| mid)) {
                body["lmidAdvances"] = a;
            }
            Reply(StatusCode::OK, body)
        }
        Err(TxError::Aborted(Abort::Replay { lmid })) => {
            let mut body = json!({ "applied": false });
            if let Some(a) = advances(lmid) {
                body["lmidAdvances"] = a;
            }
            Reply(StatusCode::OK, body)
        }
        Err(TxError::Aborted(Abort::Seen { cv })) => {
            Reply(StatusCode::OK, json!({ "applied": false, "cv": cv }))
        }
        Err(TxError::Aborted(Abort::Gap { lmid, mid })) => bad(
            StatusCode::CONFLICT,
            format!(
                "mutation {mid} is out of order: the last applied is {lmid}, send {} next",
                lmid + 1
            ),
        ),
        Err(TxError::Aborted(Abort::Refused(m))) => bad(StatusCode::BAD_REQUEST, m),
        Err(TxError::Aborted(Abort::Sql(m))) => {
            daemon
                .metrics
                .failed_transactions
                .fetch_add(1, Ordering::Relaxed);
            bad(StatusCode::INTERNAL_SERVER_ERROR, m)
        }
        Err(TxError::Db(e)) => {
            daemon
                .metrics
                .failed_transactions
                .fetch_add(1, Ordering::Relaxed);
            bad(StatusCode::INTERNAL_SERVER_ERROR, e)
        }
        Err(_) => bad(StatusCode::INTERNAL_SERVER_ERROR, "the transaction failed"),
    }
}

/// A statement and its parameters, checked.
type Checked<'r> = (Option<(&'r str, u64)>, Vec<(&'r str, Vec<Value>)>);

/// The checks of a transaction request that need no database.
pub(crate) fn check(req: &TxnRequest) -> Result<Checked<'_>, Reply> {
    let client = match (&req.client_id, req.mid) {
        (Some(c), Some(m)) => Some((c.as_str(), m)),
        (None, None) => None,
        _ => return Err(bad(StatusCode::BAD_REQUEST, "clientID and mid go together")),
    };
    if req.statements.is_empty() {
        return Err(bad(StatusCode::BAD_REQUEST, "statements is empty"));
    }
    let mut statements = Vec::with_capacity(req.statements.len());
    for s in &req.statements {
        statements.push((s.sql.as_str(), params(&s.params)?));
    }
    Ok((client, statements))
}

/// `/execute-sql-txn`. Blocking.
pub(crate) fn execute(daemon: &Daemon, req: TxnRequest) -> Reply {
    let (client, statements) = match check(&req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let key = req.idempotency_key.as_deref();
    let result = daemon.cluster.transaction(|tx| {
        // Every statement is checked before any runs.
        for (sql, _) in &statements {
            tx.backend().check_client(sql)?;
        }
        if let Some(k) = key {
            let seen = tx.backend().query(
                "SELECT cv FROM _rindle_idempotency WHERE key = ?1",
                &[Value::text(k)],
            )?;
            if let Some(Value::Int(cv)) = seen.rows.first().and_then(|r| r.first()) {
                return Err(Abort::Seen { cv: *cv as u64 });
            }
        }
        if let Some((c, mid)) = client {
            check_mid(tx, c, mid)?;
        }
        for (sql, p) in &statements {
            tx.backend().execute_client(sql, p)?;
        }
        if let Some((c, mid)) = client {
            advance(tx, c, mid)?;
        }
        if let Some(k) = key {
            let cv = tx.cv();
            tx.backend().execute(
                "INSERT INTO _rindle_idempotency (key, cv) VALUES (?1, ?2)",
                &[Value::text(k), Value::Int(cv as i64)],
            )?;
        }
        Ok(())
    });
    answer(daemon, result, client)
}

/// `/reject-mutation`: advances the last mutation id alone. Blocking.
pub(crate) fn reject(daemon: &Daemon, client: &str, mid: u64) -> Reply {
    let result = daemon.cluster.transaction(|tx| {
        check_mid(tx, client, mid)?;
        advance(tx, client, mid)
    });
    match result {
        Ok((cv, ())) => {
            daemon
                .metrics
                .rejected_mutations
                .fetch_add(1, Ordering::Relaxed);
            Reply(StatusCode::OK, json!({ "cv": cv, "lmid": mid }))
        }
        Err(TxError::Aborted(Abort::Replay { lmid })) => Reply(
            StatusCode::OK,
            json!({ "cv": daemon.cluster.cv(), "lmid": lmid }),
        ),
        other => answer(daemon, other, Some((client, mid))),
    }
}
