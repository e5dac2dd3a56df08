//! The SQLite backend through `rindle_sqlite::Db`, writes issued as SQL, against
//! the oracle; memory and SQLite agree; the SQLite source conforms.

use rindle_core::{Row, TableSchema};
use rindle_testkit::{CaseConfig, MemorySubject, SqliteSubject, check_subject, run_case};

#[test]
fn sqlite_db_matches_the_oracle_on_single_table_queries() {
    check_subject(
        SqliteSubject::new,
        CaseConfig::single_table().without_negative_zero(),
        "proptest-regressions/sqlite.txt",
        64,
    );
}

#[test]
fn sqlite_db_matches_the_oracle_on_the_full_subset() {
    check_subject(
        SqliteSubject::new,
        CaseConfig::full().without_negative_zero(),
        "proptest-regressions/sqlite_full.txt",
        64,
    );
}

#[test]
fn sqlite_source_conforms() {
    use rindle_testkit::conformance::check_source_with;
    check_source_with(
        |schema: &TableSchema, rows: &[Row]| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.db");
            let data = rindle_testkit::TableData {
                name: schema.name().into(),
                columns: schema.columns().to_vec(),
                primary_key: schema
                    .primary_key()
                    .iter()
                    .map(|&i| schema.columns()[i].name.clone())
                    .collect(),
                rows: Vec::new(),
            };
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(&rindle_testkit::backends::create_table_sql(&data))
                .unwrap();
            for r in rows {
                let w = rindle_testkit::Write {
                    table: data.name.clone(),
                    op: rindle_testkit::WriteOp::Add,
                    row: data.json_row(r),
                    old: None,
                };
                let (sql, params) = rindle_testkit::backends::write_sql(&data, &w, r, None);
                let params: Vec<rusqlite::types::Value> = params
                    .iter()
                    .map(rindle_testkit::backends::sql_value)
                    .collect();
                tx.execute(&sql, rusqlite::params_from_iter(params))
                    .unwrap();
            }
            tx.commit().unwrap();
            let source = rindle_sqlite::open_source(&path, schema.clone()).unwrap();
            rindle_testkit::conformance::Owned { source, keep: dir }
        },
        "proptest-regressions/sqlite_source.txt",
        64,
        false,
    );
}

#[test]
fn memory_and_sqlite_give_identical_results_on_the_same_cases() {
    use proptest::test_runner::{TestCaseError, TestRunner};
    let cfg = CaseConfig::full().without_negative_zero();
    let mut runner = TestRunner::new(rindle_testkit::harness::proptest_config(
        "proptest-regressions/memory_vs_sqlite.txt",
        32,
    ));
    runner
        .run(&rindle_testkit::generate::case_strategy(cfg), |case| {
            let mut results = Vec::new();
            for mut subject in [
                Box::new(MemorySubject::new()) as Box<dyn rindle_testkit::Subject>,
                Box::new(SqliteSubject::new()),
            ] {
                let mut out = vec![
                    subject
                        .start(&case.tables, &case.query)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?,
                ];
                for tx in &case.steps {
                    out.push(
                        subject
                            .step(tx)
                            .map_err(|e| TestCaseError::fail(e.to_string()))?,
                    );
                }
                results.push(out);
            }
            for (step, (m, s)) in results[0].iter().zip(&results[1]).enumerate() {
                if let Some(d) = rindle_testkit::harness::first_difference(s, m) {
                    return Err(TestCaseError::fail(format!("step {step}: {d}")));
                }
            }
            // And both agree with the oracle.
            run_case(&mut SqliteSubject::new(), &case)
                .map_err(|m| TestCaseError::fail(m.to_string()))?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
