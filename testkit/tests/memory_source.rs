//! The in-memory source passes the `Source` conformance suite.

use rindle_core::{MemorySource, Row, TableSchema};
use rindle_testkit::conformance::check_source;

#[test]
fn memory_source_conforms() {
    check_source(
        |schema: &TableSchema, rows: &[Row]| {
            let mut s = MemorySource::new(schema.clone());
            for r in rows {
                s.insert(r.clone()).expect("distinct keys");
            }
            s
        },
        "proptest-regressions/memory_source.txt",
        256,
    );
}
