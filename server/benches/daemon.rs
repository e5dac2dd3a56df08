//! The daemon end to end (BENCHMARKS.md, "through the daemon"): the real
//! `rindled` release binary, spawned on port 0 with the issue-tracker tables
//! of `examples/issues.json`, seeded through `/execute-sql-txn`, then, for
//! each count N of subscribed queries:
//!
//! - write → subscriber latency: one comment insert at a time through
//!   `/execute-sql-txn`, timed from just before the request to the `nbatch`
//!   carrying the `cv` it returned arriving at the WebSocket client and at
//!   the QUIC client (both subscribed to every query, read concurrently);
//!   the time is the last of that client's batches for the write (every one
//!   of its affected subscriptions is at the cv; with N ≤ the user count each
//!   write changes exactly one query);
//! - sustained writes: inserts from four keep-alive connections as fast as
//!   they go for a bounded time, with both clients draining; every expected
//!   batch must then arrive;
//! - resident memory: the daemon's VmRSS after seeding (no queries) and
//!   after the N subscriptions, and its VmHWM at the end of the round.
//!
//! Each N gets a fresh daemon and a freshly seeded database. Query q is
//! "user q % USERS's 10 newest issues with their comments", made distinct
//! by an always-true `id != -1 - q` so that no materialization is reused.
//!
//! The daemon's default limits allow 256 subscriptions per connection (and
//! 100 messages per second after a burst of 200), and the stock QUIC client
//! accepts 100 concurrent server-opened streams (one per subscription), so
//! one "client" per plane is as many connections as it takes: up to 250
//! subscriptions per WebSocket and 100 per QUIC connection, subscribed at a
//! pace the rate limit allows.
//!
//! `cargo bench -p rindle-server --bench daemon -- [--scale small|medium|large|xl]
//! [--queries 1,100,1000] [--writes N] [--seconds S] [--quick]`
//! (`--scale large` is the spec's headline; `small` is the quick default).

#![allow(clippy::print_stdout)] // the report is this program's output

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rindle_transport::{Client, ClientEvent};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_rindled");
/// The issue-tracker configuration; db and ports are overridden.
const CONFIG: &str = include_str!("../../examples/issues.json");

const USAGE: &str = "usage: cargo bench -p rindle-server --bench daemon -- \
[--scale small|medium|large|xl] [--queries 1,100,1000] [--writes N] [--seconds S] [--quick]
       [--soak SECONDS]   (one daemon, the largest --queries count subscribed on both planes,
                           writes for SECONDS; RSS, WAL size and open fds sampled start to end)";

/// Rows per seeding transaction.
const SEED_BATCH: usize = 1000;
/// Issues each query shows.
const VIEWPORT: i64 = 10;
/// Concurrent HTTP connections in the sustained phase.
const WRITERS: usize = 4;
/// Subscriptions per connection (daemon limit 256; QUIC: the client's 100
/// concurrent incoming streams).
const WS_PER_CONN: usize = 250;
const QUIC_PER_CONN: usize = 100;
/// Subscribes sent at once before pacing to the daemon's 100 messages/s.
const FREE_MESSAGES: usize = 150;
const PACE: Duration = Duration::from_millis(12);

/// Bounds on every wait, so a lost frame fails with a message, not a hang.
const CALL: Duration = Duration::from_secs(30);
const DELIVERY: Duration = Duration::from_secs(10);
const SNAPSHOTS: Duration = Duration::from_secs(60);
const CATCH_UP: Duration = Duration::from_secs(60);

type R<T> = Result<T, String>;

