//! The WAL stays bounded while live queries are maintained, and the commit
//! version survives reopening: the Cluster (what rindled runs) and the
//! single-threaded `Db`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use rindle_core::{Change, Query, QueryId, Value, col, row};
use rindle_replica::cluster::{Cluster, ClusterEvent, ClusterOptions};
use rindle_sqlite::{Db, SqlWrite, SqliteBackend, wal_size};

const BOUND: u64 = 1 << 20;

const ITEMS: &str = "CREATE TABLE IF NOT EXISTS item (
    id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, rank INTEGER NOT NULL, label TEXT NOT NULL)";

/// Counts, per query, the rows its events say it holds now.
fn drain(rx: Receiver<ClusterEvent>) -> JoinHandle<BTreeMap<QueryId, i64>> {
    std::thread::spawn(move || {
        let mut sizes: BTreeMap<QueryId, i64> = BTreeMap::new();
        for e in rx {
            let (query, changes, reset) = match e {
                ClusterEvent::Hydrated { query, changes, .. } => (query, changes, true),
                ClusterEvent::Changed { query, changes, .. } => (query, changes, false),
                ClusterEvent::Faulted { message, .. } => panic!("a query faulted: {message}"),
                _ => continue,
            };
            let n = sizes.entry(query).or_default();
            if reset {
                *n = 0;
            }
            for c in changes {
                match c {
                    Change::Add(_) => *n += 1,
                    Change::Remove(_) => *n -= 1,
                    _ => {}
                }
            }
        }
        sizes
    })
}

/// Counts rows with a fresh read-only connection (the fresh-query side).
fn count(path: &Path, sql: &str) -> i64 {
    let ro = rindle_sqlite::ReadOnly::open(path).unwrap();
    match ro.query(sql, &[]).unwrap().rows[0][0] {
        Value::Int(n) => n,
        ref v => panic!("{v:?}"),
    }
}

#[test]
fn cluster_keeps_the_wal_under_its_bound_through_200k_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let (cluster, rx) =
        Cluster::<SqliteBackend>::open(path.clone(), ClusterOptions::new(2)).unwrap();
    let sizes = drain(rx);
    cluster.with_backend(|b| b.set_wal_max_bytes(BOUND));
    cluster
        .transaction(|tx| tx.backend().execute_batch(ITEMS))
        .unwrap();
    cluster.register_table("item").unwrap();
    let queries = [
        Query::table("item").filter(col("grp").eq(3)).into_ast(),
        Query::table("item")
            .order_by("rank", rindle_core::Direction::Desc)
            .limit(5)
            .into_ast(),
        Query::table("item").filter(col("rank").lt(100)).into_ast(),
    ];
    for (i, q) in queries.iter().enumerate() {
        cluster.add_query(QueryId(i as u64 + 1), q).unwrap();
    }
    let stats = cluster.with_backend(|b| b.wal_stats());
    let mut largest = 0;
    for n in 0..200_000i64 {
        let id = n % 5_000;
        cluster
            .transaction(|tx| {
                tx.backend().execute(
                    "INSERT INTO item VALUES (?1, ?2, ?3, 'x') ON CONFLICT (id) DO UPDATE
                     SET grp = excluded.grp, rank = excluded.rank, label = label || 'y'",
                    &[
                        Value::Int(id),
                        Value::Int(n % 7),
                        Value::Int((n * 7919) % 1_000),
                    ],
                )
            })
            .unwrap();
        if n % 64 == 0 {
            largest = largest.max(wal_size(&path));
            assert!(
                largest <= BOUND,
                "WAL of {largest} bytes after {n} transactions"
            );
        }
    }
    let checkpoints = stats.checkpoints.load(std::sync::atomic::Ordering::Relaxed);
    assert!(checkpoints > 10, "only {checkpoints} checkpoints");
    assert_eq!(cluster.cv(), 200_001);
    cluster.shutdown();
    let sizes = sizes.join().unwrap();
    // The live views still equal fresh reads.
    assert_eq!(
        sizes[&QueryId(1)],
        count(&path, "SELECT count(*) FROM item WHERE grp = 3")
    );
    assert_eq!(sizes[&QueryId(2)], 5);
    assert_eq!(
        sizes[&QueryId(3)],
        count(&path, "SELECT count(*) FROM item WHERE rank < 100")
    );
    eprintln!("largest WAL {largest} bytes, {checkpoints} checkpoints");
}

#[test]
fn db_keeps_the_wal_under_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let db = Db::open(path.clone()).unwrap();
    db.with_backend(|b| b.set_wal_max_bytes(BOUND)).unwrap();
    let mut tx = db.write().unwrap();
    tx.execute_batch(ITEMS).unwrap();
    tx.commit().unwrap();
    db.register_table("item").unwrap();
    let q = db
        .query(
            QueryId(1),
            &Query::table("item").filter(col("grp").eq(2)).into_ast(),
        )
        .unwrap();
    for n in 0..30_000i64 {
        let mut tx = db.write().unwrap();
        tx.execute(
            "INSERT OR REPLACE INTO item VALUES (?1, ?2, ?3, 'x')",
            &[Value::Int(n % 1_000), Value::Int(n % 5), Value::Int(n)],
        )
        .unwrap();
        tx.commit().unwrap();
        if n % 64 == 0 {
            let wal = wal_size(&path);
            assert!(wal <= BOUND, "WAL of {wal} bytes after {n} transactions");
        }
    }
    assert_eq!(
        q.current().unwrap().len() as i64,
        count(&path, "SELECT count(*) FROM item WHERE grp = 2")
    );
}

#[test]
fn the_commit_version_resumes_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cv.db");
    {
        let (cluster, rx) =
            Cluster::<SqliteBackend>::open(path.clone(), ClusterOptions::new(1)).unwrap();
        let sizes = drain(rx);
        cluster
            .transaction(|tx| tx.backend().execute_batch(ITEMS))
            .unwrap();
        cluster.register_table("item").unwrap();
        for i in 0..9 {
            cluster
                .transaction(|tx| tx.insert("item", row![i, 1, i, "a"]))
                .unwrap();
        }
        // A rolled-back transaction takes no cv.
        let failed = cluster.transaction(|tx| {
            tx.insert("item", row![100, 1, 1, "a"])?;
            tx.insert("item", row![100, 1, 1, "a"])
        });
        assert!(failed.is_err());
        assert_eq!(cluster.cv(), 10);
        cluster.shutdown();
        sizes.join().unwrap();
    }
    // Reopened (as after a crash: nothing was closed cleanly but the commits).
    let (cluster, rx) =
        Cluster::<SqliteBackend>::open(path.clone(), ClusterOptions::new(1)).unwrap();
    let sizes = drain(rx);
    assert_eq!(cluster.cv(), 10);
    cluster.register_table("item").unwrap();
    let (cv, ()) = cluster
        .transaction(|tx| tx.insert("item", row![50, 1, 1, "b"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cv, 11);
    cluster.shutdown();
    sizes.join().unwrap();

    // The single-threaded Db reads and continues the same counter.
    let db = Db::open(path.clone()).unwrap();
    assert_eq!(db.tx_id(), 11);
    db.register_table("item").unwrap();
    let mut tx = db.write().unwrap();
    tx.insert("item", row![51, 1, 1, "c"]).unwrap();
    assert_eq!(tx.commit().unwrap().tx_id, 12);
    drop(db);
    assert_eq!(Db::open(path).unwrap().tx_id(), 12);
}
