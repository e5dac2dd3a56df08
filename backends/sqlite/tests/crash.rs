//! Acknowledged commits survive a SIGKILL of the writing process.
//!
//! The test re-executes its own binary as the writer (selected by an
//! environment variable): the child commits one row per transaction and prints
//! `committed N` only after `commit()` returned; the parent kills it with
//! SIGKILL mid-stream, reopens the file, and finds every acknowledged row.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use rindle_core::{Query, QueryId, row};
use rindle_sqlite::{Db, SqlWrite};

const CHILD: &str = "RINDLE_CRASH_CHILD";

fn writer(path: &str) {
    let db = Db::open(path).unwrap();
    let mut tx = db.write().unwrap();
    tx.execute_batch("CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .unwrap();
    tx.commit().unwrap();
    db.register_table("log").unwrap();
    // A live query, so each commit also derives and delivers.
    let _q = db
        .query(QueryId(1), &Query::table("log").into_ast())
        .unwrap();
    let out = std::io::stdout();
    for i in 1..=100_000i64 {
        let mut tx = db.write().unwrap();
        tx.insert("log", row![i, format!("entry {i}").as_str()])
            .unwrap();
        tx.commit().unwrap();
        let mut out = out.lock();
        writeln!(out, "committed {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    if let Ok(path) = std::env::var(CHILD) {
        writer(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_commits_survive_sigkill",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acknowledged = 0i64;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(n) = line.strip_prefix("committed ") {
            acknowledged = n.parse().unwrap();
            if acknowledged >= 300 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(acknowledged >= 300, "the writer stopped early");

    let conn = rusqlite::Connection::open(&path).unwrap();
    let (count, max): (i64, i64) = conn
        .query_row("SELECT count(*), coalesce(max(id), 0) FROM log", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(
        max >= acknowledged,
        "lost acknowledged commits: {max} < {acknowledged}"
    );
    assert_eq!(
        count, max,
        "rows are contiguous: no transaction was half-applied"
    );
    // The database reopens as a live Db with everything in it.
    drop(conn);
    let db = Db::open(&path).unwrap();
    db.register_table("log").unwrap();
    let q = db
        .query(QueryId(1), &Query::table("log").into_ast())
        .unwrap();
    assert_eq!(q.current().unwrap().len() as i64, count);
}
