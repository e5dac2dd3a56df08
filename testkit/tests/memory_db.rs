//! The in-memory `Db` (`rindle_replica::memory`, transactions and the row
//! API over `MemoryCatalog`) against the oracle, like the durable backends.

use rindle_testkit::{CaseConfig, MemoryDbSubject, check_subject};

#[test]
fn memory_db_matches_the_oracle_on_single_table_queries() {
    check_subject(
        MemoryDbSubject::new,
        CaseConfig::single_table(),
        "proptest-regressions/memory_db.txt",
        64,
    );
}

#[test]
fn memory_db_matches_the_oracle_on_the_full_subset() {
    check_subject(
        MemoryDbSubject::new,
        CaseConfig::full(),
        "proptest-regressions/memory_db_full.txt",
        64,
    );
}

#[test]
fn a_rolled_back_or_refused_write_changes_nothing() {
    use rindle_core::{Column, ColumnType, TableSchema, row};
    use rindle_replica::DbError;
    use rindle_replica::memory::{MemoryDb, MemoryError};

    let db = MemoryDb::open(()).unwrap();
    let schema = TableSchema::new(
        "t",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("v", ColumnType::Text),
        ],
        &["id"],
    )
    .unwrap();
    db.register_table(schema).unwrap();
    let mut tx = db.write().unwrap();
    tx.insert("t", row![1, "a"]).unwrap();
    tx.commit().unwrap();

    // A duplicate key is refused; the transaction is still usable.
    let mut tx = db.write().unwrap();
    let dup = tx.insert("t", row![1, "b"]);
    assert!(
        matches!(dup, Err(DbError::Backend(MemoryError::DuplicateKey { .. }))),
        "{dup:?}"
    );
    let missing = tx.update("t", row![2, "b"]);
    assert!(
        matches!(
            missing,
            Err(DbError::Backend(MemoryError::NoSuchRow { .. }))
        ),
        "{missing:?}"
    );
    tx.update("t", row![1, "c"]).unwrap();
    tx.insert("t", row![2, "d"]).unwrap();
    tx.rollback().unwrap();

    let q = db
        .query(
            rindle_core::QueryId(1),
            &serde_json::from_str(r#"{"table":"t"}"#).unwrap(),
        )
        .unwrap();
    let rows: Vec<_> = q.current().unwrap().into_iter().map(|n| n.row).collect();
    assert_eq!(rows, vec![row![1, "a"]]);

    // Inside one transaction, writes see earlier writes.
    let mut tx = db.write().unwrap();
    tx.delete("t", row![1, "a"]).unwrap();
    tx.insert("t", row![1, "e"]).unwrap();
    tx.update("t", row![1, "f"]).unwrap();
    let c = tx.commit().unwrap();
    assert_eq!(c.changes, 3);
    let rows: Vec<_> = q.current().unwrap().into_iter().map(|n| n.row).collect();
    assert_eq!(rows, vec![row![1, "f"]]);
}
