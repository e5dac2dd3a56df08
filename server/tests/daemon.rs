//! The real `rindled` binary, spawned on port 0: start-up, the control plane's
//! endpoints and status codes, writes arriving on both public planes with the
//! `cv` the control plane returned, the mutation discipline, read-only
//! refusals, leases, malformed requests, and restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rindle_core::protocol::Op;
use rindle_transport::{Client, ClientEvent};
use serde_json::{Value as Json, json};

const BIN: &str = env!("CARGO_BIN_EXE_rindled");

struct Daemon {
    child: Child,
    ready: Json,
}

impl Daemon {
    fn start(dir: &Path, extra: Json) -> Daemon {
        Daemon::start_limited(dir, extra, None)
    }

    /// Starts the daemon with at most `nofile` open file descriptors.
    fn start_limited(dir: &Path, extra: Json, nofile: Option<u32>) -> Daemon {
        let mut config = json!({
            "db": dir.join("d.db"),
            "httpPort": 0, "wsPort": 0, "quicPort": 0,
            "tables": [
                {"name": "issue", "createSql": "CREATE TABLE IF NOT EXISTS issue (id INTEGER PRIMARY KEY, title TEXT NOT NULL, open BOOLEAN NOT NULL)"},
                {"name": "comment", "createSql": "CREATE TABLE IF NOT EXISTS comment (id INTEGER PRIMARY KEY, issueID INTEGER NOT NULL, body TEXT NOT NULL); CREATE INDEX IF NOT EXISTS comment_issue ON comment(issueID)"}
            ]
        });
        if let (Json::Object(c), Json::Object(e)) = (&mut config, extra) {
            c.extend(e);
        }
        let path = dir.join("config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let mut command = match nofile {
            None => {
                let mut c = Command::new(BIN);
                c.arg("--config").arg(&path);
                c
            }
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" --config \"$1\""))
                    .arg(BIN)
                    .arg(&path);
                c
            }
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(ready["ready"], true);
        Daemon { child, ready }
    }

    fn port(&self, key: &str) -> u16 {
        self.ready[key].as_u64().unwrap() as u16
    }

    fn post(&self, path: &str, body: &str) -> Response {
        http(self.port("httpPort"), "POST", path, body, None)
    }

    fn call(&self, path: &str, body: Json) -> Json {
        let r = self.post(path, &body.to_string());
        assert_eq!(r.status, 200, "{path} {body}: {}", r.body);
        r.json()
    }

    /// SIGTERM; returns the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Daemon {
    /// SIGKILL: no clean stop, no checkpoint.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::forget(self);
    }

    fn metric(&self, name: &str) -> u64 {
        let r = http(self.port("httpPort"), "GET", "/metrics", "", None);
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {}", r.body))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: String,
    body: String,
}

