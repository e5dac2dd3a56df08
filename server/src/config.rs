//! The daemon's configuration (DAEMON.md): JSON, camelCase, unknown keys
//! refused by name.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ServerError;

/// A table to register at start.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableConfig {
    /// The table's name.
    pub name: String,
    /// SQL run first (use `IF NOT EXISTS` so restarts are safe).
    #[serde(default)]
    pub create_sql: Option<String>,
}

/// Everything `rindled` can be told.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Config {
    /// The SQLite file (WAL journal mode).
    pub db: PathBuf,
    /// The address every plane binds.
    pub bind_host: String,
    /// The private control plane; 0 = ephemeral.
    pub http_port: u16,
    /// The public WebSocket plane; 0 = ephemeral.
    pub ws_port: u16,
    /// The public QUIC plane (UDP); 0 = ephemeral; `None` (JSON `null`)
    /// disables it.
    pub quic_port: Option<u16>,
    /// PEM certificate for QUIC; generated self-signed when absent.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for QUIC.
    pub tls_key: Option<PathBuf>,
    /// Bearer token the control plane requires, when set.
    pub auth_token: Option<String>,
    /// IVM worker threads.
    pub n_workers: usize,
    /// Lease life without renewal or subscribers (ms).
    pub default_lease_ttl_ms: u64,
    /// Tables to register, in order.
    pub tables: Vec<TableConfig>,
    /// The WAL's bound in bytes: once the log passes half of it, it is
    /// checkpointed and truncated before the next transaction (or within
    /// 100 ms when idle).
    pub wal_max_bytes: u64,
    /// The deepest query `/materialize` and `/query` accept: each `related`
    /// child or EXISTS subquery is one level below its parent.
    pub max_query_depth: usize,
    /// The most parts (levels, conditions, relationships) a query may have.
    pub max_query_nodes: usize,
    /// How long one `/execute-sql-read` statement may run (ms).
    pub read_timeout_ms: u64,
    /// The most rows one `/execute-sql-read` may return.
    pub read_max_rows: usize,
    /// The most bytes of cell data one `/execute-sql-read` may return.
    pub read_max_bytes: usize,
    /// `/healthz` reports the writer or a worker that has spent this long
    /// (ms) on one transaction or command as stalled.
    pub health_stall_ms: u64,
    /// How long a stop may wait for in-flight requests, subscribers and
    /// derivations (ms) before cancelling them, checkpointing and exiting.
    pub shutdown_timeout_ms: u64,
    /// The most time one live query may spend deriving one transaction's
    /// changes (ms); past it, that query alone is torn down and its
    /// subscribers get a retryable `queryError`.
    pub derive_budget_ms: u64,
    /// The most time hydrating one query may take (ms); past it,
    /// `/materialize` fails naming this limit.
    pub hydrate_budget_ms: u64,
    /// A control-plane connection that takes longer than this (ms) to send a
    /// request's headers, or sits idle that long between requests, is closed.
    pub http_header_timeout_ms: u64,
    /// A public-plane connection that has not completed its WebSocket
    /// upgrade or QUIC handshake after this long (ms) is closed.
    pub handshake_timeout_ms: u64,
    /// A public-plane connection that has sent no `init` or `subscribe`
    /// after this long (ms) gets an `error` and is closed.
    pub first_message_timeout_ms: u64,
    /// Connections one IP address may hold open on each public plane.
    pub max_connections_per_ip: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            db: PathBuf::from("rindle.db"),
            bind_host: "127.0.0.1".into(),
            http_port: 7600,
            ws_port: 7601,
            quic_port: Some(7602),
            tls_cert: None,
            tls_key: None,
            auth_token: None,
            n_workers: 2,
            default_lease_ttl_ms: 30_000,
            tables: Vec::new(),
            wal_max_bytes: rindle_sqlite::DEFAULT_WAL_MAX_BYTES,
            max_query_depth: 10,
            max_query_nodes: 500,
            read_timeout_ms: 5_000,
            read_max_rows: 100_000,
            read_max_bytes: 32 << 20,
            health_stall_ms: 30_000,
            shutdown_timeout_ms: 10_000,
            derive_budget_ms: 10_000,
            hydrate_budget_ms: 30_000,
            http_header_timeout_ms: 10_000,
            handshake_timeout_ms: 10_000,
            first_message_timeout_ms: 30_000,
            max_connections_per_ip: 64,
        }
    }
}

