//! The issue-tracker dataset: the formulas of BENCHMARKS.md, determinism, and
//! identical contents in memory and SQLite.

use rindle_core::{Row, Value};
use rindle_testkit::{IssueTracker, Scale};

#[test]
fn scales_and_formulas() {
    assert_eq!(Scale::Large.counts(), (1_000, 10_000, 50_000));
    assert_eq!("xl".parse::<Scale>().unwrap(), Scale::Xl);
    assert!("huge".parse::<Scale>().is_err());
    let d = IssueTracker::new(Scale::Small);
    let issue = d.issue(3);
    assert_eq!(issue[2], Value::Bool(false), "open = i % 3 != 0");
    assert_eq!(d.issue(4)[2], Value::Bool(true));
    assert_eq!(issue[3], Value::Int(1_000 - 3), "created = ISSUES - i");
    assert_eq!(issue[4], Value::Int(3), "creatorID = i % USERS");
    let c = d.comment(1_234);
    assert_eq!(c[1], Value::Int(234), "issueID = i % ISSUES");
    assert_eq!(c[3], Value::Int(34), "creatorID = i % USERS");
    assert_eq!(d.rows("comment").count(), 5_000);
    // Deterministic.
    assert_eq!(
        d.rows("issue").collect::<Vec<_>>(),
        IssueTracker::new(Scale::Small)
            .rows("issue")
            .collect::<Vec<_>>()
    );
}

#[test]
fn memory_and_sqlite_hold_the_same_rows() {
    let d = IssueTracker::with_counts(7, 40, 150);
    let cat = d.memory_catalog();
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    d.load_sqlite(&mut conn).unwrap();
    for schema in IssueTracker::schemas() {
        let mem: Vec<Row> = cat.table(schema.name()).unwrap().rows().collect();
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{}\" ORDER BY id", schema.name()))
            .unwrap();
        let sql: Vec<Row> = stmt
            .query_map([], |r| {
                let cells = schema
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        Ok(match c.ty {
                            rindle_core::ColumnType::Boolean => {
                                Value::Bool(r.get::<_, i64>(i)? != 0)
                            }
                            rindle_core::ColumnType::Integer => Value::Int(r.get(i)?),
                            _ => Value::text(&r.get::<_, String>(i)?),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(Row::new(cells))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(mem, sql, "table {}", schema.name());
        assert_eq!(mem.len(), d.rows(schema.name()).count());
    }
    assert_eq!(d.table_data()[1].rows.len(), 40);
}
