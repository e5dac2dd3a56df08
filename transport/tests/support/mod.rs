//! Shared by the loopback tests and the latency example: a Cluster on
//! SQLite with an issue tracker, a Hub, leases, and both planes on loopback.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rindle_core::protocol::{ServerMessage, from_compact, read_varint};
use rindle_core::{Ast, Row, TableSchema, row};
use rindle_replica::cluster::{Cluster, ClusterOptions};
use rindle_sqlite::SqliteBackend;
use rindle_transport::{
    AttachRequest, Attached, Client, Feeds, FrameFilter, Hub, Limits, MatId, Plane, Refusal,
    TlsIdentity, quic_endpoint, serve_quic, serve_ws,
};
use serde_json::json;
use tokio::net::TcpListener;

/// Leases: a token names a materialization.
pub(crate) struct Leases {
    pub(crate) hub: Hub<SqliteBackend>,
    pub(crate) tokens: Mutex<HashMap<String, MatId>>,
}

impl Feeds for Leases {
    fn attach(&self, req: AttachRequest<'_>) -> Result<Attached, Refusal> {
        let id = self.tokens.lock().unwrap().get(req.lease_token).copied();
        match id {
            Some(id) => self.hub.attach(id, req),
            None => Err(Refusal::lease("unknown or expired lease")),
        }
    }
}

pub(crate) struct Env {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) cluster: Arc<Cluster<SqliteBackend>>,
    pub(crate) leases: Arc<Leases>,
    pub(crate) schemas: Vec<TableSchema>,
    pub(crate) ws: String,
    pub(crate) quic: SocketAddr,
    pub(crate) pin: String,
    pub(crate) stop: tokio::sync::watch::Sender<bool>,
    pub(crate) plane: Plane,
}

pub(crate) fn issues_query() -> Ast {
    // Open issues, each with its comments.
    serde_json::from_value(json!({
        "table": "issue",
        "where": {"type":"simple","op":"=","left":{"type":"column","name":"open"},
                  "right":{"type":"literal","value":true}},
        "related": [{"correlation":{"parentField":["id"],"childField":["issueID"]},
                     "subquery":{"table":"comment","alias":"comments"}}]
    }))
    .unwrap()
}

impl Env {
    pub(crate) async fn start(
        limits: Limits,
        filter: Option<FrameFilter>,
        options: ClusterOptions,
    ) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (cluster, events) =
            Cluster::<SqliteBackend>::open(dir.path().join("t.db"), options).unwrap();
        cluster
            .transaction(|tx| {
                tx.backend().execute_batch(
                    "CREATE TABLE issue (id INTEGER PRIMARY KEY, title TEXT NOT NULL, open BOOLEAN NOT NULL);
                     CREATE TABLE comment (id INTEGER PRIMARY KEY, issueID INTEGER NOT NULL, body TEXT NOT NULL);
                     CREATE INDEX comment_issue ON comment(issueID);",
                )
            })
            .unwrap();
        let schemas = vec![
            cluster.register_table("issue").unwrap(),
            cluster.register_table("comment").unwrap(),
        ];
        let cluster = Arc::new(cluster);
        cluster
            .transaction(|tx| {
                tx.insert("issue", row![1, "crash", true])?;
                tx.insert("issue", row![2, "typo", false])?;
                tx.insert("comment", row![10, 1, "seen it"])?;
                tx.insert("comment", row![20, 2, "fixed"])
            })
            .unwrap();
        let hub = Hub::start(cluster.clone(), events);
        let leases = Arc::new(Leases {
            hub,
            tokens: Mutex::new(HashMap::new()),
        });
        let mut builder = Plane::builder(leases.clone(), "boot-test").limits(limits);
        if let Some(f) = filter {
            builder = builder.frame_filter(f);
        }
        let (plane, stop) = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws = format!("ws://{}/", listener.local_addr().unwrap());
        tokio::spawn(serve_ws(listener, plane.clone()));
        let identity = TlsIdentity::generate(&["localhost", "127.0.0.1"]).unwrap();
        let pin = identity.sha256_hex();
        let endpoint = quic_endpoint("127.0.0.1:0".parse().unwrap(), &identity).unwrap();
        let quic = endpoint.local_addr().unwrap();
        tokio::spawn(serve_quic(endpoint, plane.clone()));
        Env {
            _dir: dir,
            cluster,
            leases,
            schemas,
            ws,
            quic,
            pin,
            stop,
            plane,
        }
    }

    pub(crate) fn lease(&self, token: &str, ast: &Ast) -> MatId {
        let (id, _) = self.leases.hub.materialize(ast, &self.schemas).unwrap();
        self.leases.tokens.lock().unwrap().insert(token.into(), id);
        id
    }

    /// The WebSocket plane's address, for raw TCP clients.
    pub(crate) fn ws_addr(&self) -> SocketAddr {
        self.ws
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .parse()
            .unwrap()
    }

    pub(crate) async fn client(&self, quic: bool) -> Client {
        if quic {
            Client::connect_quic(self.quic, &self.pin).await.unwrap()
        } else {
            Client::connect_ws(&self.ws).await.unwrap()
        }
    }

    /// Runs a write transaction off the async threads; returns its cv.
    pub(crate) async fn write(&self, rows: Vec<(&'static str, Row)>) -> u64 {
        let c = self.cluster.clone();
        tokio::task::spawn_blocking(move || {
            c.transaction(|tx| {
                for (t, r) in rows {
                    tx.insert(t, r)?;
                }
                Ok::<_, rindle_replica::DbError<rindle_sqlite::SqliteError>>(())
            })
            .unwrap()
            .0
        })
        .await
        .unwrap()
    }
}

/// Reads length-prefixed postcard frames from a QUIC stream.
#[derive(Default)]
pub(crate) struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    /// The next whole frame, or `None` once the stream ends.
    pub(crate) async fn next(&mut self, rx: &mut quinn::RecvStream) -> Option<ServerMessage> {
        loop {
            if let Some((len, used)) = read_varint(&self.buf).unwrap() {
                let end = used + len as usize;
                if self.buf.len() >= end {
                    let msg = from_compact::<ServerMessage>(&self.buf[used..end]).unwrap();
                    self.buf.drain(..end);
                    return Some(msg);
                }
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(std::time::Duration::from_secs(10), rx.read(&mut chunk))
                .await
                .expect("a frame within 10 s")
            {
                Ok(Some(n)) => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }
}
