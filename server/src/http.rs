//! The private HTTP control plane (DAEMON.md): every endpoint, body and
//! status code.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rindle_core::{Ast, ColumnType, Engine, QueryId, ResultJson};
use rindle_sqlite::{SqliteCatalog, SqliteError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};

use crate::daemon::{Daemon, MaterializeError, Policy, query_key};
use crate::mutation::{self, TxnRequest};
use crate::validate::check_query;

type Shared = Arc<Daemon>;

/// A response with a status and a JSON body.
pub(crate) struct Reply(pub(crate) StatusCode, pub(crate) Json);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

pub(crate) fn bad(status: StatusCode, message: impl std::fmt::Display) -> Reply {
    Reply(status, json!({ "error": message.to_string() }))
}

fn ok(body: Json) -> Reply {
    Reply(StatusCode::OK, body)
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        bad(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        )
    })
}

/// Reads a control-plane request body the way its endpoint does, with every
/// check that needs no database (JSON shape and types, parameters, modes,
/// policies, the AST reader; fields an endpoint does not know are ignored,
/// as clients of the reference daemon may send more): `Err` carries the 400
/// message. For fuzzing and tests; unknown endpoints are an error too.
pub fn check_request(endpoint: &str, body: &[u8]) -> Result<(), String> {
    let body = Bytes::copy_from_slice(body);
    let message = |r: Reply| r.1["error"].as_str().unwrap_or_default().to_string();
    match endpoint {
        "/materialize" => {
            let req: MaterializeRequest = parse(&body).map_err(message)?;
            if req.mode.as_deref().is_some_and(|m| m != "normalized") {
                return Err("mode must be \"normalized\"".into());
            }
        }
        "/dematerialize" => {
            parse::<DematerializeRequest>(&body).map_err(message)?;
        }
        "/execute-sql-txn" => {
            let req: TxnRequest = parse(&body).map_err(message)?;
            mutation::check(&req).map_err(message)?;
        }
        "/reject-mutation" => {
            parse::<RejectRequest>(&body).map_err(message)?;
        }
        "/execute-sql-read" => {
            let req: ReadRequest = parse(&body).map_err(message)?;
            mutation::params(&req.params).map_err(message)?;
        }
        "/query" => {
            parse::<QueryRequest>(&body).map_err(message)?;
        }
        other => return Err(format!("no such endpoint: {other}")),
    }
    Ok(())
}

