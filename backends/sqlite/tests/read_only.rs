//! The read-only connection reads and refuses everything else, untouched.

use rindle_core::Value;
use rindle_sqlite::{Db, ReadOnly, SqlWrite, SqliteError};

#[test]
fn read_only_connections_read_and_refuse_every_kind_of_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let db = Db::open(&path).unwrap();
    let mut tx = db.write().unwrap();
    tx.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
        .unwrap();
    tx.execute("INSERT INTO t VALUES (1, 'a', 1.5, x'00ff')", &[])
        .unwrap();
    tx.execute("INSERT INTO t VALUES (2, NULL, NULL, NULL)", &[])
        .unwrap();
    tx.commit().unwrap();

    let ro = ReadOnly::open(&path).unwrap();
    let rows = ro
        .query(
            "SELECT id, name, score, data FROM t WHERE id >= ?1 ORDER BY id",
            &[Value::Int(1)],
        )
        .unwrap();
    assert_eq!(rows.columns, ["id", "name", "score", "data"]);
    assert_eq!(
        rows.rows,
        vec![
            vec![
                Value::Int(1),
                Value::text("a"),
                Value::Float(1.5),
                Value::text("00ff")
            ],
            vec![Value::Int(2), Value::Null, Value::Null, Value::Null],
        ]
    );
    assert_eq!(
        ro.query("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3) SELECT count(*) FROM n", &[])
            .unwrap()
            .rows,
        vec![vec![Value::Int(3)]]
    );
    for sql in [
        "INSERT INTO t VALUES (3, 'c', 0, NULL)",
        "UPDATE t SET name = 'z'",
        "DELETE FROM t",
        "DELETE FROM t RETURNING id",
        "INSERT INTO t VALUES (4, 'd', 0, NULL) RETURNING id",
        "CREATE TABLE u (x)",
        "DROP TABLE t",
        "ALTER TABLE t ADD COLUMN y",
        "CREATE INDEX i ON t(name)",
        "ATTACH DATABASE ':memory:' AS other",
        "PRAGMA journal_mode = DELETE",
        "BEGIN",
        "VACUUM",
    ] {
        match ro.query(sql, &[]) {
            Err(SqliteError::NotReadOnly | SqliteError::Sqlite(_)) => {}
            other => panic!("{sql}: {other:?}"),
        }
    }
    // Bad SQL and several statements are errors too.
    assert!(ro.query("SELEC 1", &[]).is_err());
    assert!(ro.query("SELECT 1; DELETE FROM t", &[]).is_err());
    assert_eq!(
        ro.query("SELECT count(*) FROM t", &[]).unwrap().rows,
        vec![vec![Value::Int(2)]]
    );
}

#[test]
fn read_only_connections_read_informational_pragmas_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let db = Db::open(&path).unwrap();
    let mut tx = db.write().unwrap();
    tx.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v)")
        .unwrap();
    tx.commit().unwrap();
    let ro = ReadOnly::open(&path).unwrap();
    let cols = ro
        .query("SELECT name FROM pragma_table_info('t') ORDER BY cid", &[])
        .unwrap();
    assert_eq!(
        cols.rows,
        vec![vec![Value::text("id")], vec![Value::text("v")]]
    );
    let indexes = ro.query("PRAGMA index_list(t)", &[]).unwrap();
    assert_eq!(indexes.rows.len(), 1);
    // Setting one, or reading one that is not informational, is refused.
    for sql in [
        "PRAGMA user_version = 3",
        "PRAGMA query_only = OFF",
        "PRAGMA writable_schema",
    ] {
        assert!(
            matches!(ro.query(sql, &[]), Err(SqliteError::NotReadOnly)),
            "{sql}"
        );
    }
}
