//! The generators draw valid cases across the whole subset, and the oracle
//! answers every one of them.

use std::cell::RefCell;

use proptest::test_runner::{TestCaseError, TestRunner};
use rindle_core::{Ast, Condition};
use rindle_testkit::generate::case_strategy;
use rindle_testkit::harness::proptest_config;
use rindle_testkit::{CaseConfig, Model, Oracle};

#[derive(Default, Debug)]
struct Seen {
    related: usize,
    nested: usize,
    exists: usize,
    aggregates: usize,
    root_aggregates: usize,
    select: usize,
    junction: usize,
    self_reference: usize,
    rekeys: usize,
    bursts: usize,
}

fn has_exists(c: &Condition) -> bool {
    match c {
        Condition::CorrelatedSubquery { .. } => true,
        Condition::And { conditions } | Condition::Or { conditions } => {
            conditions.iter().any(has_exists)
        }
        Condition::Simple { .. } => false,
    }
}

fn survey(ast: &Ast, seen: &mut Seen, depth: usize) {
    if ast.where_.as_ref().is_some_and(has_exists) {
        seen.exists += 1;
    }
    if ast.select.is_some() {
        seen.select += 1;
    }
    if depth == 0 && ast.aggregate.is_some() {
        seen.root_aggregates += 1;
    }
    for r in &ast.related {
        seen.related += 1;
        if depth > 0 {
            seen.nested += 1;
        }
        if r.subquery.aggregate.is_some() {
            seen.aggregates += 1;
        }
        survey(&r.subquery, seen, depth + 1);
    }
}

#[test]
fn the_oracle_answers_every_generated_case_of_the_full_subset() {
    let seen = RefCell::new(Seen::default());
    let mut runner = TestRunner::new(proptest_config("proptest-regressions/generators.txt", 128));
    runner
        .run(&case_strategy(CaseConfig::full()), |case| {
            let mut s = seen.borrow_mut();
            survey(&case.query, &mut s, 0);
            if case.tables.iter().any(|t| t.name == "j") {
                s.junction += 1;
            }
            if case.tables.iter().any(|t| {
                t.columns
                    .iter()
                    .any(|c| c.name == format!("r{}", &t.name[1..]))
            }) {
                s.self_reference += 1;
            }
            let mut model =
                Model::new(&case.tables).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut oracle =
                Oracle::new(&case.tables).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ask = |o: &Oracle| {
                o.query(&case.query).map_err(|e| {
                    TestCaseError::fail(format!(
                        "{e}\nquery: {}",
                        serde_json::to_string(&case.query).unwrap()
                    ))
                })
            };
            ask(&oracle)?;
            for tx in &case.steps {
                if tx.len() > 1 {
                    s.bursts += 1;
                }
                for w in tx {
                    if let (Some(old), true) = (&w.old, true) {
                        let t = case.tables.iter().find(|t| t.name == w.table).unwrap();
                        let nk = t.primary_key.len();
                        if old[..nk] != w.row[..nk] {
                            s.rekeys += 1;
                        }
                    }
                    let change = model
                        .apply(w)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    oracle
                        .apply(&w.table, &change)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                ask(&oracle)?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let s = seen.into_inner();
    // Every family shows up in a run of this size.
    for (what, n) in [
        ("related", s.related),
        ("nested related", s.nested),
        ("EXISTS", s.exists),
        ("relationship aggregates", s.aggregates),
        ("root aggregates", s.root_aggregates),
        ("select", s.select),
        ("junction tables", s.junction),
        ("self references", s.self_reference),
        ("key-changing edits", s.rekeys),
        ("multi-write transactions", s.bursts),
    ] {
        assert!(n > 0, "no {what} in the generated cases: {s:?}");
    }
}
