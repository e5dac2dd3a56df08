//! Large single transactions through limit windows over SQLite: every row of
//! one big write passes through the live queries one at a time, with the
//! transaction's earlier rows held in the source's overlay. After each
//! transaction the live view must equal a fresh query (a newly registered
//! query of the same AST, and for flat queries plain SQL).
//!
//! How long such transactions take is measured by
//! `cargo bench -p rindle-bench --bench big_txn`.

use std::cell::RefCell;
use std::rc::Rc;

use rindle_core::{Ast, Direction, Node, Query, QueryId, Value, View, col};
use rindle_sqlite::{Db, QueryHandle, SqlWrite, Update};

const GROUPS: i64 = 4;

/// A database with `grp` (0..GROUPS) and `item` with ids 1..=seed; item `i`
/// is in group `i % GROUPS` with `v = (i * 7919) % 1000` (so `v` orders
/// unlike `id`).
fn open(seed: i64) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    let mut tx = db.write().unwrap();
    tx.execute_batch(
        "CREATE TABLE grp (id INTEGER PRIMARY KEY);
         CREATE TABLE item (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, v INTEGER NOT NULL);
         CREATE INDEX item_grp_id ON item(grp, id);",
    )
    .unwrap();
    for g in 0..GROUPS {
        tx.execute("INSERT INTO grp VALUES (?1)", &[g.into()])
            .unwrap();
    }
    insert_sql(&mut tx, 1, seed);
    tx.commit().unwrap();
    db.register_table("grp").unwrap();
    db.register_table("item").unwrap();
    (dir, db)
}

/// Inserts items `from..from + n` with one statement.
fn insert_sql(tx: &mut rindle_sqlite::WriteTx<'_>, from: i64, n: i64) {
    if n == 0 {
        return;
    }
    tx.execute(
        "WITH RECURSIVE k(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?1 + ?2)
         INSERT INTO item SELECT i, i % 4, (i * 7919) % 1000 FROM k",
        &[from.into(), n.into()],
    )
    .unwrap();
}

type Log = Rc<RefCell<Vec<Update>>>;

/// A live query with its view kept by applying every update delivered.
struct Live {
    handle: QueryHandle,
    log: Log,
    view: View,
    applied: usize,
}

impl Live {
    fn new(db: &Db, id: u64, ast: &Ast) -> Live {
        let handle = db.query(QueryId(id), ast).unwrap();
        let log: Log = Rc::default();
        let l = log.clone();
        handle
            .subscribe(move |u| l.borrow_mut().push(u.clone()))
            .unwrap();
        let view = View::new(handle.format().unwrap());
        let mut live = Live {
            handle,
            log,
            view,
            applied: 0,
        };
        live.catch_up();
        live
    }

    fn catch_up(&mut self) {
        let log = self.log.borrow();
        for u in &log[self.applied..] {
            match u {
                Update::Hydrated { changes, .. } | Update::Changed { changes, .. } => {
                    self.view.apply_all(changes).unwrap();
                }
                other => panic!("query {:?} failed: {other:?}", self.handle.id()),
            }
        }
        self.applied = log.len();
    }
}

/// The live view equals the same query registered afresh now.
fn check_fresh(db: &Db, live: &mut Live, ast: &Ast, what: &str) {
    live.catch_up();
    let fresh = db.query(QueryId(999_999), ast).unwrap();
    let nodes = fresh.current().unwrap();
    drop(fresh);
    assert_eq!(live.view.to_nodes(), nodes, "{what}: view != fresh query");
    assert_eq!(
        live.handle.current().unwrap(),
        nodes,
        "{what}: pipeline read != fresh query"
    );
}

/// Plain SQL over the committed state.
fn sql(db: &Db, sql: &str) -> Vec<Vec<Value>> {
    let mut tx = db.write().unwrap();
    let rows = tx.with_backend(|b| b.query(sql, &[])).unwrap().unwrap();
    tx.rollback().unwrap();
    rows.rows
}

fn ids(nodes: &[Node]) -> Vec<Value> {
    nodes.iter().map(|n| n.row[0].clone()).collect()
}