impl Response {
    fn json(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// A minimal HTTP/1.1 request (the tests need nothing more).
fn http(port: u16, method: &str, path: &str, body: &str, auth: Option<&str>) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response {
        status,
        headers: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn open_issues() -> Json {
    json!({
        "table": "issue",
        "where": {"type":"simple","op":"=","left":{"type":"column","name":"open"},"right":{"type":"literal","value":true}},
        "related": [{"correlation":{"parentField":["id"],"childField":["issueID"]},
                     "subquery":{"table":"comment","alias":"comments"}}]
    })
}

/// The same query with every object's keys in reverse order.
fn reversed(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m.iter().rev() {
                out.insert(k.clone(), reversed(v));
            }
            Json::Object(out)
        }
        Json::Array(a) => Json::Array(a.iter().map(reversed).collect()),
        v => v.clone(),
    }
}

fn sql(statements: &[&str]) -> Json {
    Json::Array(statements.iter().map(|s| json!({"sql": s})).collect())
}

#[test]
fn auth_boot_id_and_malformed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), json!({"authToken": "s3cret"}));
    let port = d.port("httpPort");
    let boot = d.ready["bootId"].as_str().unwrap().to_string();
    let r = http(port, "GET", "/schema", "", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("Rindle-Boot-Id").as_deref(), Some(boot.as_str()));
    let r = http(port, "GET", "/schema", "", Some("wrong"));
    assert_eq!(r.status, 401);
    let r = http(port, "GET", "/schema", "", Some("s3cret"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Rindle-Boot-Id").as_deref(), Some(boot.as_str()));
    let tables = r.json()["tables"].clone();
    assert_eq!(tables[0]["name"], "comment");
    assert_eq!(tables[1]["name"], "issue");
    assert_eq!(tables[1]["primaryKey"], json!(["id"]));
    assert_eq!(
        tables[1]["columns"][2],
        json!({"name": "open", "type": "boolean", "nullable": false})
    );
    assert_eq!(tables.as_array().unwrap().len(), 2, "no _rindle_ tables");

    let post = |path: &str, body: &str| http(port, "POST", path, body, Some("s3cret"));
    for (path, body, needle) in [
        ("/materialize", "{not json", "invalid request body"),
        ("/materialize", "{}", "missing field `ast`"),
        ("/materialize", r#"{"ast":{"table":"nope"}}"#, "nope"),
        (
            "/materialize",
            r#"{"ast":{"table":"issue","where":{"type":"simple","op":"=","left":{"type":"column","name":"ghost"},"right":{"type":"literal","value":1}}}}"#,
            "ghost",
        ),
        (
            "/materialize",
            r#"{"ast":{"table":"issue"},"mode":"nested"}"#,
            "normalized",
        ),
        (
            "/execute-sql-txn",
            r#"{"statements":[{"sql":"SELECT 1","params":[[1]]}]}"#,
            "parameter 1",
        ),
        ("/execute-sql-txn", r#"{"statements":[]}"#, "empty"),
        (
            "/execute-sql-txn",
            r#"{"statements":[{"sql":"x"}],"clientID":"c"}"#,
            "clientID and mid",
        ),
        ("/execute-sql-read", r#"{"sql":"SELEC 1"}"#, "syntax"),
        (
            "/query",
            r#"{"ast":{"table":"issue","orderBy":[["ghost","asc"]]}}"#,
            "ghost",
        ),
        ("/dematerialize", "{}", "materializationId"),
        (
            "/reject-mutation",
            r#"{"clientID":"c"}"#,
            "missing field `mid`",
        ),
    ] {
        let r = post(path, body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(needle), "{path} {body}: {error}");
    }
    assert_eq!(post("/nowhere", "{}").status, 404);
    assert_eq!(
        http(port, "GET", "/healthz", "", Some("s3cret")).status,
        200
    );
    let metrics = http(port, "GET", "/metrics", "", Some("s3cret"));
    assert!(
        metrics.body.contains("rindle_commits_total"),
        "{}",
        metrics.body
    );
    assert!(d.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_arrive_on_both_planes_with_the_control_planes_cv() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), json!({}));
    let first = d.call("/materialize", json!({"ast": open_issues()}));
    assert_eq!(first["reused"], false);
    let again = d.call("/materialize", json!({"ast": reversed(&open_issues())}));
    assert_eq!(again["reused"], true);
    assert_eq!(again["queryKey"], first["queryKey"]);
    assert_eq!(again["materializationId"], first["materializationId"]);
    assert_ne!(again["leaseToken"], first["leaseToken"]);
    let lease = first["leaseToken"].as_str().unwrap().to_string();

    let ws_url = format!("ws://127.0.0.1:{}/", d.port("wsPort"));
    let quic_addr = format!("127.0.0.1:{}", d.port("quicPort")).parse().unwrap();
    let pin = d.ready["quicCertSha256"].as_str().unwrap().to_string();
    let mut clients = vec![
        Client::connect_ws(&ws_url).await.unwrap(),
        Client::connect_quic(quic_addr, &pin).await.unwrap(),
    ];
    for c in &mut clients {
        c.init("app").await.unwrap();
        c.subscribe(1, &lease).await.unwrap();
        loop {
            match next(c).await {
                ClientEvent::Snapshot { query_id: 1, .. } => break,
                ClientEvent::Progress { .. } => {}
                e => panic!("{e:?}"),
            }
        }
    }
    let body = json!({"statements": [
        {"sql": "INSERT INTO issue VALUES (?1, ?2, ?3)", "params": [1, "crash", true]},
        {"sql": "INSERT INTO comment VALUES (10, 1, 'seen it')"},
    ]});
    let r = d.call("/execute-sql-txn", body);
    assert_eq!(r["applied"], true);
    let cv = r["cv"].as_u64().unwrap();
    for c in &mut clients {
        let (ops, got) = loop {
            match next(c).await {
                ClientEvent::Batch { ops, cv, .. } => break (ops, cv),
                ClientEvent::Progress { .. } => {}
                e => panic!("{e:?}"),
            }
        };
        assert_eq!(got, cv);
        assert_eq!(ops.len(), 2);
        assert!(ops.contains(&Op::Add {
            table: "issue".into(),
            row: rindle_core::row![1, "crash", true]
        }));
        assert!(ops.contains(&Op::Add {
            table: "comment".into(),
            row: rindle_core::row![10, 1, "seen it"]
        }));
    }
    // The one-shot query sees the same, nested.
    let q = d.call("/query", json!({"ast": open_issues()}));
    assert_eq!(
        q["rows"],
        json!([{"id": 1, "title": "crash", "open": true, "comments": [{"id": 10, "issueID": 1, "body": "seen it"}]}])
    );
    assert!(q["cvMin"].as_u64().unwrap() >= cv);
    let metrics = http(d.port("httpPort"), "GET", "/metrics", "", None).body;
    let key = first["queryKey"].as_str().unwrap();
    assert!(
        metrics.contains(&format!("rindle_query_derives_total{{query=\"{key}\"}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains("rindle_frames_sent_total{plane=\"quic\"}"),
        "{metrics}"
    );
    let stats = d.call("/stats", json!({}));
    assert_eq!(stats["subscriptions"], 2);
    assert_eq!(stats["connections"], 2);
    assert!(d.stop().success());
}

async fn next(c: &mut Client) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(10), c.next_event())
        .await
        .expect("an event within 10 s")
        .expect("open")
}

#[test]
fn the_mutation_discipline_and_idempotency_keys_hold_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), json!({}));
    let txn = |mid: u64, stmt: &str| {
        json!({"statements": sql(&[stmt]), "clientID": "c1", "mid": mid}).to_string()
    };
    let r = d.post(
        "/execute-sql-txn",
        &txn(1, "INSERT INTO issue VALUES (1, 'a', 1)"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["lmidAdvances"],
        json!([{"clientID": "c1", "lmid": 1}])
    );
    // Replay: nothing runs.
    let r = d.post(
        "/execute-sql-txn",
        &txn(1, "INSERT INTO issue VALUES (2, 'b', 1)"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"applied": false, "lmidAdvances": [{"clientID": "c1", "lmid": 1}]})
    );
    // A gap: 409, nothing applied.
    let r = d.post(
        "/execute-sql-txn",
        &txn(3, "INSERT INTO issue VALUES (3, 'c', 1)"),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    // A failing statement: 500, all rolled back, the mid does not advance.
    let body = json!({"statements": sql(&["INSERT INTO issue VALUES (4, 'd', 1)", "INSERT INTO issue VALUES (1, 'dup', 1)"]), "clientID": "c1", "mid": 2});
    let r = d.post("/execute-sql-txn", &body.to_string());
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("UNIQUE"),
        "{}",
        r.body
    );
    // The same mid, corrected, applies.
    let r = d.post(
        "/execute-sql-txn",
        &txn(2, "INSERT INTO issue VALUES (4, 'd', 1)"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // reject-mutation advances alone.
    let r = d.call(
        "/reject-mutation",
        json!({"clientID": "c1", "mid": 3, "reason": "invalid"}),
    );
    assert_eq!(r["lmid"], 3);
    assert_eq!(
        d.post(
            "/reject-mutation",
            &json!({"clientID": "c1", "mid": 9}).to_string()
        )
        .status,
        409
    );
    // Idempotency keys.
    let keyed = json!({"statements": sql(&["INSERT INTO issue VALUES (5, 'e', 0)"]), "idempotencyKey": "k-5"}).to_string();
    let first = d.post("/execute-sql-txn", &keyed).json();
    assert_eq!(first["applied"], true);
    let second = d.post("/execute-sql-txn", &keyed).json();
    assert_eq!(second, json!({"applied": false, "cv": first["cv"]}));
    let rows = d.call(
        "/execute-sql-read",
        json!({"sql": "SELECT id FROM issue ORDER BY id"}),
    );
    assert_eq!(rows["rows"], json!([[1], [4], [5]]));
    let boot = d.ready["bootId"].clone();

    // Restart: the rows, the last mutation id and the keys survive; the boot
    // id changes. A clean stop checkpointed the WAL into the file.
    assert!(d.stop().success());
    let wal = dir.path().join("d.db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    let d = Daemon::start(dir.path(), json!({}));
    assert_ne!(d.ready["bootId"], boot);
    let rows = d.call(
        "/execute-sql-read",
        json!({"sql": "SELECT id FROM issue ORDER BY id"}),
    );
    assert_eq!(rows["rows"], json!([[1], [4], [5]]));
    assert_eq!(d.post("/execute-sql-txn", &keyed).json()["applied"], false);
    let r = d.post(
        "/execute-sql-txn",
        &txn(3, "INSERT INTO issue VALUES (6, 'f', 1)"),
    );
    assert_eq!(
        r.json()["applied"],
        false,
        "mid 3 was rejected before the restart"
    );
    let r = d.post(
        "/execute-sql-txn",
        &txn(4, "INSERT INTO issue VALUES (6, 'f', 1)"),
    );
    assert_eq!(r.json()["applied"], true);
    assert!(d.stop().success());
}

#[test]
fn read_only_sql_refuses_writes_ddl_and_attach_and_leaves_data_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), json!({}));
    d.call(
        "/execute-sql-txn",
        json!({"statements": sql(&["INSERT INTO issue VALUES (1, 'a', 1)"])}),
    );
    for stmt in [
        "INSERT INTO issue VALUES (2, 'b', 1)",
        "UPDATE issue SET title = 'z'",
        "DELETE FROM issue RETURNING id",
        "DROP TABLE issue",
        "CREATE TABLE x (y)",
        "ATTACH DATABASE 'other.db' AS other",
    ] {
        let r = d.post("/execute-sql-read", &json!({"sql": stmt}).to_string());
        assert_eq!(r.status, 400, "{stmt}: {}", r.body);
    }
    let rows = d.call(
        "/execute-sql-read",
        json!({"sql": "SELECT id, title FROM issue WHERE id = ?1", "params": [1]}),
    );
    assert_eq!(rows, json!({"cols": ["id", "title"], "rows": [[1, "a"]]}));
    assert!(!dir.path().join("other.db").exists());
    assert!(d.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_leases_expire_and_pinned_ones_live_until_dematerialized() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), json!({}));
    let short = d.call(
        "/materialize",
        json!({"ast": {"table": "issue"}, "policy": {"kind": "whileSubscribed", "idleTtlMs": 200}, "leaseTtlMs": 200}),
    );
    let pinned = d.call(
        "/materialize",
        json!({"ast": {"table": "comment"}, "policy": {"kind": "pinned", "name": "comments"}, "leaseTtlMs": 200}),
    );
    assert_eq!(d.call("/stats", json!({}))["materializations"], 2);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        d.call("/stats", json!({}))["materializations"],
        1,
        "the idle one went"
    );
    let mut c = Client::connect_ws(&format!("ws://127.0.0.1:{}/", d.port("wsPort")))
        .await
        .unwrap();
    c.init("late").await.unwrap();
    c.subscribe(1, short["leaseToken"].as_str().unwrap())
        .await
        .unwrap();
    match next(&mut c).await {
        ClientEvent::QueryError(q) => assert_eq!(
            (q.code.as_deref(), q.retryable),
            (Some("lease"), Some(false))
        ),
        e => panic!("{e:?}"),
    }
    c.subscribe(2, "bogus").await.unwrap();
    assert!(matches!(next(&mut c).await, ClientEvent::QueryError(q) if q.query_id == 2));
    // The pinned materialization lives; a fresh lease for it subscribes.
    let again = d.call("/materialize", json!({"ast": {"table": "comment"}}));
    assert_eq!(again["reused"], true);
    c.subscribe(3, again["leaseToken"].as_str().unwrap())
        .await
        .unwrap();
    assert!(matches!(
        next(&mut c).await,
        ClientEvent::Snapshot { query_id: 3, .. }
    ));
    // A subscribed lease outlives its TTL.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.call("/stats", json!({}))["subscriptions"], 1);
    assert_eq!(
        d.call("/dematerialize", json!({"name": "comments"})),
        json!({"removed": true})
    );
    match next(&mut c).await {
        ClientEvent::QueryError(q) => assert_eq!(q.query_id, 3),
        e => panic!("{e:?}"),
    }
    assert_eq!(
        d.call("/dematerialize", json!({"queryKey": pinned["queryKey"]})),
        json!({"removed": false})
    );
    assert_eq!(d.call("/stats", json!({}))["materializations"], 0);
    assert!(d.stop().success());
}