impl Config {
    /// Parses a configuration; relative paths stay relative to the working
    /// directory.
    pub fn from_json(text: &str) -> Result<Config, ServerError> {
        // serde reads a struct from an array too (fields by position): a
        // configuration is an object.
        if !text.trim_start().starts_with('{') {
            return Err(ServerError::Config(
                "invalid configuration: expected a JSON object".into(),
            ));
        }
        let config: Config = serde_json::from_str(text)
            .map_err(|e| ServerError::Config(format!("invalid configuration: {e}")))?;
        config.check()?;
        Ok(config)
    }

    /// Reads and parses a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("cannot read {}: {e}", path.display())))?;
        Config::from_json(&text).map_err(|e| match e {
            ServerError::Config(m) => ServerError::Config(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    fn check(&self) -> Result<(), ServerError> {
        if self.n_workers == 0 {
            return Err(ServerError::Config("nWorkers must be at least 1".into()));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ServerError::Config(
                "tlsCert and tlsKey must be given together".into(),
            ));
        }
        if self.wal_max_bytes < 64 * 1024 {
            return Err(ServerError::Config(
                "walMaxBytes must be at least 65536".into(),
            ));
        }
        if self.read_timeout_ms == 0 || self.read_max_rows == 0 || self.read_max_bytes == 0 {
            return Err(ServerError::Config(
                "readTimeoutMs, readMaxRows and readMaxBytes must be positive".into(),
            ));
        }
        if self.handshake_timeout_ms == 0
            || self.first_message_timeout_ms == 0
            || self.max_connections_per_ip == 0
        {
            return Err(ServerError::Config(
                "handshakeTimeoutMs, firstMessageTimeoutMs and maxConnectionsPerIp must be positive"
                    .into(),
            ));
        }
        if self.http_header_timeout_ms == 0 {
            return Err(ServerError::Config(
                "httpHeaderTimeoutMs must be positive".into(),
            ));
        }
        if self.derive_budget_ms == 0 || self.hydrate_budget_ms == 0 {
            return Err(ServerError::Config(
                "deriveBudgetMs and hydrateBudgetMs must be positive".into(),
            ));
        }
        if self.health_stall_ms == 0 {
            return Err(ServerError::Config("healthStallMs must be positive".into()));
        }
        if self.max_query_depth == 0 || self.max_query_nodes == 0 {
            return Err(ServerError::Config(
                "maxQueryDepth and maxQueryNodes must be positive".into(),
            ));
        }
        if self.default_lease_ttl_ms == 0 {
            return Err(ServerError::Config(
                "defaultLeaseTtlMs must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_an_object_and_unknown_keys_are_named() {
        let err = |text: &str| match Config::from_json(text) {
            Err(ServerError::Config(m)) => m,
            other => panic!("{text}: {other:?}"),
        };
        // serde would read a struct from an array by position.
        assert!(err(r#"["issues.db"]"#).contains("expected a JSON object"));
        assert!(err("42").contains("expected a JSON object"));
        assert!(err(r#"{"walMaxByte": 1}"#).contains("walMaxByte"));
        assert!(err(r#"{"walMaxBytes": 1}"#).contains("walMaxBytes"));
        let c = Config::from_json(r#" {"db": "x.db", "walMaxBytes": 1048576}"#).unwrap();
        assert_eq!((c.db.to_str(), c.wal_max_bytes), (Some("x.db"), 1 << 20));
    }
}