/// The ASTs exercised: flat windows asc / desc on the key and on a non-key
/// column, with a start bound, and per-parent windows (fetches constrained
/// on the partition column).
fn shapes() -> Vec<(&'static str, Ast, Option<&'static str>)> {
    let window = |dir| Query::table("item").order_by("id", dir).limit(3);
    let by_v = |dir| {
        Query::table("item")
            .order_by("v", dir)
            .order_by("id", dir)
            .limit(3)
    };
    let child = |dir| {
        Query::table("grp")
            .related(
                "items",
                &["id"],
                &["grp"],
                Query::table("item").order_by("id", dir).limit(3),
            )
            .into_ast()
    };
    let child_by_v = |dir| {
        Query::table("grp")
            .related(
                "items",
                &["id"],
                &["grp"],
                Query::table("item")
                    .order_by("v", dir)
                    .order_by("id", Direction::Asc)
                    .limit(2),
            )
            .into_ast()
    };
    vec![
        (
            "id desc limit 3",
            window(Direction::Desc).into_ast(),
            Some("SELECT id FROM item ORDER BY id DESC LIMIT 3"),
        ),
        (
            "id asc limit 3",
            window(Direction::Asc).into_ast(),
            Some("SELECT id FROM item ORDER BY id ASC LIMIT 3"),
        ),
        (
            "v desc, id desc limit 3",
            by_v(Direction::Desc).into_ast(),
            Some("SELECT id FROM item ORDER BY v DESC, id DESC LIMIT 3"),
        ),
        (
            "v asc, id asc limit 3",
            by_v(Direction::Asc).into_ast(),
            Some("SELECT id FROM item ORDER BY v ASC, id ASC LIMIT 3"),
        ),
        (
            "grp = 1, id desc limit 3",
            window(Direction::Desc).filter(col("grp").eq(1)).into_ast(),
            Some("SELECT id FROM item WHERE grp = 1 ORDER BY id DESC LIMIT 3"),
        ),
        (
            "id desc from 2500 exclusive limit 3",
            window(Direction::Desc)
                .start([("id", Value::Int(2500))], true)
                .into_ast(),
            Some("SELECT id FROM item WHERE id < 2500 ORDER BY id DESC LIMIT 3"),
        ),
        (
            "id asc from 1500 limit 3",
            window(Direction::Asc)
                .start([("id", Value::Int(1500))], false)
                .into_ast(),
            Some("SELECT id FROM item WHERE id >= 1500 ORDER BY id ASC LIMIT 3"),
        ),
        ("per group: id desc limit 3", child(Direction::Desc), None),
        ("per group: id asc limit 3", child(Direction::Asc), None),
        (
            "per group: v desc, id limit 2",
            child_by_v(Direction::Desc),
            None,
        ),
        (
            "per group: v asc, id limit 2",
            child_by_v(Direction::Asc),
            None,
        ),
    ]
}

/// One transaction per step, each a large mix of writes that all reach the
/// windows: many inserts above and below them, edits that move rows across
/// them (also of the ordering column), deletes inside them, and rows that are
/// inserted and then removed again within the same transaction.
const STEPS: &[&str] = &[
    // 3000 new rows above every existing id.
    "WITH RECURSIVE k(i) AS (SELECT 2001 UNION ALL SELECT i + 1 FROM k WHERE i < 5000)
     INSERT INTO item SELECT i, i % 4, (i * 7919) % 1000 FROM k",
    // Deletes from the top and the bottom, edits of v everywhere, new low ids.
    "DELETE FROM item WHERE id > 4990 OR id < 5;
     UPDATE item SET v = 1000 + id WHERE id % 97 = 0;
     UPDATE item SET v = -id WHERE id % 89 = 0;
     WITH RECURSIVE k(i) AS (SELECT -2000 UNION ALL SELECT i + 1 FROM k WHERE i < 0)
     INSERT INTO item SELECT i, abs(i) % 4, (abs(i) * 7919) % 1000 FROM k;",
    // Rows that come and go inside one transaction, group moves, key edits.
    "WITH RECURSIVE k(i) AS (SELECT 6000 UNION ALL SELECT i + 1 FROM k WHERE i < 8000)
     INSERT INTO item SELECT i, i % 4, (i * 7919) % 1000 FROM k;
     DELETE FROM item WHERE id > 7000;
     UPDATE item SET grp = (grp + 1) % 4 WHERE id % 5 = 0;
     UPDATE item SET id = id + 100000 WHERE id % 501 = 0;
     UPDATE item SET id = -id - 100000 WHERE id BETWEEN 6990 AND 7000;",
    // Everything goes, then a fresh batch.
    "DELETE FROM item;
     WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 4000)
     INSERT INTO item SELECT i, i % 4, (i * 7919) % 1000 FROM k;",
];

#[test]
fn big_transactions_through_limit_windows_match_fresh_queries() {
    let (_d, db) = open(2000);
    let shapes = shapes();
    let mut lives: Vec<Live> = shapes
        .iter()
        .enumerate()
        .map(|(i, (_, ast, _))| Live::new(&db, i as u64 + 1, ast))
        .collect();
    for (s, step) in STEPS.iter().enumerate() {
        let mut tx = db.write().unwrap();
        tx.execute_batch(step).unwrap();
        tx.commit().unwrap();
        for ((name, ast, plain), live) in shapes.iter().zip(&mut lives) {
            let what = format!("step {s}, {name}");
            check_fresh(&db, live, ast, &what);
            if let Some(q) = plain {
                let want: Vec<Value> = sql(&db, q).into_iter().map(|r| r[0].clone()).collect();
                assert_eq!(ids(&live.view.to_nodes()), want, "{what}: view != SQL");
            }
        }
    }
}

#[test]
fn a_20k_row_insert_through_a_desc_limit_3_window_matches_a_fresh_query() {
    let (_d, db) = open(100);
    let ast = Query::table("item")
        .order_by("id", Direction::Desc)
        .limit(3)
        .into_ast();
    let mut live = Live::new(&db, 1, &ast);
    let mut tx = db.write().unwrap();
    insert_sql(&mut tx, 101, 20_000);
    tx.commit().unwrap();
    check_fresh(&db, &mut live, &ast, "20k desc");
    assert_eq!(
        ids(&live.view.to_nodes()),
        vec![Value::Int(20_100), Value::Int(20_099), Value::Int(20_098)]
    );
    let want: Vec<Value> = sql(&db, "SELECT id FROM item ORDER BY id DESC LIMIT 3")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(ids(&live.view.to_nodes()), want);
}
