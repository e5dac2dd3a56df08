//! The Cluster: the differential harness through 1, 2 and 4 workers, fault
//! isolation with an injected panic, and concurrent writers against a slow
//! consumer on small queues.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rindle_core::{Ast, Change, Query, QueryId, View, ViewFormat, col, row};
use rindle_redb::RedbBackend;
use rindle_replica::cluster::{Cluster, ClusterEvent, ClusterOptions};
use rindle_sqlite::SqliteBackend;
use rindle_testkit::cluster::{ClusterSubject, redb_setup, sqlite_setup};
use rindle_testkit::{CaseConfig, check_subject};

#[test]
fn cluster_matches_the_oracle_with_1_2_and_4_workers() {
    for (workers, file) in [
        (1, "proptest-regressions/cluster1.txt"),
        (2, "proptest-regressions/cluster2.txt"),
        (4, "proptest-regressions/cluster4.txt"),
    ] {
        check_subject(
            move || ClusterSubject::<SqliteBackend>::new(workers, "c.db", sqlite_setup),
            CaseConfig::full().without_negative_zero(),
            file,
            24,
        );
    }
    check_subject(
        || ClusterSubject::<RedbBackend>::new(2, "c.redb", redb_setup),
        CaseConfig::full(),
        "proptest-regressions/cluster_redb.txt",
        24,
    );
}

fn sqlite_cluster(
    options: ClusterOptions,
) -> (
    tempfile::TempDir,
    Cluster<SqliteBackend>,
    std::sync::mpsc::Receiver<ClusterEvent>,
) {
    let dir = tempfile::tempdir().unwrap();
    let (c, rx) = Cluster::<SqliteBackend>::open(dir.path().join("c.db"), options).unwrap();
    (dir, c, rx)
}

/// The `item` table (its creation is cv 1).
fn create_items(c: &Cluster<SqliteBackend>) {
    c.transaction(|tx| {
        tx.backend().execute_batch(
            "CREATE TABLE item (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, n INTEGER NOT NULL)",
        )
    })
    .unwrap();
    c.register_table("item").unwrap();
}

/// The views a consumer keeps, and the progress it has seen.
struct Consumer {
    views: BTreeMap<QueryId, View>,
    formats: BTreeMap<QueryId, Arc<ViewFormat>>,
    faulted: BTreeMap<QueryId, u64>,
    messages: Vec<String>,
    progress: BTreeMap<u64, usize>,
}

impl Consumer {
    fn new() -> Consumer {
        Consumer {
            views: BTreeMap::new(),
            formats: BTreeMap::new(),
            faulted: BTreeMap::new(),
            messages: Vec::new(),
            progress: BTreeMap::new(),
        }
    }

    fn take(&mut self, e: ClusterEvent) {
        match e {
            ClusterEvent::Hydrated {
                query,
                changes,
                format,
                ..
            } => {
                self.formats.insert(query, format);
                let mut v = View::new(self.formats[&query].clone());
                v.apply_all(&changes).unwrap();
                self.views.insert(query, v);
            }
            ClusterEvent::Changed { query, changes, .. } => {
                assert!(!self.faulted.contains_key(&query), "events after a fault");
                self.views
                    .get_mut(&query)
                    .unwrap()
                    .apply_all(&changes)
                    .unwrap();
            }
            ClusterEvent::Faulted { query, cv, message } => {
                self.messages.push(message);
                self.faulted.insert(query, cv);
            }
            ClusterEvent::Progress { cv, .. } => *self.progress.entry(cv).or_default() += 1,
            other => panic!("{other:?}"),
        }
    }

    fn settle(&mut self, rx: &std::sync::mpsc::Receiver<ClusterEvent>, cv: u64, workers: usize) {
        while self.progress.get(&cv).copied().unwrap_or(0) < workers {
            self.take(rx.recv_timeout(Duration::from_secs(30)).expect("progress"));
        }
    }
}

fn queries() -> Vec<(QueryId, Ast)> {
    (1..=6)
        .map(|i| {
            (
                QueryId(i),
                Query::table("item")
                    .filter(col("grp").eq(i as i64 % 3))
                    .order_by("n", rindle_core::Direction::Desc)
                    .limit(4)
                    .into_ast(),
            )
        })
        .collect()
}

/// A fresh query's result equals the maintained view.
fn assert_fresh(
    c: &Cluster<SqliteBackend>,
    rx: &std::sync::mpsc::Receiver<ClusterEvent>,
    consumer: &mut Consumer,
    id: QueryId,
    ast: &Ast,
) {
    let probe = QueryId(1000 + id.0);
    let (_, format) = c.add_query(probe, ast).unwrap();
    consumer.formats.insert(probe, format);
    while !consumer.views.contains_key(&probe) {
        consumer.take(rx.recv_timeout(Duration::from_secs(30)).unwrap());
    }
    assert_eq!(
        consumer.views[&id].to_nodes(),
        consumer.views[&probe].to_nodes(),
        "query {id:?}"
    );
    c.remove_query(probe);
}