/// `map_err(fail("what"))`: the error as text, prefixed with what failed.
fn fail<E: Display>(what: impl Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

async fn within<T>(limit: Duration, what: impl Display, f: impl Future<Output = T>) -> R<T> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| format!("timed out after {limit:?} waiting for {what}"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------- options

#[derive(Clone, Copy, Debug)]
struct Scale {
    name: &'static str,
    users: i64,
    issues: i64,
    comments: i64,
}

const SCALES: [Scale; 4] = [
    Scale {
        name: "small",
        users: 100,
        issues: 1_000,
        comments: 5_000,
    },
    Scale {
        name: "medium",
        users: 300,
        issues: 5_000,
        comments: 25_000,
    },
    Scale {
        name: "large",
        users: 1_000,
        issues: 10_000,
        comments: 50_000,
    },
    Scale {
        name: "xl",
        users: 2_000,
        issues: 20_000,
        comments: 100_000,
    },
];

struct Options {
    scale: Scale,
    queries: Vec<usize>,
    writes: usize,
    sustain: Duration,
    soak: Option<Duration>,
}

fn options() -> R<Options> {
    let mut o = Options {
        scale: SCALES[0],
        queries: vec![1, 100, 1000],
        writes: 200,
        sustain: Duration::from_secs(3),
        soak: None,
    };
    let (mut writes, mut seconds) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            "--quick" => {
                o.writes = 50;
                o.sustain = Duration::from_secs(1);
            }
            "--scale" => {
                let v = value()?;
                o.scale = *SCALES
                    .iter()
                    .find(|s| s.name == v)
                    .ok_or(format!("unknown scale {v:?}\n{USAGE}"))?;
            }
            "--queries" => {
                o.queries = value()?
                    .split(',')
                    .map(|n| match n.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("--queries wants positive counts, got {n:?}")),
                    })
                    .collect::<R<_>>()?;
            }
            "--writes" => {
                let v = value()?;
                writes = Some(v.parse().map_err(|_| format!("--writes {v:?}"))?);
            }
            "--seconds" => {
                let v = value()?;
                seconds = Some(v.parse::<f64>().map_err(|_| format!("--seconds {v:?}"))?);
            }
            "--soak" => {
                let v = value()?;
                let secs = v.parse::<f64>().map_err(|_| format!("--soak {v:?}"))?;
                o.soak = Some(Duration::from_secs_f64(secs.max(1.0)));
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    // Explicit values win over --quick, wherever they came.
    o.writes = writes.unwrap_or(o.writes).max(1);
    if let Some(s) = seconds {
        o.sustain = Duration::from_secs_f64(s.max(0.1));
    }
    Ok(o)
}

// ---------------------------------------------------------------- the daemon

struct Daemon {
    child: Child,
    ready: Json,
    log: PathBuf,
    stopped: bool,
}

impl Daemon {
    /// Spawns `rindled` on ephemeral ports with its database in `dir`; its
    /// logs go to `dir/rindled.log`.
    fn start(dir: &Path) -> R<Daemon> {
        let mut config: Json =
            serde_json::from_str(CONFIG).map_err(fail("examples/issues.json"))?;
        config["db"] = json!(dir.join("issues.db"));
        for port in ["httpPort", "wsPort", "quicPort"] {
            config[port] = json!(0);
        }
        let path = dir.join("config.json");
        std::fs::write(&path, config.to_string()).map_err(fail(path.display()))?;
        let log = dir.join("rindled.log");
        let stderr = std::fs::File::create(&log).map_err(fail(log.display()))?;
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(fail(BIN))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
        });
        let mut daemon = Daemon {
            child,
            ready: Json::Null,
            log,
            stopped: false,
        };
        let line = match rx.recv_timeout(CALL) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(daemon.died(format!("reading its readiness line: {e}"))),
            Err(_) => return Err(daemon.died("no readiness line within 30 s")),
        };
        daemon.ready = match serde_json::from_str::<Json>(&line) {
            Ok(r) if r["ready"] == true => r,
            _ => return Err(daemon.died(format!("readiness line {line:?}"))),
        };
        Ok(daemon)
    }

    /// An error message with the end of the daemon's log.
    fn died(&self, what: impl Display) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(&self.log).map(|mut f| f.read_to_string(&mut text));
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "rindled: {what}\n--- {} ---\n{}",
            self.log.display(),
            tail.join("\n")
        )
    }

    fn port(&self, key: &str) -> R<u16> {
        self.ready[key]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or(format!("no {key} in the readiness line {}", self.ready))
    }

    fn addr(&self, key: &str) -> R<SocketAddr> {
        Ok(SocketAddr::from(([127, 0, 0, 1], self.port(key)?)))
    }

    /// VmRSS and VmHWM, kB.
    fn memory(&self) -> R<(u64, u64)> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).map_err(fail(&path))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .ok_or(format!("no {name} in {path}"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Open file descriptors.
    fn fds(&self) -> R<usize> {
        let path = format!("/proc/{}/fd", self.child.id());
        Ok(std::fs::read_dir(&path).map_err(fail(&path))?.count())
    }

    /// SIGTERM, then wait (bounded) for a clean exit 0.
    fn stop(mut self) -> R<()> {
        self.stopped = true;
        let pid = self.child.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status();
        if !kill.is_ok_and(|s| s.success()) {
            return Err(self.died("could not send SIGTERM"));
        }
        let deadline = Instant::now() + CALL;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(self.died(format!("exited with {status}"))),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(self.died("did not exit within 30 s of SIGTERM"));
                }
                Err(e) => return Err(self.died(format!("waiting for it: {e}"))),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------- HTTP/1.1

/// One keep-alive connection to the control plane.
struct Http {
    conn: tokio::io::BufReader<TcpStream>,
}

impl Http {
    async fn connect(addr: SocketAddr) -> R<Http> {
        let s = within(CALL, "the control plane", TcpStream::connect(addr))
            .await?
            .map_err(fail(addr))?;
        s.set_nodelay(true).map_err(fail("TCP_NODELAY"))?;
        Ok(Http {
            conn: tokio::io::BufReader::new(s),
        })
    }

    async fn request(&mut self, method: &str, path: &str, body: &str) -> R<(u16, String)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(body.as_bytes());
        let io = |e: std::io::Error| format!("{method} {path}: {e}");
        self.conn.get_mut().write_all(&out).await.map_err(io)?;
        let mut line = String::new();
        self.read_line(&mut line).await.map_err(io)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(format!("{method} {path}: a malformed status line {line:?}"))?;
        let (mut length, mut chunked) = (0, false);
        loop {
            line.clear();
            self.read_line(&mut line).await.map_err(io)?;
            if line == "\r\n" {
                break;
            }
            let (k, v) = line.split_once(':').unwrap_or((&line, ""));
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().map_err(fail("content-length"))?;
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.read_line(&mut line).await.map_err(io)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(fail("chunk size"))?;
                let start = body.len();
                body.resize(start + n + 2, 0);
                self.conn.read_exact(&mut body[start..]).await.map_err(io)?;
                body.truncate(start + n);
                if n == 0 {
                    break;
                }
            }
        } else {
            body.resize(length, 0);
            self.conn.read_exact(&mut body).await.map_err(io)?;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn read_line(&mut self, line: &mut String) -> std::io::Result<()> {
        match self.conn.read_line(line).await? {
            0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(()),
        }
    }

    /// A POST that must answer 200 with JSON.
    async fn call(&mut self, path: &str, body: &Json) -> R<Json> {
        let (status, text) =
            within(CALL, path, self.request("POST", path, &body.to_string())).await??;
        if status != 200 {
            return Err(format!("{path}: HTTP {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(fail(format!("{path} answered {text:?}")))
    }

    /// Inserts a comment on `issue`; returns the transaction's cv.
    async fn comment(&mut self, id: i64, issue: i64) -> R<u64> {
        let r = self
            .call(
                "/execute-sql-txn",
                &json!({"statements": [{
                    "sql": "INSERT INTO comment VALUES (?1, ?2, ?3, ?4)",
                    "params": [id, issue, "bench", 0],
                }]}),
            )
            .await?;
        match (r["applied"].as_bool(), r["cv"].as_u64()) {
            (Some(true), Some(cv)) => Ok(cv),
            _ => Err(format!("/execute-sql-txn answered {r}")),
        }
    }
}

// ---------------------------------------------------------------- workload

/// Row `i` of `table` (the testkit's issue tracker, inline).
fn seed_row(table: &str, i: i64, s: Scale) -> Json {
    const ROLES: [&str; 3] = ["admin", "member", "guest"];
    match table {
        "user" => json!([i, format!("user {i}"), ROLES[(i % 3) as usize]]),
        "issue" => json!([
            i,
            format!("issue {i}"),
            i % 3 != 0,
            s.issues - i,
            i % s.users
        ]),
        _ => {
            let issue = i % s.issues;
            json!([
                i,
                issue,
                format!("comment {i} on issue {issue}"),
                i % s.users
            ])
        }
    }
}

/// The issue tracker through the control plane, `SEED_BATCH` rows a
/// transaction.
async fn seed(http: &mut Http, s: Scale) -> R<()> {
    let tables = [
        ("user", s.users, "?, ?, ?"),
        ("issue", s.issues, "?, ?, ?, ?, ?"),
        ("comment", s.comments, "?, ?, ?, ?"),
    ];
    for (table, count, marks) in tables {
        let sql = format!("INSERT INTO \"{table}\" VALUES ({marks})");
        let mut start = 0;
        while start < count {
            let end = (start + SEED_BATCH as i64).min(count);
            let statements: Vec<Json> = (start..end)
                .map(|i| json!({"sql": sql, "params": seed_row(table, i, s)}))
                .collect();
            http.call("/execute-sql-txn", &json!({ "statements": statements }))
                .await?;
            start = end;
        }
    }
    Ok(())
}

/// Query `q`: user `q % users`'s newest issues with their comments, distinct
/// from every other `q` by an always-true literal.
fn query(q: usize, users: i64) -> Json {
    let simple = |op: &str, column: &str, value: i64| {
        json!({"type": "simple", "op": op,
               "left": {"type": "column", "name": column},
               "right": {"type": "literal", "value": value}})
    };
    let q = q as i64;
    json!({
        "table": "issue",
        "where": {"type": "and", "conditions": [
            simple("=", "creatorID", q % users),
            simple("!=", "id", -1 - q),
        ]},
        "orderBy": [["created", "desc"]],
        "limit": VIEWPORT,
        "related": [{"correlation": {"parentField": ["id"], "childField": ["issueID"]},
                     "subquery": {"table": "comment", "alias": "comments"}}],
    })
}

/// The issue write `j` comments on: one every subscribed query's user has
/// in view (user u's newest issues are u, u + users, …), cycling through
/// the users with queries and their viewports.
fn target(j: usize, n: usize, users: i64) -> i64 {
    let shown = n.min(users as usize);
    let u = (j % shown) as i64;
    let k = ((j / shown) as i64) % VIEWPORT;
    u + users * k
}

/// How many of the N queries show `issue` (those of its creator).
fn affected(issue: i64, n: usize, users: i64) -> u64 {
    let u = (issue % users) as usize;
    let users = users as usize;
    if u < n {
        ((n - u).div_ceil(users)) as u64
    } else {
        0
    }
}

// ---------------------------------------------------------------- subscribers

#[derive(Clone, Copy)]
enum Plane {
    Ws,
    Quic,
}

impl Plane {
    fn name(self) -> &'static str {
        match self {
            Plane::Ws => "WebSocket",
            Plane::Quic => "QUIC",
        }
    }

    fn per_conn(self) -> usize {
        match self {
            Plane::Ws => WS_PER_CONN,
            Plane::Quic => QUIC_PER_CONN,
        }
    }

    async fn connect(self, d: &Daemon) -> R<Client> {
        let connected = match self {
            Plane::Ws => {
                let url = format!("ws://127.0.0.1:{}/", d.port("wsPort")?);
                within(CALL, "the WebSocket plane", Client::connect_ws(&url)).await?
            }
            Plane::Quic => {
                let pin = d.ready["quicCertSha256"]
                    .as_str()
                    .ok_or("no quicCertSha256 in the readiness line")?;
                let addr = d.addr("quicPort")?;
                within(CALL, "the QUIC plane", Client::connect_quic(addr, pin)).await?
            }
        };
        connected.map_err(fail(self.name()))
    }
}

#[derive(Clone, Copy)]
struct Arrivals {
    last: Instant,
    count: u64,
}

/// What one plane's client has received, across its connections.
#[derive(Default)]
struct Tally {
    snapshots: usize,
    batches: u64,
    by_cv: HashMap<u64, Arrivals>,
    failure: Option<String>,
}

/// One logical client on one plane: its connections' drain tasks record
/// into one tally.
struct Side {
    plane: Plane,
    tally: Arc<Mutex<Tally>>,
    tick: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
}

impl Side {
    /// Connects as many connections as `leases` need, subscribes query
    /// `i + 1` with `leases[i]`, and drains every connection from then on.
    async fn subscribe(plane: Plane, d: &Daemon, leases: &[String]) -> R<Side> {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (tick_tx, tick) = watch::channel(0u64);
        let tick_tx = Arc::new(tick_tx);
        let (stop, stop_rx) = watch::channel(false);
        for (k, chunk) in leases.chunks(plane.per_conn()).enumerate() {
            let client = plane.connect(d).await?;
            let first = k * plane.per_conn();
            let chunk = chunk.to_vec();
            let (tally, tick_tx, stop_rx) = (tally.clone(), tick_tx.clone(), stop_rx.clone());
            tokio::spawn(async move {
                let subscribed = async {
                    client.init(&format!("bench-{}-{k}", plane.name())).await?;
                    for (i, lease) in chunk.iter().enumerate() {
                        if i + 1 >= FREE_MESSAGES {
                            tokio::time::sleep(PACE).await;
                        }
                        client.subscribe((first + i + 1) as u64, lease).await?;
                    }
                    Ok::<_, rindle_transport::TransportError>(())
                };
                if let Err(e) = subscribed.await {
                    lock(&tally).failure = Some(format!("{}: subscribing: {e}", plane.name()));
                    tick_tx.send_modify(|n| *n += 1);
                    return;
                }
                drain(plane, client, &tally, &tick_tx, stop_rx).await;
            });
        }
        Ok(Side {
            plane,
            tally,
            tick,
            stop,
        })
    }

    /// Waits until `done` holds for the tally (or a failure, or `limit`).
    async fn wait(&mut self, limit: Duration, what: &str, done: impl Fn(&Tally) -> bool) -> R<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.tick.borrow_and_update();
            {
                let t = lock(&self.tally);
                if let Some(f) = &t.failure {
                    return Err(f.clone());
                }
                if done(&t) {
                    return Ok(());
                }
            }
            match tokio::time::timeout_at(deadline, self.tick.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(format!("{}: every connection ended", self.plane.name())),
                Err(_) => {
                    let t = lock(&self.tally);
                    return Err(format!(
                        "{}: timed out after {limit:?} waiting for {what} \
                         (so far {} snapshots, {} batches)",
                        self.plane.name(),
                        t.snapshots,
                        t.batches
                    ));
                }
            }
        }
    }

    /// Waits for `expect` batches carrying `cv`; returns when the last came.
    async fn arrived(&mut self, cv: u64, expect: u64) -> R<Instant> {
        let what = format!("{expect} batch(es) at cv {cv}");
        self.wait(DELIVERY, &what, |t| {
            t.by_cv.get(&cv).is_some_and(|a| a.count >= expect)
        })
        .await?;
        lock(&self.tally)
            .by_cv
            .get(&cv)
            .map(|a| a.last)
            .ok_or(format!(
                "{}: lost the arrival at cv {cv}",
                self.plane.name()
            ))
    }

    fn batches(&self) -> u64 {
        lock(&self.tally).batches
    }

    fn close(self) {
        let _ = self.stop.send(true);
    }
}

/// Reads one connection's events until told to stop; anything but
/// snapshots, batches and progress is a failure.
async fn drain(
    plane: Plane,
    mut client: Client,
    tally: &Mutex<Tally>,
    tick: &watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            e = client.next_event() => e,
            _ = stop.changed() => return,
        };
        let now = Instant::now();
        {
            let mut t = lock(tally);
            match event {
                Some(ClientEvent::Snapshot { .. }) => t.snapshots += 1,
                Some(ClientEvent::Batch { cv, .. }) => {
                    t.batches += 1;
                    let a = t.by_cv.entry(cv).or_insert(Arrivals {
                        last: now,
                        count: 0,
                    });
                    a.last = now;
                    a.count += 1;
                }
                Some(ClientEvent::Progress { .. }) => {}
                Some(ClientEvent::Closed) | None => {
                    t.failure
                        .get_or_insert(format!("{}: the server closed a connection", plane.name()));
                }
                Some(other) => {
                    t.failure
                        .get_or_insert(format!("{}: unexpected {other:?}", plane.name()));
                }
            }
        }
        tick.send_modify(|n| *n += 1);
    }
}