#[test]
fn start_up_failures_are_one_clear_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let run = |config: Json| {
        let path = dir.path().join("bad.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{config}");
        assert!(out.stdout.is_empty(), "{config}");
        stderr.lines().last().unwrap_or_default().to_string()
    };
    let db = dir.path().join("x.db");
    assert!(run(json!({"db": db, "httpPrt": 1})).contains("unknown field `httpPrt`"));
    let line = run(
        json!({"db": db, "httpPort": 0, "wsPort": 0, "quicPort": null, "tables": [
            {"name": "t", "createSql": "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, x TEXT); CREATE TRIGGER IF NOT EXISTS tr AFTER INSERT ON t BEGIN SELECT 1; END;"}
        ]}),
    );
    assert!(line.contains("`t`") && line.contains("trigger"), "{line}");
    let line = run(
        json!({"db": db, "httpPort": 0, "wsPort": 0, "quicPort": null, "tables": [{"name": "missing"}]}),
    );
    assert!(line.contains("missing"), "{line}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let line = run(
        json!({"db": dir.path().join("y.db"), "httpPort": port, "wsPort": 0, "quicPort": null}),
    );
    assert!(
        line.contains("http") && line.contains(&port.to_string()),
        "{line}"
    );
    let line = run(json!({"db": "/nonexistent/dir/z.db", "httpPort": 0, "wsPort": 0}));
    assert!(line.contains("z.db"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_wire_is_the_reference_protocol_with_the_boot_id() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), json!({}));
    d.call(
        "/execute-sql-txn",
        json!({"statements": sql(&["INSERT INTO issue VALUES (7, 'seven', 1)"])}),
    );
    let lease = d.call("/materialize", json!({"ast": {"table": "issue"}}))["leaseToken"].clone();
    let url = format!("ws://127.0.0.1:{}/", d.port("wsPort"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"t": "init", "clientID": "raw"}).to_string(),
    ))
    .await
    .unwrap();
    ws.send(Message::text(
        json!({"t": "subscribe", "queryId": 5, "leaseToken": lease, "mode": "normalized"})
            .to_string(),
    ))
    .await
    .unwrap();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap();
        if let Some(Ok(Message::Text(t))) = frame {
            frames.push(serde_json::from_str::<Json>(t.as_str()).unwrap());
        }
    }
    let hello = &frames[0];
    assert_eq!(hello["t"], "nhello");
    assert_eq!(hello["queryId"], 5);
    assert_eq!(hello["bootId"], d.ready["bootId"]);
    assert_eq!(hello["hello"]["epoch"], 1);
    assert_eq!(hello["hello"]["comparatorVersion"], 2);
    assert_eq!(
        hello["hello"]["tables"],
        json!([{"name": "issue", "columns": ["id", "title", "open"], "primaryKey": [0]}])
    );
    let snapshot = &frames[1];
    assert_eq!(snapshot["t"], "nbatch");
    assert_eq!(snapshot["batch"]["seq"], 0);
    assert_eq!(
        snapshot["batch"]["normalizedFp"],
        hello["hello"]["normalizedFp"]
    );
    assert_eq!(
        snapshot["batch"]["ops"],
        json!([{"table": "issue", "op": "add", "row": [7, "seven", true]}])
    );
    assert!(d.stop().success());
}

