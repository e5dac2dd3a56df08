//! `rindle_sqlite::Db`: registration, subscriptions, transactions, capture.

use std::cell::RefCell;
use std::rc::Rc;

use rindle_core::{Ast, Change, Node, Query, QueryId, Row, Value, View, col, row};
use rindle_replica::DbError as ReplicaError;
use rindle_sqlite::{Db, DbError, SqlWrite, SqliteError, Update};

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db")).unwrap();
    (dir, db)
}

fn setup(db: &Db, sql: &str) {
    let mut tx = db.write().unwrap();
    tx.execute_batch(sql).unwrap();
    tx.commit().unwrap();
}

fn issues(db: &Db) {
    setup(
        db,
        "CREATE TABLE issue (id INTEGER PRIMARY KEY, title TEXT NOT NULL, open BOOLEAN NOT NULL, score REAL);
         INSERT INTO issue VALUES (1, 'a', 1, 1.5), (2, 'b', 0, 2), (3, 'c', 1, NULL);
         CREATE TABLE other (x INTEGER PRIMARY KEY);",
    );
    db.register_table("issue").unwrap();
}

type Log = Rc<RefCell<Vec<Update>>>;

fn watch(db: &Db, id: u64, ast: &Ast) -> (rindle_sqlite::QueryHandle, Log) {
    let h = db.query(QueryId(id), ast).unwrap();
    let log: Log = Rc::default();
    let l = log.clone();
    h.subscribe(move |u| l.borrow_mut().push(u.clone()))
        .unwrap();
    (h, log)
}

fn changed(log: &Log) -> Vec<(u64, Vec<Change>)> {
    log.borrow()
        .iter()
        .filter_map(|u| match u {
            Update::Changed { tx_id, changes } => Some((*tx_id, changes.clone())),
            _ => None,
        })
        .collect()
}