// ---------------------------------------------------------------- one round

struct Row {
    queries: usize,
    ws: Vec<Duration>,
    quic: Vec<Duration>,
    tps: f64,
    rss_per_query_kb: f64,
    hwm_kb: u64,
}

/// A fresh daemon and database, seeded, with `n` queries subscribed on both
/// planes: latency, sustained writes, memory.
/// Seeds a fresh daemon, materializes `n` distinct queries (each fresh
/// when `fresh` is asked for) and subscribes them on both planes, waiting for
/// every snapshot. Returns the control-plane connection, the two planes'
/// subscribers and the RSS (kB) after seeding.
async fn live(s: Scale, n: usize, d: &Daemon, fresh: bool) -> R<(Http, Side, Side, u64)> {
    let mut http = Http::connect(d.addr("httpPort")?).await?;
    let t = Instant::now();
    seed(&mut http, s).await.map_err(|e| d.died(e))?;
    eprintln!(
        "  N = {n}: seeded {} users, {} issues, {} comments in {:.2?}",
        s.users,
        s.issues,
        s.comments,
        t.elapsed()
    );
    let (rss0, _) = d.memory()?;
    let t = Instant::now();
    let mut leases = Vec::with_capacity(n);
    for q in 0..n {
        let r = http
            .call("/materialize", &json!({ "ast": query(q, s.users) }))
            .await?;
        if fresh && r["reused"] != false {
            return Err(format!("query {q} was not a fresh materialization: {r}"));
        }
        let lease = r["leaseToken"]
            .as_str()
            .ok_or(format!("no leaseToken in {r}"))?;
        leases.push(lease.to_string());
    }
    let mut ws = Side::subscribe(Plane::Ws, d, &leases).await?;
    let mut quic = Side::subscribe(Plane::Quic, d, &leases).await?;
    let all = |t: &Tally| t.snapshots >= n;
    let (a, b) = tokio::join!(
        ws.wait(SNAPSHOTS, "the snapshots", all),
        quic.wait(SNAPSHOTS, "the snapshots", all)
    );
    a?;
    b?;
    eprintln!(
        "  N = {n}: materialized and subscribed on both planes in {:.2?}",
        t.elapsed()
    );
    Ok((http, ws, quic, rss0))
}

