//! The in-memory engine against the SQLite oracle, over generated single-table
//! cases (the subset the engine maintains today).

use rindle_testkit::{CaseConfig, MemorySubject, check_subject};

#[test]
fn memory_engine_matches_the_oracle_on_single_table_queries() {
    check_subject(
        MemorySubject::new,
        CaseConfig::single_table(),
        "proptest-regressions/memory.txt",
        256,
    );
}

#[test]
fn memory_engine_matches_the_oracle_on_the_full_subset() {
    check_subject(
        MemorySubject::new,
        CaseConfig::full(),
        "proptest-regressions/memory_full.txt",
        256,
    );
}
