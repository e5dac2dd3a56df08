//! One large transaction through a live limit window (BENCHMARKS.md, "One
//! large transaction through a limit window"): an `INSERT … SELECT` of N rows
//! that each enter `orderBy id <dir> limit 3`, timed from the commit until the
//! view is derived, on the SQLite `Db`, through a one-worker Cluster (the
//! daemon's path), and as a stream of adds into the in-memory engine; and a
//! transaction that deletes every row and inserts it again. Prints markdown.
//!
//! `cargo bench -p rindle-bench --bench big_txn -- [--rows 10000,30000,100000]`

#![allow(clippy::print_stdout)] // the report is this program's output

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rindle_core::{
    Ast, Column, ColumnType, Direction, Engine, MemoryCatalog, Query, QueryEvent, QueryId,
    SourceChange, TableSchema, row,
};
use rindle_replica::cluster::{Cluster, ClusterEvent, ClusterOptions};
use rindle_sqlite::{Db, SqlWrite, SqliteBackend};

type R<T> = Result<T, String>;

/// One measured case: rows and window direction to the time it took.
type Case = fn(i64, Direction) -> R<Duration>;

const ITEM: &str =
    "CREATE TABLE item (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, v INTEGER NOT NULL)";

/// Inserts items `from..from + n` with one statement.
const INSERT: &str =
    "WITH RECURSIVE k(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?1 + ?2)
     INSERT INTO item SELECT i, i % 4, (i * 7919) % 1000 FROM k";

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn window(dir: Direction) -> Ast {
    Query::table("item").order_by("id", dir).limit(3).into_ast()
}

/// A `Db` holding items `1..=seed` and a live window; returns it with the
/// directory that holds its file.
fn db_with(seed: i64, dir: Direction) -> R<(tempfile::TempDir, Db, rindle_sqlite::QueryHandle)> {
    let tmp = tempfile::tempdir().map_err(err)?;
    let db = Db::open(tmp.path().join("t.db")).map_err(err)?;
    let mut tx = db.write().map_err(err)?;
    tx.execute(ITEM, &[]).map_err(err)?;
    tx.execute(INSERT, &[1.into(), seed.into()]).map_err(err)?;
    tx.commit().map_err(err)?;
    db.register_table("item").map_err(err)?;
    let live = db.query(QueryId(1), &window(dir)).map_err(err)?;
    Ok((tmp, db, live))
}

/// `n` rows inserted in one transaction above 100 committed ones: the
/// commit's time (it derives the live window).
fn db_insert(n: i64, dir: Direction) -> R<Duration> {
    let (_tmp, db, _live) = db_with(100, dir)?;
    let mut tx = db.write().map_err(err)?;
    tx.execute(INSERT, &[101.into(), n.into()]).map_err(err)?;
    let t = Instant::now();
    tx.commit().map_err(err)?;
    Ok(t.elapsed())
}

/// Every one of `n` committed rows deleted and inserted again in one
/// transaction: the commit's time.
fn db_replace(n: i64, dir: Direction) -> R<Duration> {
    let (_tmp, db, _live) = db_with(n, dir)?;
    let mut tx = db.write().map_err(err)?;
    tx.execute("DELETE FROM item", &[]).map_err(err)?;
    tx.execute(INSERT, &[1.into(), n.into()]).map_err(err)?;
    let t = Instant::now();
    tx.commit().map_err(err)?;
    Ok(t.elapsed())
}

/// `n` rows inserted through a one-worker Cluster: from the transaction's
/// start until the worker's progress marker for it.
fn cluster_insert(n: i64, dir: Direction) -> R<Duration> {
    let tmp = tempfile::tempdir().map_err(err)?;
    let (c, rx) = Cluster::<SqliteBackend>::open(tmp.path().join("c.db"), ClusterOptions::new(1))
        .map_err(err)?;
    c.transaction(|tx| tx.backend().execute_batch(ITEM))
        .map_err(err)?;
    c.register_table("item").map_err(err)?;
    c.add_query(QueryId(1), &window(dir)).map_err(err)?;
    let t = Instant::now();
    let (cv, _) = c
        .transaction(|tx| tx.backend().execute(INSERT, &[1.into(), n.into()]))
        .map_err(err)?;
    loop {
        match rx.recv().map_err(err)? {
            ClusterEvent::Progress { cv: p, .. } if p >= cv => break,
            ClusterEvent::Faulted { message, .. } => return Err(message),
            _ => {}
        }
    }
    let elapsed = t.elapsed();
    c.shutdown();
    Ok(elapsed)
}

/// `n` adds pushed one by one into the in-memory engine above 100 rows.
fn memory_insert(n: i64, dir: Direction) -> R<Duration> {
    let schema = TableSchema::new(
        "item",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("grp", ColumnType::Integer),
        ],
        &["id"],
    )
    .map_err(err)?;
    let mut catalog = MemoryCatalog::new();
    catalog.add_table(schema).map_err(err)?;
    for i in 1..=100 {
        catalog.insert("item", row![i, i % 4]).map_err(err)?;
    }
    let mut engine = Engine::new(catalog);
    engine.add_query(QueryId(1), &window(dir)).map_err(err)?;
    let t = Instant::now();
    for i in 101..101 + n {
        engine
            .push("item", SourceChange::Add(row![i, i % 4]))
            .map_err(err)?;
        for e in engine.drain() {
            if let QueryEvent::Faulted { error, .. } = e {
                return Err(error.to_string());
            }
        }
    }
    Ok(t.elapsed())
}

fn rows() -> R<Vec<i64>> {
    let mut args = std::env::args().skip(1);
    let mut rows = vec![10_000, 30_000, 100_000];
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--rows" => {
                let v = args.next().ok_or("--rows needs a value")?;
                rows = v
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|_| format!("--rows {v:?}")))
                    .collect::<R<_>>()?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}\nusage: cargo bench -p rindle-bench --bench big_txn -- [--rows 10000,30000,100000]"
                ));
            }
        }
    }
    Ok(rows)
}

fn run() -> R<()> {
    let rows = rows()?;
    let cases: [(&str, Case); 4] = [
        ("SQLite `Db`, insert", db_insert),
        ("SQLite `Db`, delete all and insert again", db_replace),
        (
            "Cluster (1 worker), insert, write until derived",
            cluster_insert,
        ),
        ("memory engine, adds pushed one by one", memory_insert),
    ];
    println!("# One large transaction through a limit-3 window on `id`\n");
    let sizes: Vec<String> = rows.iter().map(|n| format!("{n} rows")).collect();
    println!("| case | window | {} |", sizes.join(" | "));
    println!("|---|---|{}", "---:|".repeat(rows.len()));
    for (name, f) in cases {
        for dir in [Direction::Desc, Direction::Asc] {
            let mut cells = Vec::new();
            for &n in &rows {
                cells.push(format!("{:.1?}", f(n, dir)?));
            }
            println!("| {name} | {dir:?} | {} |", cells.join(" | "));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("big_txn bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