#[test]
fn cv_never_goes_backwards_across_sigterm_and_sigkill_and_the_wal_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let bound: u64 = 256 * 1024;
    let config = json!({"walMaxBytes": bound});
    let d = Daemon::start(dir.path(), config.clone());
    // A live query keeps the workers deriving every write.
    d.call(
        "/materialize",
        json!({"ast": open_issues(), "policy": {"kind": "pinned"}}),
    );
    let wal = dir.path().join("d.db-wal");
    let padding = "x".repeat(300);
    let mut last = 0;
    let mut largest = 0;
    for i in 0..2_000 {
        let body = json!({"statements": [{"sql": "INSERT OR REPLACE INTO issue VALUES (?1, ?2, ?3)",
            "params": [i % 50, padding, i % 2 == 0]}]});
        let cv = d.call("/execute-sql-txn", body)["cv"].as_u64().unwrap();
        assert!(cv > last, "cv {cv} after {last}");
        last = cv;
        largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    }
    assert!(largest <= bound, "the WAL reached {largest} bytes");
    assert!(d.metric("rindle_wal_checkpoints_total") > 0);
    assert!(d.metric("rindle_wal_bytes") <= bound);
    assert_eq!(d.metric("rindle_commit_version"), last);
    let keyed = json!({"statements": sql(&["INSERT INTO issue VALUES (9000, 'k', 1)"]), "idempotencyKey": "once"});
    let first = d.call("/execute-sql-txn", keyed.clone())["cv"]
        .as_u64()
        .unwrap();
    assert_eq!(first, last + 1);

    // SIGKILL: cv resumes from the last acknowledged one (the start-up's
    // own schema transactions take theirs too).
    d.kill();
    let d = Daemon::start(dir.path(), config.clone());
    let resumed = d.metric("rindle_commit_version");
    assert!(resumed >= first, "cv went back from {first} to {resumed}");
    // A replay answers the cv of the boot that applied it.
    assert_eq!(
        d.call("/execute-sql-txn", keyed.clone()),
        json!({"applied": false, "cv": first})
    );
    let after_kill = d.call(
        "/execute-sql-txn",
        json!({"statements": sql(&["DELETE FROM issue WHERE id = 9000"])}),
    )["cv"]
        .as_u64()
        .unwrap();
    assert_eq!(after_kill, resumed + 1);

    // SIGTERM: the same.
    assert!(d.stop().success());
    let d = Daemon::start(dir.path(), config);
    let resumed = d.metric("rindle_commit_version");
    assert!(
        resumed >= after_kill,
        "cv went back from {after_kill} to {resumed}"
    );
    let after_term = d.call(
        "/execute-sql-txn",
        json!({"statements": sql(&["DELETE FROM issue WHERE id = 1"])}),
    )["cv"]
        .as_u64()
        .unwrap();
    assert_eq!(after_term, resumed + 1);
    assert!(d.stop().success());
}