async fn round(o: &Options, n: usize) -> R<Row> {
    let s = o.scale;
    let dir = tempfile::tempdir().map_err(fail("a temporary directory"))?;
    let d = Daemon::start(dir.path())?;
    let result = measure(o, n, &d).await;
    let stopped = d.stop();
    let row = result?;
    stopped?;
    eprintln!("  N = {n}: done ({} scale)", s.name);
    Ok(row)
}

async fn measure(o: &Options, n: usize, d: &Daemon) -> R<Row> {
    let s = o.scale;
    let http_addr = d.addr("httpPort")?;
    let (mut http, mut ws, mut quic, rss0) = live(s, n, d, true).await?;
    let (rss_n, _) = d.memory()?;

    // Latency: one write at a time, fresh comment ids past the dataset's.
    let mut next_id = s.comments;
    let (mut ws_lat, mut quic_lat) = (Vec::new(), Vec::new());
    for j in 0..o.writes {
        let issue = target(j, n, s.users);
        let expect = affected(issue, n, s.users);
        let t0 = Instant::now();
        let cv = http.comment(next_id, issue).await?;
        next_id += 1;
        let (a, b) = tokio::join!(ws.arrived(cv, expect), quic.arrived(cv, expect));
        ws_lat.push(a? - t0);
        quic_lat.push(b? - t0);
    }

    // Sustained writes from a few connections; the clients keep draining.
    let (ws0, quic0) = (ws.batches(), quic.batches());
    let ids = Arc::new(AtomicI64::new(0));
    let started = Instant::now();
    let end = started + o.sustain;
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let (ids, base) = (ids.clone(), next_id);
        writers.push(tokio::spawn(async move {
            let mut http = Http::connect(http_addr).await?;
            let (mut done, mut expect) = (0u64, 0u64);
            while Instant::now() < end {
                let j = ids.fetch_add(1, Ordering::Relaxed);
                let issue = target(j as usize, n, s.users);
                http.comment(base + j, issue).await?;
                done += 1;
                expect += affected(issue, n, s.users);
            }
            Ok::<_, String>((done, expect, Instant::now()))
        }));
    }
    let (mut done, mut expect, mut last) = (0, 0, started);
    for w in writers {
        let (w_done, w_expect, at) = w.await.map_err(fail("a writer task"))??;
        done += w_done;
        expect += w_expect;
        last = last.max(at);
    }
    let tps = done as f64 / (last - started).as_secs_f64();
    let what = format!("the {expect} batches of {done} sustained writes");
    let (a, b) = tokio::join!(
        ws.wait(CATCH_UP, &what, |t| t.batches - ws0 >= expect),
        quic.wait(CATCH_UP, &what, |t| t.batches - quic0 >= expect)
    );
    a?;
    b?;
    eprintln!(
        "  N = {n}: {done} sustained writes in {:.2?}; every batch arrived after {:.2?}",
        last - started,
        started.elapsed()
    );

    let (_, hwm) = d.memory()?;
    ws.close();
    quic.close();
    Ok(Row {
        queries: n,
        ws: ws_lat,
        quic: quic_lat,
        tps,
        rss_per_query_kb: (rss_n as f64 - rss0 as f64) / n as f64,
        hwm_kb: hwm,
    })
}

