//! `rindled`, the Rindle daemon (DAEMON.md), as a library: [`run`] composes
//! the SQLite backend, the Cluster of IVM workers, the [`rindle_transport`]
//! hub and public planes (WebSocket, QUIC) and the private HTTP control
//! plane, and serves until its shutdown future resolves. The `rindled`
//! binary is a thin `main` over it; tests run it in-process or spawn the
//! binary on port 0.

mod config;
mod daemon;
mod error;
mod http;
mod metrics;
mod mutation;
mod serve;
mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rindle_replica::cluster::{Cluster, ClusterOptions};
use rindle_sqlite::{ReadOnly, SqliteBackend};
use rindle_transport::{Hub, Limits, Plane, TlsIdentity, quic_endpoint, serve_quic, serve_ws};
use serde::Serialize;
use tokio::net::TcpListener;

pub use config::{Config, TableConfig};
pub use error::ServerError;
pub use http::check_request;

use daemon::{Daemon, DaemonFeeds};

/// What the daemon prints once, on stdout, when it is ready.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    /// Always true.
    pub ready: bool,
    /// The control plane's port.
    pub http_port: u16,
    /// The WebSocket plane's port.
    pub ws_port: u16,
    /// The QUIC plane's port, when enabled.
    pub quic_port: Option<u16>,
    /// This process's boot id.
    pub boot_id: String,
    /// SHA-256 of the QUIC certificate, for clients to pin.
    pub quic_cert_sha256: Option<String>,
}

fn db_err(e: impl std::fmt::Display) -> ServerError {
    ServerError::Database(e.to_string())
}

async fn bind(plane: &'static str, host: &str, port: u16) -> Result<TcpListener, ServerError> {
    TcpListener::bind((host, port))
        .await
        .map_err(|e| ServerError::Bind {
            plane,
            addr: format!("{host}:{port}"),
            reason: e.to_string(),
        })
}