fn refused(db: &Db, name: &str) -> String {
    match db.register_table(name) {
        Err(ReplicaError::Backend(e @ SqliteError::Refused { .. })) => e.to_string(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn registration_refuses_tables_it_cannot_maintain() {
    let (_d, db) = open();
    setup(
        &db,
        "CREATE TABLE nokey (a INTEGER, b TEXT);
         CREATE TABLE trig (id INTEGER PRIMARY KEY, n INTEGER);
         CREATE TRIGGER bump AFTER INSERT ON trig BEGIN UPDATE trig SET n = 1; END;
         CREATE TABLE gen (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2));
         CREATE TABLE blobby (id INTEGER PRIMARY KEY, data BLOB);
         CREATE VIEW v AS SELECT 1 AS x;",
    );
    assert!(
        refused(&db, "nokey").contains("`nokey`")
            && refused(&db, "nokey").contains("no primary key")
    );
    assert!(refused(&db, "trig").contains("trigger"));
    assert!(refused(&db, "gen").contains("column `b` is generated"));
    assert!(refused(&db, "blobby").contains("column `data`"));
    assert!(refused(&db, "v").contains("view"));
    assert!(refused(&db, "missing").contains("no such table"));
}

#[test]
fn introspection_reads_types_keys_and_nullability() {
    let (_d, db) = open();
    setup(
        &db,
        "CREATE TABLE t (b TEXT, a INTEGER NOT NULL, j JSON, f BOOLEAN, PRIMARY KEY (a, b)) WITHOUT ROWID",
    );
    let s = db.register_table("t").unwrap();
    assert_eq!(
        format!("{s:?}"),
        "t(b text key, a integer key, j json, f boolean)"
    );
    let key: Vec<&str> = s
        .primary_key()
        .iter()
        .map(|&i| s.columns()[i].name.as_str())
        .collect();
    assert_eq!(key, ["a", "b"]);
}

#[test]
fn subscribers_get_hydrated_then_changes_only_when_the_result_changes() {
    let (_d, db) = open();
    issues(&db);
    let q = Query::table("issue")
        .filter(col("open").eq(true))
        .into_ast();
    let (_h, log) = watch(&db, 1, &q);
    match &log.borrow()[0] {
        Update::Hydrated { tx_id, changes } => {
            assert_eq!(*tx_id, 1);
            assert_eq!(changes.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    let mut tx = db.write().unwrap();
    tx.execute("UPDATE issue SET title = 'z' WHERE id = 2", &[])
        .unwrap();
    tx.execute("INSERT INTO other VALUES (1)", &[]).unwrap();
    let c = tx.commit().unwrap();
    assert_eq!((c.tx_id, c.changes, c.queries_changed), (2, 1, 0));
    assert!(
        changed(&log).is_empty(),
        "closed issues and other tables change nothing"
    );
    let mut tx = db.write().unwrap();
    tx.execute(
        "UPDATE issue SET open = ?1 WHERE id = ?2",
        &[Value::Bool(true), Value::Int(2)],
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(
        changed(&log),
        vec![(3, vec![Change::Add(Node::leaf(row![2, "z", true, 2.0]))])]
    );
}

#[test]
fn rollback_explicit_or_on_drop_delivers_nothing() {
    let (_d, db) = open();
    issues(&db);
    let (h, log) = watch(&db, 1, &Query::table("issue").into_ast());
    let mut tx = db.write().unwrap();
    tx.execute("DELETE FROM issue", &[]).unwrap();
    tx.rollback().unwrap();
    {
        let mut tx = db.write().unwrap();
        tx.execute("INSERT INTO issue VALUES (9, 'x', 1, 0)", &[])
            .unwrap();
    }
    assert!(changed(&log).is_empty());
    assert_eq!(h.current().unwrap().len(), 3);
    assert_eq!(db.tx_id(), 1);
    // The database is usable again and the data untouched.
    let mut tx = db.write().unwrap();
    assert_eq!(
        tx.execute("DELETE FROM issue WHERE id = 1", &[]).unwrap(),
        1
    );
    tx.commit().unwrap();
    assert_eq!(changed(&log).len(), 1);
}

#[test]
fn a_failing_statement_is_undone_alone_and_the_transaction_goes_on() {
    let (_d, db) = open();
    issues(&db);
    let (_h, log) = watch(&db, 1, &Query::table("issue").into_ast());
    let mut tx = db.write().unwrap();
    tx.execute("INSERT INTO issue VALUES (4, 'd', 1, 0)", &[])
        .unwrap();
    // The second row collides: the whole statement is undone, row 5 included.
    let err = tx
        .execute(
            "INSERT INTO issue VALUES (5, 'e', 1, 0), (1, 'dup', 1, 0)",
            &[],
        )
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    assert!(tx.execute("SELEC nonsense", &[]).is_err());
    tx.execute("INSERT INTO issue VALUES (6, 'f', 0, 0)", &[])
        .unwrap();
    tx.commit().unwrap();
    let adds: Vec<i64> = changed(&log)[0]
        .1
        .iter()
        .map(|c| match &c.row()[0] {
            Value::Int(i) => *i,
            v => panic!("{v:?}"),
        })
        .collect();
    assert_eq!(adds, [4, 6]);
}

#[test]
fn sql_that_would_escape_the_transaction_or_reshape_a_table_is_refused() {
    let (_d, db) = open();
    issues(&db);
    let mut tx = db.write().unwrap();
    for sql in [
        "COMMIT",
        "ROLLBACK",
        "BEGIN",
        "SAVEPOINT x",
        "ATTACH DATABASE ':memory:' AS m",
        "DROP TABLE issue",
        "ALTER TABLE issue ADD COLUMN extra TEXT",
        "CREATE TRIGGER t AFTER INSERT ON issue BEGIN SELECT 1; END",
    ] {
        assert!(tx.execute_batch(sql).is_err(), "{sql} was allowed");
    }
    // Unregistered tables are the application's business.
    tx.execute_batch("CREATE TABLE scratch (id INTEGER PRIMARY KEY); DROP TABLE scratch;")
        .unwrap();
    tx.execute("INSERT INTO issue VALUES (7, 'g', 1, 0)", &[])
        .unwrap();
    assert_eq!(tx.commit().unwrap().changes, 1);
}

#[test]
fn every_write_form_is_captured_in_order() {
    let (_d, db) = open();
    issues(&db);
    let (h, log) = watch(&db, 1, &Query::table("issue").into_ast());
    let format = h.format().unwrap();
    let mut view = View::new(format);
    for u in log.borrow().iter() {
        if let Update::Hydrated { changes, .. } = u {
            view.apply_all(changes).unwrap();
        }
    }
    let steps = [
        "INSERT INTO issue VALUES (10, 'x', 1, 0), (11, 'y', 0, 0), (12, 'z', 1, 0)",
        "UPDATE issue SET id = 20 WHERE id = 10",
        "INSERT OR REPLACE INTO issue VALUES (11, 'replaced', 1, 5)",
        "INSERT INTO issue VALUES (12, 'upsert', 0, 1) ON CONFLICT(id) DO UPDATE SET title = excluded.title",
        "DELETE FROM issue WHERE id > 2",
        "INSERT INTO other VALUES (5)",
    ];
    let mut applied = 0;
    for sql in steps {
        let mut tx = db.write().unwrap();
        tx.execute(sql, &[]).unwrap();
        tx.commit().unwrap();
        let all = changed(&log);
        for (_, changes) in &all[applied..] {
            view.apply_all(changes).unwrap();
        }
        applied = all.len();
        // The view equals a fresh read of the table.
        let fresh = {
            let conn =
                rusqlite::Connection::open(db.with_backend(|b| b.path().to_path_buf()).unwrap())
                    .unwrap();
            let mut stmt = conn
                .prepare("SELECT id, title, open, score FROM issue ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| {
                Ok(Row::new(vec![
                    Value::Int(r.get(0)?),
                    Value::text(&r.get::<_, String>(1)?),
                    Value::Bool(r.get::<_, i64>(2)? != 0),
                    r.get::<_, Option<f64>>(3)?
                        .map_or(Value::Null, Value::Float),
                ]))
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
        };
        let held: Vec<Row> = view.rows().cloned().collect();
        assert_eq!(held, fresh, "after `{sql}`");
    }
    let (id, last) = changed(&log).pop().unwrap();
    assert_eq!(id, 6, "the unregistered table's write changed nothing");
    assert_eq!(last.len(), 4, "one delete captured per row: {last:?}");
}

#[test]
fn the_row_api_writes_through_the_same_capture() {
    let (_d, db) = open();
    issues(&db);
    let (_h, log) = watch(
        &db,
        1,
        &Query::table("issue").filter(col("id").ge(3)).into_ast(),
    );
    let mut tx = db.write().unwrap();
    tx.insert("issue", row![4, "new", true, 0.5]).unwrap();
    tx.update("issue", row![3, "c2", true, Value::Null])
        .unwrap();
    tx.delete("issue", row![1, "", true, Value::Null]).unwrap();
    assert!(matches!(
        tx.update("issue", row![99, "", true, Value::Null]),
        Err(ReplicaError::Backend(SqliteError::NoSuchRow { .. }))
    ));
    assert!(matches!(
        tx.insert("issue", row![5, "short"]),
        Err(ReplicaError::Change(_))
    ));
    assert!(matches!(
        tx.insert("nope", row![1]),
        Err(DbError::UnknownTable(_))
    ));
    tx.commit().unwrap();
    assert_eq!(
        changed(&log)[0].1,
        vec![
            Change::Add(Node::leaf(row![4, "new", true, 0.5])),
            Change::Edit {
                old: Node::leaf(row![3, "c", true, Value::Null]),
                new: Node::leaf(row![3, "c2", true, Value::Null]),
            },
        ]
    );
}

#[test]
fn dropping_a_handle_unregisters_its_query() {
    let (_d, db) = open();
    issues(&db);
    let q = Query::table("issue").into_ast();
    let h = db.query(QueryId(1), &q).unwrap();
    assert!(db.query(QueryId(1), &q).is_err(), "the id is taken");
    drop(h);
    let _again = db.query(QueryId(1), &q).unwrap();
}

#[test]
fn one_write_transaction_at_a_time() {
    let (_d, db) = open();
    issues(&db);
    let _tx = db.write().unwrap();
    assert!(matches!(db.write(), Err(DbError::Busy)));
}

#[test]
fn bad_queries_are_refused_with_the_build_error() {
    let (_d, db) = open();
    issues(&db);
    let ast = Query::table("issue")
        .order_by("nope", rindle_core::Direction::Asc)
        .into_ast();
    assert!(matches!(db.query(QueryId(1), &ast), Err(DbError::Query(_))));
}

#[test]
fn ddl_runs_inside_a_write_transaction() {
    let (_dir, db) = open();
    let mut tx = db.write().unwrap();
    tx.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
        &[],
    )
    .unwrap();
    tx.execute("CREATE INDEX t_v ON t(v)", &[]).unwrap();
    tx.execute_batch("CREATE TABLE u (id INTEGER PRIMARY KEY); DROP TABLE u;")
        .unwrap();
    tx.commit().unwrap();
    db.register_table("t").unwrap();
    // The stored commit version is the backend's own.
    let mut tx = db.write().unwrap();
    let refused = tx.execute("UPDATE _rindle_meta SET value = 0", &[]);
    assert!(
        matches!(
            refused,
            Err(ReplicaError::Backend(SqliteError::NotPermitted(_)))
        ),
        "{refused:?}"
    );
    tx.commit().unwrap();
}
