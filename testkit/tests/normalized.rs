//! Proof of the normalize fold: over generated workloads, a subscriber that
//! applies the protocol's row operations to its own table copies and runs the
//! query locally gets exactly the server's view after every transaction (and
//! the oracle's answer). Queries the protocol refuses (a `NOT EXISTS` level
//! over a table another level also reads) are counted, and must stay a
//! minority of what the generator draws.

use std::sync::atomic::{AtomicU32, Ordering};

use proptest::test_runner::{TestCaseError, TestRunner};
use rindle_testkit::generate::case_strategy;
use rindle_testkit::harness::{flip_variants, proptest_config};
use rindle_testkit::{CaseConfig, NormalizedSubject, Scenario, run_case};

fn check(cfg: CaseConfig, regressions: &'static str, default_cases: u32) {
    let supported = AtomicU32::new(0);
    let refused = AtomicU32::new(0);
    let mut runner = TestRunner::new(proptest_config(regressions, default_cases));
    let result = runner.run(&case_strategy(cfg), |case| {
        if !NormalizedSubject::supports(&case.query) {
            refused.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        supported.fetch_add(1, Ordering::Relaxed);
        for query in flip_variants(&case.query, 2) {
            let variant = Scenario {
                query,
                ..case.clone()
            };
            run_case(&mut NormalizedSubject::new(), &variant)
                .map_err(|m| TestCaseError::fail(m.to_string()))?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (s, r) = (supported.into_inner(), refused.into_inner());
    assert!(
        s >= 3 * r,
        "the protocol refused {r} of {} generated queries",
        s + r
    );
}

#[test]
fn subscriber_copies_rederive_single_table_queries() {
    check(
        CaseConfig::single_table(),
        "proptest-regressions/normalized.txt",
        128,
    );
}

#[test]
fn subscriber_copies_rederive_the_full_subset() {
    check(
        CaseConfig::full(),
        "proptest-regressions/normalized_full.txt",
        192,
    );
}
