//! The redb backend through `rindle_redb::Db` against the oracle; its sources
//! conform; and one workload through memory, SQLite and redb gives identical
//! change streams and identical final views.

use proptest::test_runner::{TestCaseError, TestRunner};
use rindle_core::{Engine, MemoryCatalog, QueryEvent, QueryId, Row, TableSchema};
use rindle_testkit::conformance::check_source_with;
use rindle_testkit::harness::{first_difference, proptest_config};
use rindle_testkit::{CaseConfig, Model, RedbSubject, SqliteSubject, Subject, check_subject};

#[test]
fn redb_db_matches_the_oracle_on_single_table_queries() {
    check_subject(
        RedbSubject::new,
        CaseConfig::single_table(),
        "proptest-regressions/redb.txt",
        64,
    );
}

#[test]
fn redb_db_matches_the_oracle_on_the_full_subset() {
    check_subject(
        RedbSubject::new,
        CaseConfig::full(),
        "proptest-regressions/redb_full.txt",
        64,
    );
}

#[test]
fn redb_sources_conform_after_a_round_trip_through_the_file() {
    check_source_with(
        |schema: &TableSchema, rows: &[Row]| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.redb");
            {
                let db = rindle_redb::Db::open(&path).unwrap();
                db.register_table(schema.clone()).unwrap();
                let mut tx = db.write().unwrap();
                for r in rows {
                    tx.insert(schema.name(), r.clone()).unwrap();
                }
                tx.commit().unwrap();
            }
            // Reopen: the schema is known, the rows load from the file.
            let (_, catalog) =
                <rindle_redb::RedbBackend as rindle_replica::Backend>::open(path).unwrap();
            let source = rindle_core::Catalog::table_id(&catalog, schema.name())
                .map(|id| {
                    let s = rindle_core::Catalog::source(&catalog, id);
                    let mut m = rindle_core::MemorySource::new(s.schema().clone());
                    let order = rindle_core::SortOrder::primary_key(s.schema());
                    let req = rindle_core::FetchRequest {
                        order: &order,
                        constraint: &[],
                        start: None,
                        reverse: false,
                        filter: None,
                    };
                    s.fetch(&req, &mut |r| {
                        m.insert(r.clone()).unwrap();
                        std::ops::ControlFlow::Continue(())
                    })
                    .unwrap();
                    m
                })
                .expect("the reopened database knows the table");
            rindle_testkit::conformance::Owned { source, keep: dir }
        },
        "proptest-regressions/redb_source.txt",
        64,
        true,
    );
}

/// Changes per step from the in-memory engine.
fn memory_stream(case: &rindle_testkit::Scenario) -> Result<Vec<Vec<rindle_core::Change>>, String> {
    let mut cat = MemoryCatalog::new();
    for t in &case.tables {
        cat.add_table(t.schema().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        for cells in &t.rows {
            cat.insert(&t.name, t.row(cells).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
    }
    let mut engine = Engine::new(cat);
    engine
        .add_query(QueryId(1), &case.query)
        .map_err(|e| e.to_string())?;
    let mut model = Model::new(&case.tables).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for tx in &case.steps {
        for w in tx {
            let change = model.apply(w).map_err(|e| e.to_string())?;
            engine.push(&w.table, change).map_err(|e| e.to_string())?;
        }
        let mut changes = Vec::new();
        for e in engine.drain() {
            if let QueryEvent::Changed { changes: c, .. } = e {
                changes.extend(c);
            }
        }
        out.push(changes);
    }
    Ok(out)
}

#[test]
fn swapping_memory_sqlite_and_redb_changes_nothing() {
    let mut runner = TestRunner::new(proptest_config("proptest-regressions/swap.txt", 48));
    let cfg = CaseConfig::full().without_negative_zero();
    runner
        .run(&rindle_testkit::generate::case_strategy(cfg), |case| {
            let fail = |e: String| TestCaseError::fail(e);
            let memory = memory_stream(&case).map_err(fail)?;
            let mut sqlite = SqliteSubject::new();
            let mut redb = RedbSubject::new();
            let a = sqlite
                .start(&case.tables, &case.query)
                .map_err(|e| fail(e.to_string()))?;
            let b = redb
                .start(&case.tables, &case.query)
                .map_err(|e| fail(e.to_string()))?;
            if let Some(d) = first_difference(&a, &b) {
                return Err(fail(format!("hydration: {d}")));
            }
            let (mut va, mut vb) = (a, b);
            for (i, tx) in case.steps.iter().enumerate() {
                va = sqlite.step(tx).map_err(|e| fail(e.to_string()))?;
                vb = redb.step(tx).map_err(|e| fail(e.to_string()))?;
                let (s, r, m) = (sqlite.last_changes(), redb.last_changes(), &memory[i]);
                if s != m.as_slice() || r != m.as_slice() {
                    return Err(fail(format!(
                        "step {}: change streams differ\nmemory {m:?}\nsqlite {s:?}\nredb   {r:?}",
                        i + 1
                    )));
                }
            }
            if let Some(d) = first_difference(&va, &vb) {
                return Err(fail(format!("final views: {d}")));
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