// ---------------------------------------------------------------- soak

/// One sample of what must stay flat.
struct Sample {
    at: Duration,
    writes: u64,
    rss_kb: u64,
    wal_bytes: u64,
    fds: usize,
}

impl Sample {
    /// The sample as a row of the report's table.
    fn row(&self) -> String {
        format!(
            "| {:.0?} | {} | {:.1} MB | {:.2} MB | {} |",
            self.at,
            self.writes,
            self.rss_kb as f64 / 1024.0,
            self.wal_bytes as f64 / (1 << 20) as f64,
            self.fds
        )
    }
}

/// One daemon, `n` queries subscribed on both planes, writes from
/// [`WRITERS`] connections for `length`; samples every tenth of it.
async fn soak(o: &Options, n: usize, length: Duration) -> R<Vec<Sample>> {
    let s = o.scale;
    let dir = tempfile::tempdir().map_err(fail("a temporary directory"))?;
    let d = Daemon::start(dir.path())?;
    let wal = dir.path().join("issues.db-wal");
    let http_addr = d.addr("httpPort")?;
    let (_, mut ws, mut quic, _) = live(s, n, &d, false).await?;
    eprintln!("  soak: {n} queries subscribed on both planes; writing for {length:.0?}");
    let started = Instant::now();
    let done = Arc::new(AtomicI64::new(0));
    let expected = Arc::new(AtomicI64::new(0));
    let sample = |d: &Daemon| -> R<Sample> {
        Ok(Sample {
            at: started.elapsed(),
            writes: done.load(Ordering::Relaxed) as u64,
            rss_kb: d.memory()?.0,
            wal_bytes: std::fs::metadata(&wal).map_or(0, |m| m.len()),
            fds: d.fds()?,
        })
    };
    let mut samples = vec![sample(&d)?];
    let (ws0, quic0) = (ws.batches(), quic.batches());
    let end = started + length;
    let mut writers = Vec::new();
    for w in 0..WRITERS as i64 {
        let (done, expected) = (done.clone(), expected.clone());
        let base = s.comments + w * 1_000_000_000;
        writers.push(tokio::spawn(async move {
            let mut http = Http::connect(http_addr).await?;
            // Steady state: each write also deletes this writer's comment of
            // one full cycle of targets ago (the same issue, so the same
            // queries get one batch), keeping the data's size constant.
            let cycle = (n.min(s.users as usize) as i64) * VIEWPORT;
            let mut j = 0i64;
            while Instant::now() < end {
                let issue = target(j as usize, n, s.users);
                let r = http
                    .call(
                        "/execute-sql-txn",
                        &json!({"statements": [
                            {"sql": "INSERT INTO comment VALUES (?1, ?2, 'soak', 0)",
                             "params": [base + j, issue]},
                            {"sql": "DELETE FROM comment WHERE id = ?1",
                             "params": [base + j - cycle]},
                        ]}),
                    )
                    .await?;
                if r["applied"] != true {
                    return Err(format!("/execute-sql-txn answered {r}"));
                }
                j += 1;
                done.fetch_add(1, Ordering::Relaxed);
                expected.fetch_add(affected(issue, n, s.users) as i64, Ordering::Relaxed);
            }
            Ok::<_, String>(())
        }));
    }
    let every = length / 10;
    while Instant::now() < end {
        tokio::time::sleep(every.min(end.saturating_duration_since(Instant::now()))).await;
        samples.push(sample(&d)?);
        let last = samples.last().ok_or("no sample")?;
        eprintln!("  soak {}", last.row());
    }
    for w in writers {
        w.await.map_err(fail("a writer task"))??;
    }
    let expect = expected.load(Ordering::Relaxed) as u64;
    let what = format!("the {expect} batches of the soak's writes");
    let (a, b) = tokio::join!(
        ws.wait(CATCH_UP, &what, |t| t.batches - ws0 >= expect),
        quic.wait(CATCH_UP, &what, |t| t.batches - quic0 >= expect)
    );
    a?;
    b?;
    samples.push(sample(&d)?);
    ws.close();
    quic.close();
    d.stop()?;
    Ok(samples)
}