#[test]
fn the_write_endpoint_cannot_brick_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), json!({}));
    let txn = |stmts: &[&str]| json!({"statements": sql(stmts)}).to_string();
    let refused = |d: &Daemon, body: String, what: &str| {
        let r = d.post("/execute-sql-txn", &body);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        let message = r.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains("not permitted"), "{what}: {message}");
        message
    };
    let ok = |d: &Daemon, stmts: &[&str]| {
        let r = d.post("/execute-sql-txn", &txn(stmts));
        assert_eq!(r.status, 200, "{stmts:?}: {}", r.body);
    };
    ok(&d, &["INSERT INTO issue VALUES (1, 'a', 1)"]);
    let keyed = json!({"statements": sql(&["INSERT INTO issue VALUES (2, 'k', 1)"]), "idempotencyKey": "k"}).to_string();
    assert_eq!(d.post("/execute-sql-txn", &keyed).json()["applied"], true);
    let mid = |m: u64, id: i64| {
        json!({"statements": [{"sql": "INSERT INTO issue VALUES (?1, 'm', 0)", "params": [id]}],
               "clientID": "c", "mid": m})
        .to_string()
    };
    assert_eq!(
        d.post("/execute-sql-txn", &mid(1, 10)).json()["applied"],
        true
    );

    // 1. query_only would fail every later write.
    let m = refused(&d, txn(&["PRAGMA query_only = ON"]), "query_only");
    assert!(m.contains("query_only"), "{m}");
    // 2. An exclusive locking mode would lock out every reader.
    refused(
        &d,
        txn(&["PRAGMA locking_mode = EXCLUSIVE"]),
        "locking_mode",
    );
    // 3. Editing the schema table would keep the daemon from starting.
    refused(&d, txn(&["PRAGMA writable_schema = ON"]), "writable_schema");
    refused(
        &d,
        txn(&["UPDATE sqlite_master SET sql = 'garbage' WHERE name = 'issue'"]),
        "sqlite_master",
    );
    // 4. and 5. The daemon's own tables.
    refused(&d, txn(&["DROP TABLE _rindle_idempotency"]), "drop");
    refused(&d, txn(&["DELETE FROM _rindle_client_mutations"]), "delete");
    refused(&d, txn(&["UPDATE _rindle_meta SET value = 0"]), "meta");
    // Transaction control and ATTACH.
    refused(&d, txn(&["COMMIT"]), "commit");
    refused(&d, txn(&["ATTACH DATABASE ':memory:' AS x"]), "attach");
    // A refused statement anywhere in the request: nothing ran, not even
    // the statements before it.
    refused(
        &d,
        txn(&[
            "INSERT INTO issue VALUES (3, 'b', 1)",
            "PRAGMA query_only = ON",
        ]),
        "batch",
    );
    // Reading PRAGMAs and transactional ones stay allowed.
    ok(
        &d,
        &[
            "PRAGMA user_version = 7",
            "PRAGMA defer_foreign_keys = ON",
            // An argument naming a table is not a setting.
            "PRAGMA foreign_key_check(issue)",
        ],
    );

    // Everything still works: writes, idempotency, the mutation discipline.
    ok(&d, &["INSERT INTO issue VALUES (4, 'c', 1)"]);
    assert_eq!(
        d.call(
            "/execute-sql-read",
            json!({"sql": "SELECT id FROM issue ORDER BY id"})
        )["rows"],
        json!([[1], [2], [4], [10]])
    );
    assert_eq!(d.post("/execute-sql-txn", &keyed).json()["applied"], false);
    assert_eq!(
        d.post("/execute-sql-txn", &mid(1, 11)).json()["applied"],
        false
    );
    // And the daemon starts again on the same file.
    assert!(d.stop().success());
    let d = Daemon::start(dir.path(), json!({}));
    assert_eq!(
        d.post("/execute-sql-txn", &mid(1, 12)).json()["applied"],
        false
    );
    assert_eq!(
        d.post("/execute-sql-txn", &mid(2, 12)).json()["applied"],
        true
    );
    assert!(d.stop().success());
}

