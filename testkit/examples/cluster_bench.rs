//! The Cluster under load: 300 live queries (100 users × 3 relational shapes)
//! over the issue tracker in SQLite, and a stream of comment writes; throughput
//! and per-transaction derive latency with 1, 2 and 4 workers.
//!
//! `cargo run --release -p rindle-testkit --example cluster_bench [transactions]`

#![allow(clippy::print_stdout)] // printing the results table is this tool's job

use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rindle_core::{Ast, Direction, Query, QueryId, col, exists, row};
use rindle_replica::cluster::{Cluster, ClusterEvent, ClusterOptions};
use rindle_sqlite::SqliteBackend;
use rindle_testkit::IssueTracker;

const USERS: usize = 100;

fn shapes(u: i64) -> [Ast; 3] {
    [
        // A user's 10 newest issues, each with its comment count.
        Query::table("issue")
            .filter(col("creatorID").eq(u))
            .order_by("created", Direction::Desc)
            .limit(10)
            .related(
                "comments",
                &["id"],
                &["issueID"],
                Query::table("comment").aggregate(rindle_core::Aggregate::Count),
            )
            .into_ast(),
        // A user's 10 newest comments, each with its issue.
        Query::table("comment")
            .filter(col("creatorID").eq(u))
            .order_by("id", Direction::Desc)
            .limit(10)
            .related("issue", &["issueID"], &["id"], Query::table("issue").one())
            .into_ast(),
        // A user's 5 newest open issues that have comments.
        Query::table("issue")
            .filter(col("creatorID").eq(u))
            .filter(col("open").eq(true))
            .filter(exists("c", &["id"], &["issueID"], Query::table("comment")))
            .order_by("created", Direction::Desc)
            .limit(5)
            .into_ast(),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

struct Run {
    workers: usize,
    tps: f64,
    p50: Duration,
    p99: Duration,
    changes: usize,
}

fn run(workers: usize, transactions: usize, data: &IssueTracker) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    {
        let mut conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode = WAL")
            .expect("wal");
        data.load_sqlite(&mut conn).expect("load");
    }
    let (cluster, events) =
        Cluster::<SqliteBackend>::open(path, ClusterOptions::new(workers)).expect("cluster");
    for t in ["user", "issue", "comment"] {
        cluster.register_table(t).expect("register");
    }
    let done: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let counted = Arc::new(Mutex::new(0usize));
    let consumer = {
        let done = done.clone();
        let counted = counted.clone();
        std::thread::spawn(move || consume(&events, workers, &done, &counted))
    };
    for u in 0..USERS as i64 {
        for (k, ast) in shapes(u).iter().enumerate() {
            cluster
                .add_query(QueryId(u as u64 * 3 + k as u64), ast)
                .expect("query");
        }
    }
    let mut committed = BTreeMap::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as i64
    };
    let start = Instant::now();
    for t in 0..transactions {
        let id = (data.comments + t) as i64;
        let issue = next(data.issues);
        let user = next(data.users);
        let (cv, ()) = cluster
            .transaction(|tx| {
                tx.insert(
                    "comment",
                    row![id, issue, format!("bench comment {id}").as_str(), user],
                )
            })
            .expect("write");
        committed.insert(cv, Instant::now());
    }
    let last = *committed.keys().last().expect("some transactions");
    while !done.lock().expect("lock").contains_key(&last) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = start.elapsed();
    drop(cluster);
    let _ = consumer.join();
    let done = done.lock().expect("lock");
    let mut lat: Vec<Duration> = committed
        .iter()
        .filter_map(|(cv, at)| done.get(cv).map(|d| d.saturating_duration_since(*at)))
        .collect();
    lat.sort();
    let changes = *counted.lock().expect("lock");
    Run {
        workers,
        tps: transactions as f64 / elapsed.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        changes,
    }
}

/// Records when every worker's progress marker for each cv has arrived.
fn consume(
    events: &Receiver<ClusterEvent>,
    workers: usize,
    done: &Mutex<BTreeMap<u64, Instant>>,
    counted: &Mutex<usize>,
) {
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    while let Ok(e) = events.recv() {
        match e {
            ClusterEvent::Progress { cv, .. } => {
                let n = seen.entry(cv).or_default();
                *n += 1;
                if *n == workers {
                    done.lock().expect("lock").insert(cv, Instant::now());
                }
            }
            ClusterEvent::Changed { changes, .. } => {
                *counted.lock().expect("lock") += changes.len()
            }
            _ => {}
        }
    }
}

fn main() {
    let transactions: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let data = IssueTracker::with_counts(USERS, 2_000, 10_000);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Cluster: {} live queries ({USERS} users × 3 shapes) over SQLite, {} users / {} issues / {} comments; \
         {transactions} single-comment transactions; {cpus} CPUs\n",
        USERS * 3,
        data.users,
        data.issues,
        data.comments
    );
    println!("| workers | transactions/s | derive latency p50 | p99 | changes delivered |");
    println!("|---:|---:|---:|---:|---:|");
    for workers in [1, 2, 4] {
        let r = run(workers, transactions, &data);
        println!(
            "| {} | {:.0} | {:.0?} | {:.0?} | {} |",
            r.workers, r.tps, r.p50, r.p99, r.changes
        );
    }
}