/// Opens the database, registers the tables, binds every plane, calls
/// `on_ready`, and serves until `shutdown` resolves; then stops accepting,
/// finishes in-flight requests and transactions, closes subscriptions
/// cleanly and closes the database (checkpointing its WAL).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), ServerError> {
    let cfg = config.clone();
    let (cluster, events, schemas) = tokio::task::spawn_blocking(move || open(&cfg))
        .await
        .map_err(|e| ServerError::Io(e.to_string()))??;
    let wal_stats = cluster.with_backend(|b| {
        b.set_wal_max_bytes(config.wal_max_bytes);
        b.wal_stats()
    });
    let cluster = Arc::new(cluster);
    let hub = Hub::start(cluster.clone(), events);
    let read_only = ReadOnly::open(&config.db).map_err(db_err)?;
    let health_reader = ReadOnly::open(&config.db).map_err(db_err)?;
    let daemon = Arc::new(Daemon::new(
        cluster.clone(),
        hub.clone(),
        schemas,
        read_only,
        health_reader,
        wal_stats,
        &config,
    ));
    let mut limits = Limits::default();
    limits.handshake_timeout = Duration::from_millis(config.handshake_timeout_ms);
    limits.first_message_timeout = Duration::from_millis(config.first_message_timeout_ms);
    limits.max_connections_per_ip = config.max_connections_per_ip;
    let (plane, stop_planes) =
        Plane::builder(Arc::new(DaemonFeeds(daemon.clone())), &daemon.boot_id)
            .limits(limits)
            .build();
    *daemon.plane.lock().unwrap_or_else(|p| p.into_inner()) = Some(plane.clone());

    let host = config.bind_host.as_str();
    let http_listener = bind("http", host, config.http_port).await?;
    let ws_listener = bind("websocket", host, config.ws_port).await?;
    let local = |l: &TcpListener| l.local_addr().map(|a| a.port()).unwrap_or_default();
    let (http_port, ws_port) = (local(&http_listener), local(&ws_listener));
    let mut quic = None;
    let mut cert_sha = None;
    if let Some(port) = config.quic_port {
        let identity = match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) => TlsIdentity::from_pem_files(c, k),
            _ => TlsIdentity::generate(&["localhost", host]),
        }
        .map_err(|e| ServerError::Tls(e.to_string()))?;
        let addr: SocketAddr = tokio::net::lookup_host((host, port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ServerError::Bind {
                plane: "quic",
                addr: format!("{host}:{port}"),
                reason: "the host does not resolve".into(),
            })?;
        let endpoint = quic_endpoint(addr, &identity).map_err(|e| ServerError::Bind {
            plane: "quic",
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
        cert_sha = Some(identity.sha256_hex());
        quic = Some(endpoint);
    }
    let ready = Ready {
        ready: true,
        http_port,
        ws_port,
        quic_port: quic
            .as_ref()
            .and_then(|e| e.local_addr().ok())
            .map(|a| a.port()),
        boot_id: daemon.boot_id.clone(),
        quic_cert_sha256: cert_sha,
    };

    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = http::router(daemon.clone());
    let header_timeout = Duration::from_millis(config.http_header_timeout_ms);
    let http = tokio::spawn(serve::serve_http(
        http_listener,
        router,
        header_timeout,
        async move {
            let _ = http_stop_rx.await;
        },
    ));
    let ws = {
        let (d, plane) = (daemon.clone(), plane.clone());
        tokio::spawn(async move {
            let r = serve_ws(ws_listener, plane).await;
            d.planes_up
                .ws
                .store(false, std::sync::atomic::Ordering::SeqCst);
            r
        })
    };
    let quic_task = quic.map(|e| {
        let (d, plane) = (daemon.clone(), plane.clone());
        tokio::spawn(async move {
            let r = serve_quic(e, plane).await;
            if let Some(q) = &d.planes_up.quic {
                q.store(false, std::sync::atomic::Ordering::SeqCst);
            }
            r
        })
    });
    let sweeper = {
        let d = daemon.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let d = d.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    d.sweep();
                    // An idle daemon's WAL is bounded too.
                    if let Err(e) = d.cluster.maintain_if_due() {
                        tracing::warn!(error = %e, "WAL upkeep failed");
                    }
                })
                .await;
            }
        })
    };
    tracing::info!(http_port, ws_port, quic_port = ?ready.quic_port, boot_id = %ready.boot_id, "ready");
    on_ready(&ready);

    shutdown.await;
    tracing::info!("shutting down");
    // Everything below is bounded by the shutdown timeout: past it, what is
    // still running is cancelled, the WAL is checkpointed and we exit.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(config.shutdown_timeout_ms);
    // Stop accepting; in-flight requests (and their transactions) finish.
    let _ = http_stop_tx.send(());
    let http_abort = http.abort_handle();
    if tokio::time::timeout_at(deadline, http).await.is_err() {
        tracing::warn!("in-flight control-plane requests outlived the shutdown timeout");
        http_abort.abort();
    }
    // Close every subscription cleanly (a subscriber that does not read is
    // not waited for past the deadline).
    let _ = stop_planes.send(true);
    let ws_abort = ws.abort_handle();
    if tokio::time::timeout_at(deadline, ws).await.is_err() {
        ws_abort.abort();
    }
    if let Some(q) = quic_task {
        let abort = q.abort_handle();
        if tokio::time::timeout_at(deadline, q).await.is_err() {
            abort.abort();
        }
    }
    sweeper.abort();
    let _ = sweeper.await;
    drop(plane);
    *daemon.plane.lock().unwrap_or_else(|p| p.into_inner()) = None;
    drop(daemon);
    drop(hub);
    // The last handle closes the cluster: workers stop, the writer and the
    // readers close. Blocking work still in flight may hold one until its
    // derivation ends; past the deadline, the workers' reads are cancelled.
    let db = config.db.clone();
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    tokio::task::spawn_blocking(move || {
        let until = std::time::Instant::now() + left;
        let mut cluster = cluster;
        let mut cancelled = false;
        loop {
            match Arc::try_unwrap(cluster) {
                Ok(c) => {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    if !c.shutdown_within(left, Duration::from_secs(1)) {
                        tracing::warn!("a worker did not stop in time; leaving it");
                    }
                    break;
                }
                Err(still_shared) => {
                    cluster = still_shared;
                    let now = std::time::Instant::now();
                    if now >= until && !cancelled {
                        tracing::warn!(
                            "work in flight outlived the shutdown timeout; cancelling it"
                        );
                        cluster.cancel();
                        cancelled = true;
                    } else if now >= until + Duration::from_secs(1) {
                        tracing::warn!("the cluster is still in use; stopping without it");
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        match rindle_sqlite::checkpoint(&db) {
            Ok(true) => tracing::info!("wal checkpointed"),
            Ok(false) => tracing::warn!("the wal could not be fully checkpointed (readers open)"),
            Err(e) => tracing::warn!(error = %e, "checkpointing the wal failed"),
        }
    })
    .await
    .map_err(|e| ServerError::Io(e.to_string()))?;
    tracing::info!("stopped");
    Ok(())
}

type Opened = (
    Cluster<SqliteBackend>,
    std::sync::mpsc::Receiver<rindle_replica::cluster::ClusterEvent>,
    Vec<rindle_core::TableSchema>,
);

/// Opens the database and the cluster, runs each table's `createSql`, and
/// registers the tables and the daemon's own mutation table.
fn open(config: &Config) -> Result<Opened, ServerError> {
    let (cluster, events) = Cluster::<SqliteBackend>::open(&config.db, {
        let mut o = ClusterOptions::new(config.n_workers);
        o.derive_budget = Some(Duration::from_millis(config.derive_budget_ms));
        o.hydrate_budget = Some(Duration::from_millis(config.hydrate_budget_ms));
        o
    })
    .map_err(|e| ServerError::Database(format!("{}: {e}", config.db.display())))?;
    cluster
        .transaction(|tx| tx.backend().execute_batch(mutation::INTERNAL_DDL))
        .map_err(|e| ServerError::Database(format!("{}: {e}", config.db.display())))?;
    for t in &config.tables {
        if let Some(sql) = &t.create_sql {
            cluster
                .transaction(|tx| tx.backend().execute_batch(sql))
                .map_err(|e| ServerError::Table {
                    table: t.name.clone(),
                    reason: format!("createSql failed: {e}"),
                })?;
        }
    }
    let mut schemas = Vec::new();
    for name in config
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .chain([mutation::MUTATIONS])
    {
        let schema = cluster
            .register_table(name)
            .map_err(|e| ServerError::Table {
                table: name.into(),
                reason: e.to_string(),
            })?;
        schemas.push(schema);
    }
    Ok((cluster, events, schemas))
}