#[test]
fn materialize_and_query_validate_alike_and_enforce_the_query_limits() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), json!({"maxQueryDepth": 4, "maxQueryNodes": 40}));
    let refusal = |path: &str, ast: &Json| {
        let r = d.post(path, &json!({ "ast": ast }).to_string());
        assert_eq!(r.status, 400, "{path} {ast}: {}", r.body);
        r.json()["error"].as_str().unwrap().to_string()
    };
    let both = |ast: Json, needle: &str| {
        let m = refusal("/materialize", &ast);
        let q = refusal("/query", &ast);
        assert_eq!(m, q, "the two endpoints disagree on {ast}");
        assert!(m.contains(needle), "{m}");
    };
    // Unknown columns wherever a column is named.
    both(json!({"table": "issue", "select": ["id", "nope"]}), "nope");
    both(
        json!({"table": "issue", "groupBy": ["nope"], "aggregate": "count"}),
        "nope",
    );
    both(
        json!({"table": "issue", "orderBy": [["nope", "asc"]]}),
        "nope",
    );
    both(
        json!({"table": "issue", "related": [{"correlation": {"parentField": ["id"], "childField": ["issueID"]},
            "subquery": {"table": "comment", "alias": "c", "select": ["body", "nope"]}}]}),
        "nope",
    );
    // Too deep: a chain of self-joins, one level past the limit.
    let mut deep = json!({"table": "issue", "alias": "p"});
    for _ in 0..4 {
        deep = json!({"table": "issue", "alias": "p", "related": [{
            "correlation": {"parentField": ["id"], "childField": ["id"]}, "subquery": deep}]});
    }
    both(deep, "maxQueryDepth");
    // Too many parts.
    let wide: Vec<Json> = (0..50)
        .map(|i| json!({"type":"simple","op":"=","left":{"type":"column","name":"id"},"right":{"type":"literal","value":i}}))
        .collect();
    both(
        json!({"table": "issue", "where": {"type": "or", "conditions": wide}}),
        "maxQueryNodes",
    );
    // Within the limits, both answer.
    let fine = json!({"table": "issue", "select": ["id", "title"], "limit": 3});
    d.call("/materialize", json!({ "ast": fine }));
    d.call("/query", json!({ "ast": fine }));
    // Nothing was left behind by the refusals.
    assert_eq!(d.call("/stats", json!({}))["materializations"], 1);
}