/// The control plane's router.
pub(crate) fn router(daemon: Shared) -> Router {
    Router::new()
        .route("/materialize", post(materialize))
        .route("/dematerialize", post(dematerialize))
        .route("/execute-sql-txn", post(execute_sql_txn))
        .route("/reject-mutation", post(reject_mutation))
        .route("/execute-sql-read", post(execute_sql_read))
        .route("/query", post(query))
        .route("/schema", get(schema))
        .route("/stats", post(stats))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { bad(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(middleware::from_fn_with_state(daemon.clone(), guard))
        .with_state(daemon)
}

/// Bearer auth (when configured) and the boot id on every response.
async fn guard(State(d): State<Shared>, req: Request, next: Next) -> Response {
    let authorized = match &d.auth_token {
        None => true,
        Some(token) => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())),
    };
    let mut response = if authorized {
        next.run(req).await
    } else {
        bad(StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&d.boot_id) {
        response.headers_mut().insert("Rindle-Boot-Id", v);
    }
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Runs blocking work (cluster, SQLite) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Reply> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal failure: {e}"),
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterializeRequest {
    ast: Ast,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    policy: Option<PolicyRequest>,
    #[serde(default)]
    lease_ttl_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum PolicyRequest {
    #[serde(rename_all = "camelCase")]
    WhileSubscribed {
        #[serde(default)]
        idle_ttl_ms: Option<u64>,
    },
    Pinned {
        #[serde(default)]
        name: Option<String>,
    },
}

async fn materialize(State(d): State<Shared>, body: Bytes) -> Reply {
    let req: MaterializeRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.mode.as_deref().is_some_and(|m| m != "normalized") {
        return bad(StatusCode::BAD_REQUEST, "mode must be \"normalized\"");
    }
    let ttl = |ms: Option<u64>| {
        Duration::from_millis(ms.unwrap_or(d.default_ttl.as_millis() as u64).max(1))
    };
    let policy = match req.policy {
        None => Policy::WhileSubscribed {
            idle: d.default_ttl,
        },
        Some(PolicyRequest::WhileSubscribed { idle_ttl_ms }) => Policy::WhileSubscribed {
            idle: ttl(idle_ttl_ms),
        },
        Some(PolicyRequest::Pinned { name }) => Policy::Pinned { name },
    };
    let lease_ttl = ttl(req.lease_ttl_ms);
    let daemon = d.clone();
    match blocking(move || daemon.materialize(&req.ast, policy, lease_ttl)).await {
        Err(r) => r,
        Ok(Err(MaterializeError::Refused(e))) => bad(StatusCode::BAD_REQUEST, e),
        Ok(Err(MaterializeError::Hub(e))) => bad(StatusCode::BAD_REQUEST, e),
        Ok(Ok(m)) => ok(json!({
            "materializationId": m.materialization_id,
            "queryKey": m.query_key,
            "leaseToken": m.lease_token,
            "reused": m.reused,
        })),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DematerializeRequest {
    #[serde(default)]
    materialization_id: Option<String>,
    #[serde(default)]
    query_key: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

async fn dematerialize(State(d): State<Shared>, body: Bytes) -> Reply {
    let req: DematerializeRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.materialization_id.is_none() && req.query_key.is_none() && req.name.is_none() {
        return bad(
            StatusCode::BAD_REQUEST,
            "give materializationId, queryKey or name",
        );
    }
    let daemon = d.clone();
    match blocking(move || {
        daemon.dematerialize(
            req.materialization_id.as_deref(),
            req.query_key.as_deref(),
            req.name.as_deref(),
        )
    })
    .await
    {
        Err(r) => r,
        Ok(removed) => ok(json!({ "removed": removed })),
    }
}

async fn execute_sql_txn(State(d): State<Shared>, body: Bytes) -> Reply {
    let req: TxnRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let daemon = d.clone();
    blocking(move || mutation::execute(&daemon, req))
        .await
        .unwrap_or_else(|r| r)
}

#[derive(Deserialize)]
struct RejectRequest {
    #[serde(rename = "clientID")]
    client_id: String,
    mid: u64,
    #[serde(default)]
    #[allow(dead_code)]
    reason: Option<String>,
}

async fn reject_mutation(State(d): State<Shared>, body: Bytes) -> Reply {
    let req: RejectRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let daemon = d.clone();
    blocking(move || mutation::reject(&daemon, &req.client_id, req.mid))
        .await
        .unwrap_or_else(|r| r)
}

#[derive(Deserialize)]
struct ReadRequest {
    sql: String,
    #[serde(default)]
    params: Vec<Json>,
}

async fn execute_sql_read(State(d): State<Shared>, body: Bytes) -> Reply {
    let req: ReadRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let params = match mutation::params(&req.params) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let daemon = d.clone();
    let result = blocking(move || {
        let mut ro = daemon.read_only.lock().unwrap_or_else(|p| p.into_inner());
        ro.query_limited(&req.sql, &params, daemon.read_limits)
    })
    .await;
    match result {
        Err(r) => r,
        Ok(Err(e @ SqliteError::ResultTooLarge { what, .. })) => bad(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{e} ({})",
                if what == "rows" {
                    "readMaxRows"
                } else {
                    "readMaxBytes"
                }
            ),
        ),
        Ok(Err(e @ SqliteError::TimedOut { .. })) => {
            bad(StatusCode::BAD_REQUEST, format!("{e} (readTimeoutMs)"))
        }
        Ok(Err(e)) => bad(StatusCode::BAD_REQUEST, e),
        Ok(Ok(rows)) => {
            d.metrics.reads_served.fetch_add(1, Ordering::Relaxed);
            ok(json!({
                "cols": rows.columns,
                "rows": rows.rows,
            }))
        }
    }
}

#[derive(Deserialize)]
struct QueryRequest {
    ast: Ast,
}

async fn query(State(d): State<Shared>, body: Bytes) -> Reply {
    let req: QueryRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let daemon = d.clone();
    let result = blocking(move || {
        let cv = daemon.cluster.cv();
        let schemas = daemon.schemas();
        check_query(&req.ast, &schemas, daemon.query_limits)
            .map_err(|e| bad(StatusCode::BAD_REQUEST, e))?;
        let catalog = SqliteCatalog::open(&daemon.db_path, &schemas)
            .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let mut engine = Engine::new(catalog);
        let nodes = engine
            .add_query(QueryId(1), &req.ast)
            .map_err(|e| bad(StatusCode::BAD_REQUEST, e))?;
        let format = engine
            .format(QueryId(1))
            .cloned()
            .ok_or_else(|| bad(StatusCode::INTERNAL_SERVER_ERROR, "the query vanished"))?;
        let key = query_key(&serde_json::to_string(&req.ast).unwrap_or_default());
        Ok::<_, Reply>(json!({
            "rows": ResultJson::new(&format, &nodes),
            "cvMin": cv,
            "queryKey": key,
            "bootId": daemon.boot_id,
        }))
    })
    .await;
    match result {
        Err(r) | Ok(Err(r)) => r,
        Ok(Ok(body)) => {
            d.metrics.queries_served.fetch_add(1, Ordering::Relaxed);
            ok(body)
        }
    }
}

fn type_name(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Integer => "integer",
        ColumnType::Real => "real",
        ColumnType::Text => "text",
        ColumnType::Boolean => "boolean",
        ColumnType::Json => "json",
        _ => "unknown",
    }
}

async fn schema(State(d): State<Shared>) -> Reply {
    let mut schemas = d.schemas();
    schemas.retain(|s| !s.name().starts_with("_rindle_"));
    schemas.sort_by(|a, b| a.name().cmp(b.name()));
    let tables: Vec<Json> = schemas
        .iter()
        .map(|s| {
            json!({
                "name": s.name(),
                "columns": s.columns().iter().map(|c| json!({
                    "name": c.name, "type": type_name(c.ty), "nullable": c.nullable,
                })).collect::<Vec<_>>(),
                "primaryKey": s.primary_key().iter().map(|&i| s.columns()[i].name.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    ok(json!({ "tables": tables }))
}

async fn stats(State(d): State<Shared>) -> Reply {
    let (materializations, leases) = d.counts();
    let daemon = d.clone();
    let subscriptions = blocking(move || daemon.subscriptions()).await.unwrap_or(0);
    ok(json!({
        "materializations": materializations,
        "leases": leases,
        "connections": d.connections(),
        "subscriptions": subscriptions,
    }))
}

async fn metrics(State(d): State<Shared>) -> Response {
    let text = crate::metrics::render(&d);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn healthz(State(d): State<Shared>) -> Reply {
    let daemon = d.clone();
    let problems = blocking(move || daemon.health_problems())
        .await
        .unwrap_or_else(|_| vec!["the health check itself failed".into()]);
    if problems.is_empty() {
        ok(json!({ "ok": true }))
    } else {
        Reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ok": false, "problems": problems }),
        )
    }
}
