//! `rindle_redb::Db`: persisted schemas, the row API, rollback, and
//! acknowledged commits surviving a SIGKILL.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;

use rindle_core::{Change, Column, ColumnType, Node, Query, QueryId, TableSchema, col, row};
use rindle_redb::{Db, DbError, RedbError, Update};
use rindle_replica::DbError as ReplicaError;

fn issue() -> TableSchema {
    TableSchema::new(
        "issue",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("title", ColumnType::Text).not_null(),
            Column::new("open", ColumnType::Boolean),
        ],
        &["id"],
    )
    .unwrap()
}

#[test]
fn a_reopened_database_knows_its_tables_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    {
        let db = Db::open(&path).unwrap();
        db.register_table(issue()).unwrap();
        let mut tx = db.write().unwrap();
        tx.insert("issue", row![1, "a", true]).unwrap();
        tx.insert("issue", row![2, "b", false]).unwrap();
        tx.commit().unwrap();
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.tables(), vec![issue()], "registered again by itself");
    let q = db.query(
        QueryId(1),
        &Query::table("issue")
            .filter(col("open").eq(true))
            .into_ast(),
    );
    assert_eq!(
        q.unwrap().current().unwrap(),
        vec![Node::leaf(row![1, "a", true])]
    );
    let mut tx = db.write().unwrap();
    tx.insert("issue", row![3, "c", true]).unwrap();
    tx.commit().unwrap();
    // Registering it again with the same schema is fine; a different one is refused.
    db.register_table(issue()).unwrap();
    let other = TableSchema::new(
        "issue",
        vec![Column::new("id", ColumnType::Integer)],
        &["id"],
    )
    .unwrap();
    assert!(matches!(
        db.register_table(other),
        Err(ReplicaError::Backend(RedbError::SchemaMismatch { .. }))
    ));
}

#[test]
fn the_row_api_records_every_change_and_rollback_delivers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.redb")).unwrap();
    db.register_table(issue()).unwrap();
    let q = db
        .query(QueryId(1), &Query::table("issue").into_ast())
        .unwrap();
    let log: Rc<RefCell<Vec<Update>>> = Rc::default();
    let l = log.clone();
    q.subscribe(move |u| l.borrow_mut().push(u.clone()))
        .unwrap();

    let mut tx = db.write().unwrap();
    tx.insert("issue", row![1, "a", true]).unwrap();
    assert!(matches!(
        tx.insert("issue", row![1, "again", true]),
        Err(ReplicaError::Backend(RedbError::DuplicateKey { .. }))
    ));
    tx.update("issue", row![1, "a2", false]).unwrap();
    assert!(matches!(
        tx.delete("issue", row![7, "", true]),
        Err(ReplicaError::Backend(RedbError::NoSuchRow { .. }))
    ));
    assert!(matches!(
        tx.insert("issue", row![2]),
        Err(ReplicaError::Change(_))
    ));
    let c = tx.commit().unwrap();
    assert_eq!((c.tx_id, c.changes), (1, 2));
    // One output change per row change, in order.
    assert!(matches!(
        &log.borrow()[1],
        Update::Changed { tx_id: 1, changes } if changes == &vec![
            Change::Add(Node::leaf(row![1, "a", true])),
            Change::Edit { old: Node::leaf(row![1, "a", true]), new: Node::leaf(row![1, "a2", false]) },
        ]
    ));

    let mut tx = db.write().unwrap();
    tx.delete("issue", row![1, "a2", false]).unwrap();
    tx.rollback().unwrap();
    {
        let mut tx = db.write().unwrap();
        tx.insert("issue", row![3, "c", true]).unwrap();
    }
    assert_eq!(log.borrow().len(), 2, "rollbacks deliver nothing");
    assert_eq!(q.current().unwrap().len(), 1);
    assert!(matches!(db.write().map(|_| ()), Ok(())));
}

#[test]
fn registration_waits_for_the_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.redb")).unwrap();
    let _tx = db.write().unwrap();
    assert!(matches!(
        db.register_table(issue()),
        Err(DbError::Busy) | Err(ReplicaError::Backend(RedbError::Busy))
    ));
}

const CHILD: &str = "RINDLE_REDB_CRASH_CHILD";

fn writer(path: &str) {
    let db = Db::open(path).unwrap();
    db.register_table(issue()).unwrap();
    let _q = db
        .query(QueryId(1), &Query::table("issue").into_ast())
        .unwrap();
    let out = std::io::stdout();
    for i in 1..=100_000i64 {
        let mut tx = db.write().unwrap();
        tx.insert("issue", row![i, format!("entry {i}").as_str(), true])
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
    let path = dir.path().join("crash.redb");
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
            if acknowledged >= 100 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(acknowledged >= 100, "the writer stopped early");
    let db = Db::open(&path).unwrap();
    let q = db
        .query(QueryId(1), &Query::table("issue").into_ast())
        .unwrap();
    let ids: Vec<i64> = q
        .current()
        .unwrap()
        .iter()
        .map(|n| match n.row[0] {
            rindle_core::Value::Int(i) => i,
            ref v => panic!("{v:?}"),
        })
        .collect();
    assert!(
        ids.len() as i64 >= acknowledged,
        "lost acknowledged commits"
    );
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "no half transaction"
    );
}