// ---------------------------------------------------------------- report

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn machine() -> (String, String) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    (cpus.to_string(), model)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let s = o.scale;
    let (cpus, model) = machine();
    println!("# rindled end to end (loopback)\n");
    println!("- machine: nproc {cpus}, {model}");
    println!(
        "- scale: {} ({} users, {} issues, {} comments); the spec's headline is `--scale large`",
        s.name, s.users, s.issues, s.comments
    );
    println!(
        "- each N: a fresh daemon (`{}`, 2 IVM workers), seeded through /execute-sql-txn, N distinct \
         live queries (a user's {VIEWPORT} newest issues with their comments), all subscribed by one \
         WebSocket and one QUIC client",
        Path::new(BIN)
            .file_name()
            .map_or(BIN.into(), |f| f.to_string_lossy())
    );
    println!(
        "- latency: {} single-comment writes one at a time, from the request to the last `nbatch` \
         at that cv on the plane; txn/s: {WRITERS} connections writing for {:.1?}",
        o.writes, o.sustain
    );
    println!(
        "- RSS per query: (VmRSS with N subscribed − VmRSS after seeding) / N; peak RSS: VmHWM at \
         the end of the round\n"
    );
    if let Some(length) = o.soak {
        let n = o.queries.iter().copied().max().unwrap_or(1000);
        let samples = match soak(&o, n, length).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("daemon soak failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "## soak: {n} live queries on both planes, {WRITERS} writers for {length:.0?} \
             (last row: after every batch arrived)\n"
        );
        println!("| at | writes | RSS | WAL | open fds |");
        println!("|---:|---:|---:|---:|---:|");
        for x in &samples {
            println!("{}", x.row());
        }
        return ExitCode::SUCCESS;
    }
    let mut rows = Vec::new();
    for &n in &o.queries {
        match round(&o, n).await {
            Ok(r) => rows.push(r),
            Err(e) => {
                eprintln!("daemon bench failed with N = {n}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "| queries | WS p50 | WS p99 | QUIC p50 | QUIC p99 | txn/s | RSS per query | peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for mut r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.1} kB | {:.1} MB |",
            r.queries,
            ms(percentile(&mut r.ws, 0.5)),
            ms(percentile(&mut r.ws, 0.99)),
            ms(percentile(&mut r.quic, 0.5)),
            ms(percentile(&mut r.quic, 0.99)),
            r.tps,
            r.rss_per_query_kb,
            r.hwm_kb as f64 / 1024.0,
        );
    }
    ExitCode::SUCCESS
}