#[test]
fn a_panicking_query_is_torn_down_and_nothing_else_breaks() {
    let mut options = ClusterOptions::new(2);
    options.fault_injector = Some(Arc::new(|q: QueryId, cv: u64| q == QueryId(2) && cv == 3));
    let (_dir, c, rx) = sqlite_cluster(options);
    create_items(&c);
    let mut consumer = Consumer::new();
    for (id, ast) in queries() {
        let (_, f) = c.add_query(id, &ast).unwrap();
        consumer.formats.insert(id, f);
    }
    for i in 0..20i64 {
        let (cv, ()) = c
            .transaction(|tx| tx.insert("item", row![i, i % 3, i * 7 % 11]))
            .unwrap();
        consumer.settle(&rx, cv, 2);
    }
    assert_eq!(
        consumer.faulted.get(&QueryId(2)),
        Some(&3),
        "faulted on its injected transaction"
    );
    assert_eq!(consumer.faulted.len(), 1);
    for (id, ast) in queries() {
        if id != QueryId(2) {
            assert_fresh(&c, &rx, &mut consumer, id, &ast);
        }
    }
    // The faulted query is gone; its id can be placed again.
    c.add_query(QueryId(2), &queries()[1].1).unwrap();
}

#[test]
fn a_worker_that_dies_restarts_and_rehydrates_its_queries() {
    let mut options = ClusterOptions::new(2);
    options.worker_killer = Some(Arc::new(|worker: usize, cv: u64| worker == 0 && cv == 3));
    let (_dir, c, rx) = sqlite_cluster(options);
    create_items(&c);
    let mut consumer = Consumer::new();
    let mut placed = BTreeMap::new();
    for (id, ast) in queries() {
        let (worker, f) = c.add_query(id, &ast).unwrap();
        consumer.formats.insert(id, f);
        placed.insert(id, worker);
    }
    assert!(placed.values().any(|w| *w == 0) && placed.values().any(|w| *w == 1));
    let mut hydrations = BTreeMap::new();
    for i in 0..12i64 {
        let (cv, ()) = c
            .transaction(|tx| tx.insert("item", row![i, i % 3, (i * 5) % 7]))
            .unwrap();
        while consumer.progress.get(&cv).copied().unwrap_or(0) < 2 {
            let e = rx.recv_timeout(Duration::from_secs(30)).expect("progress");
            if let ClusterEvent::Hydrated { query, .. } = &e {
                *hydrations.entry(*query).or_insert(0) += 1;
            }
            consumer.take(e);
        }
    }
    assert!(consumer.faulted.is_empty(), "{:?}", consumer.messages);
    // Worker 0's queries were hydrated again after its restart; worker 1's
    // only once, when they were added.
    for (id, worker) in &placed {
        let expected = if *worker == 0 { Some(&2) } else { Some(&1) };
        assert_eq!(
            hydrations.get(id),
            expected,
            "query {id:?} on worker {worker}"
        );
    }
    for (id, ast) in queries() {
        assert_fresh(&c, &rx, &mut consumer, id, &ast);
    }
}

#[test]
fn concurrent_writers_lose_no_write_and_no_event() {
    // Small queues and a slow consumer: writers are held back, nothing is lost.
    let mut options = ClusterOptions::new(4);
    options.queue = 2;
    let (_dir, c, rx) = sqlite_cluster(options);
    let c = Arc::new(c);
    // The consumer starts first: with queues of 2, nothing waits for long
    // unless someone reads the stream.
    let consumer_thread = std::thread::spawn(move || {
        let mut consumer = Consumer::new();
        let mut seen = 0;
        while let Ok(e) = rx.recv_timeout(Duration::from_secs(30)) {
            if seen % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            seen += 1;
            consumer.take(e);
            // The setup transaction is cv 1; the writes are cv 2 to 201.
            if (1..=201).all(|cv| consumer.progress.get(&cv) == Some(&4)) {
                break;
            }
        }
        let fresh: Vec<(QueryId, Vec<rindle_core::Node>)> = consumer
            .views
            .iter()
            .map(|(q, v)| (*q, v.to_nodes()))
            .collect();
        (consumer.formats, fresh, consumer.progress, rx)
    });
    create_items(&c);
    for (id, ast) in queries() {
        c.add_query(id, &ast).unwrap();
    }
    let writers: Vec<_> = (0..8i64)
        .map(|w| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..25i64 {
                    let id = w * 1000 + i;
                    c.transaction(|tx| tx.insert("item", row![id, id % 3, (id * 13) % 17]))
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(c.cv(), 201, "the setup transaction and 200 writes");
    let (formats, maintained, progress, rx) = consumer_thread.join().unwrap();
    // Every transaction's progress arrived from every worker: no event lost.
    assert_eq!(progress.len(), 201);
    assert!(progress.values().all(|n| *n == 4));
    let mut consumer = Consumer::new();
    consumer.formats = formats;
    for (id, nodes) in maintained {
        let mut v = View::new(consumer.formats[&id].clone());
        v.apply_all(&nodes.into_iter().map(Change::Add).collect::<Vec<_>>())
            .unwrap();
        consumer.views.insert(id, v);
    }
    for (id, ast) in queries() {
        assert_fresh(&c, &rx, &mut consumer, id, &ast);
    }
    // Every write is there.
    let (_, f) = c
        .add_query(QueryId(99), &Query::table("item").into_ast())
        .unwrap();
    consumer.formats.insert(QueryId(99), f);
    while !consumer.views.contains_key(&QueryId(99)) {
        consumer.take(rx.recv_timeout(Duration::from_secs(30)).unwrap());
    }
    assert_eq!(consumer.views[&QueryId(99)].len(), 200);
}