#[test]
fn reads_are_bounded_and_healthz_never_waits_behind_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        json!({"readTimeoutMs": 1500, "readMaxRows": 100, "readMaxBytes": 65536}),
    );
    let port = d.port("httpPort");
    let endless = json!({"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"});
    let started = std::time::Instant::now();
    let slow = std::thread::spawn(move || {
        let r = http(
            port,
            "POST",
            "/execute-sql-read",
            &endless.to_string(),
            None,
        );
        (r.status, r.body, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    // While the read runs: health, writes and other reads answer at once.
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let h = http(port, "GET", "/healthz", "", None);
        assert_eq!(h.status, 200, "{}", h.body);
        assert_eq!(h.json(), json!({"ok": true}));
        assert!(
            t.elapsed() < Duration::from_millis(700),
            "{:?}",
            t.elapsed()
        );
    }
    d.call(
        "/execute-sql-txn",
        json!({"statements": sql(&["INSERT INTO issue VALUES (1, 'a', 1)"])}),
    );
    let (status, body, took) = slow.join().unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("readTimeoutMs"), "{body}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Too many rows, too many bytes: 413 naming the cap.
    let r = d.post(
        "/execute-sql-read",
        &json!({"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 500) SELECT x FROM c"}).to_string(),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("readMaxRows"), "{}", r.body);
    let r = d.post(
        "/execute-sql-read",
        &json!({"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 90) SELECT hex(randomblob(1000)) FROM c"}).to_string(),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("readMaxBytes"), "{}", r.body);
    // Within the caps, the connection still serves.
    let r = d.call("/execute-sql-read", json!({"sql": "SELECT id FROM issue"}));
    assert_eq!(r["rows"], json!([[1]]));
}

/// Comments whose body no index serves: a relationship correlated on it
/// scans the whole table per parent.
fn seed_unindexed_comments(d: &Daemon, n: u64) {
    let seed = format!(
        "INSERT INTO comment SELECT x, x, 'b' || (x % 100) FROM \
         (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {n}) SELECT x FROM c)"
    );
    d.call("/execute-sql-txn", json!({"statements": sql(&[&seed])}));
}

fn issues_with_comments_by_body() -> Json {
    json!({"table": "issue", "related": [{
        "correlation": {"parentField": ["title"], "childField": ["body"]},
        "subquery": {"table": "comment", "alias": "same"}}]})
}

/// One transaction whose derivation scans the comments once per issue.
fn heavy_insert(first: u64, n: u64) -> Json {
    let insert = format!(
        "INSERT INTO issue SELECT x, 'b' || (x % 100), 1 FROM \
         (WITH RECURSIVE c(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM c LIMIT {n}) SELECT x FROM c)"
    );
    json!({"statements": sql(&[&insert])})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_its_budget_is_faulted_alone_and_the_daemon_stays_responsive() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        json!({"deriveBudgetMs": 300, "hydrateBudgetMs": 300}),
    );
    seed_unindexed_comments(&d, 50_000);
    let heavy = d.call(
        "/materialize",
        json!({"ast": issues_with_comments_by_body()}),
    );
    let light = d.call(
        "/materialize",
        json!({"ast": {"table": "issue", "limit": 2}}),
    );
    let mut c = Client::connect_ws(&format!("ws://127.0.0.1:{}/", d.port("wsPort")))
        .await
        .unwrap();
    c.init("budget").await.unwrap();
    for (q, lease) in [(1, &heavy), (2, &light)] {
        c.subscribe(q, lease["leaseToken"].as_str().unwrap())
            .await
            .unwrap();
        loop {
            match next(&mut c).await {
                ClientEvent::Snapshot { query_id, .. } if query_id == q => break,
                ClientEvent::Progress { .. } => {}
                e => panic!("{e:?}"),
            }
        }
    }
    // Deriving 3,000 issues' relationships takes seconds: cut at 300 ms.
    let started = std::time::Instant::now();
    d.call("/execute-sql-txn", heavy_insert(1, 3_000));
    let mut faulted = false;
    let mut light_batch = false;
    while !(faulted && light_batch) {
        match next(&mut c).await {
            ClientEvent::QueryError(q) => {
                assert_eq!(q.query_id, 1);
                assert_eq!(
                    (q.code.as_deref(), q.retryable),
                    (Some("faulted"), Some(true))
                );
                faulted = true;
            }
            ClientEvent::Batch { query_id: 2, .. } => light_batch = true,
            ClientEvent::Batch { query_id: 1, .. } => panic!("the heavy query delivered"),
            _ => {}
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The next write and health answer at once.
    let t = std::time::Instant::now();
    d.call(
        "/execute-sql-txn",
        json!({"statements": sql(&["INSERT INTO issue VALUES (100000, 'x', 1)"])}),
    );
    assert_eq!(
        http(d.port("httpPort"), "GET", "/healthz", "", None).status,
        200
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Hydrating it now (3,000 issues) is over its budget too: refused,
    // naming why, and nothing is left materialized for it.
    let before = d.call("/stats", json!({}))["materializations"].clone();
    let mut other = issues_with_comments_by_body();
    other["related"][0]["subquery"]["alias"] = json!("other");
    let r = d.post(
        "/materialize",
        &json!({"ast": other, "policy": {"kind": "pinned", "name": "again"}}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("budget"), "{}", r.body);
    assert_eq!(d.call("/stats", json!({}))["materializations"], before);
}

#[test]
fn shutdown_is_bounded_with_a_subscriber_that_never_reads_and_a_long_derivation() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"shutdownTimeoutMs": 1000, "deriveBudgetMs": 600_000});
    let d = Daemon::start(dir.path(), config.clone());
    seed_unindexed_comments(&d, 50_000);
    let lease = d.call(
        "/materialize",
        json!({"ast": issues_with_comments_by_body()}),
    )["leaseToken"]
        .as_str()
        .unwrap()
        .to_string();
    // A subscriber that subscribes, then never reads again.
    let ws = d.port("wsPort");
    let (mut socket, _) =
        tokio_tungstenite::tungstenite::connect(format!("ws://127.0.0.1:{ws}/")).unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"t": "init", "clientID": "mute"}).to_string(),
        ))
        .unwrap();
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            json!({"t": "subscribe", "queryId": 1, "leaseToken": lease, "mode": "normalized"})
                .to_string(),
        ))
        .unwrap();
    // A transaction whose derivation runs for far longer than the timeout.
    let port = d.port("httpPort");
    let body = heavy_insert(1, 20_000).to_string();
    let writer = std::thread::spawn(move || http(port, "POST", "/execute-sql-txn", &body, None));
    std::thread::sleep(Duration::from_millis(800));
    let t = std::time::Instant::now();
    let status = d.stop();
    let took = t.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(6), "stopping took {took:?}");
    // The write was acknowledged before the stop began, or not at all; the
    // WAL was checkpointed into the file.
    let acked = writer.join().unwrap().status == 200;
    let wal = dir.path().join("d.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL was left behind"
    );
    drop(socket);
    // And it starts again with every acknowledged row.
    let d = Daemon::start(dir.path(), config);
    let n = d.call(
        "/execute-sql-read",
        json!({"sql": "SELECT count(*) FROM issue"}),
    )["rows"][0][0]
        .as_u64()
        .unwrap();
    assert_eq!(n, if acked { 20_000 } else { 0 });
    assert!(d.stop().success());
}

#[test]
fn the_control_plane_closes_idle_and_slow_header_connections() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), json!({"httpHeaderTimeoutMs": 300}));
    let port = d.port("httpPort");
    let closed_within = |mut s: TcpStream, limit: Duration| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = std::time::Instant::now();
        let mut buf = [0u8; 256];
        // EOF (or a reset, or a 408 then EOF) once the server gives up.
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert!(t.elapsed() < limit, "closed after {:?}", t.elapsed());
    };
    // Idle from the start.
    let idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    closed_within(idle, Duration::from_secs(2));
    // A slowloris: one header byte every 100 ms never finishes in time.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let reader = slow.try_clone().unwrap();
    let dripper = std::thread::spawn(move || {
        for b in b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    closed_within(reader, Duration::from_secs(2));
    dripper.join().unwrap();
    // Idle between two requests of a keep-alive connection.
    let mut keep = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(keep, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    keep.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    closed_within(keep, Duration::from_secs(2));
    // Ordinary requests are unaffected.
    assert_eq!(http(port, "GET", "/healthz", "", None).status, 200);
    assert!(d.stop().success());
}

#[test]
fn the_control_plane_keeps_working_while_the_public_plane_is_flooded() {
    let dir = tempfile::tempdir().unwrap();
    // Few descriptors: 300 connections would exhaust them without the
    // per-address cap (64 by default).
    let d = Daemon::start_limited(dir.path(), json!({}), Some(160));
    let ws = d.port("wsPort");
    let mut idle = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", ws)) {
            idle.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let t = std::time::Instant::now();
    assert_eq!(
        http(d.port("httpPort"), "GET", "/healthz", "", None).status,
        200
    );
    d.call(
        "/execute-sql-txn",
        json!({"statements": sql(&["INSERT INTO issue VALUES (1, 'a', 1)"])}),
    );
    let lease = d.call("/materialize", json!({"ast": {"table": "issue"}}))["leaseToken"].clone();
    assert!(!lease.is_null());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(d.metric("rindle_connections_refused_total{plane=\"ws\"}") >= 200);
    drop(idle);
    assert!(d.stop().success());
}

#[test]
fn healthz_names_a_stalled_worker_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        json!({"healthStallMs": 300, "deriveBudgetMs": 600_000, "nWorkers": 1}),
    );
    seed_unindexed_comments(&d, 50_000);
    d.call(
        "/materialize",
        json!({"ast": issues_with_comments_by_body()}),
    );
    assert_eq!(
        http(d.port("httpPort"), "GET", "/healthz", "", None).status,
        200
    );
    // Deriving this takes seconds: the worker is busy with one command.
    d.call("/execute-sql-txn", heavy_insert(1, 1_500));
    let started = std::time::Instant::now();
    let problems = loop {
        let h = http(d.port("httpPort"), "GET", "/healthz", "", None);
        if h.status == 503 {
            break h.json()["problems"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never reported: {}",
            h.body
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        problems
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("worker 0: busy")),
        "{problems}"
    );
    // A write now waits at the barrier for the busy worker, holding the
    // writer; /metrics and /query do not wait behind it.
    let port = d.port("httpPort");
    let queued = std::thread::spawn(move || {
        let body = json!({"statements": sql(&["INSERT INTO issue VALUES (900000, 'q', 1)"])});
        http(port, "POST", "/execute-sql-txn", &body.to_string(), None).status
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    assert!(d.metric("rindle_commit_version") > 0);
    d.call("/query", json!({"ast": {"table": "issue", "limit": 1}}));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // Once it is done, healthy again.
    loop {
        let h = http(d.port("httpPort"), "GET", "/healthz", "", None);
        if h.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "still unhealthy: {}",
            h.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(queued.join().unwrap(), 200);
    assert!(d.stop().success());
}
