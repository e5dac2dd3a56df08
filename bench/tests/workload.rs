//! The suite measures what it claims: each baseline statement returns the
//! view's rows in the view's order, and each pair's write changes the view on
//! every runner. (Timings are never asserted.)

use rindle_bench::{
    Baseline, MemoryRunner, Rounds, Runner, Workload, measure, redb_runner, sqlite_runner,
};
use rindle_core::{Engine, QueryId, ResultJson};
use rindle_testkit::IssueTracker;
use serde_json::{Value as Json, json};

const ISSUE: [&str; 5] = ["id", "title", "open", "created", "creatorID"];
const COMMENT: [&str; 4] = ["id", "issueID", "body", "creatorID"];
const USER: [&str; 3] = ["id", "name", "role"];

fn data() -> IssueTracker {
    // Two pages of open issues, a few comments each.
    IssueTracker::with_counts(7, 160, 700)
}

/// A cell as SQLite returns it (booleans are 0 / 1 there).
fn cell(v: &Json) -> Json {
    match v {
        Json::Bool(b) => json!(i64::from(*b)),
        other => other.clone(),
    }
}

fn cells(obj: &Json, cols: &[&str]) -> Vec<Json> {
    cols.iter().map(|c| cell(&obj[*c])).collect()
}

fn nulls(n: usize) -> Vec<Json> {
    vec![Json::Null; n]
}

/// The engine's result, flattened the way the baseline's join returns it.
fn engine_rows(data: &IssueTracker, w: &Workload) -> Vec<Vec<Json>> {
    let mut engine = Engine::new(data.memory_catalog());
    let nodes = engine.add_query(QueryId(1), &w.ast).unwrap();
    let format = engine.format(QueryId(1)).unwrap().clone();
    let result = serde_json::to_value(ResultJson::new(&format, &nodes)).unwrap();
    let top = match result {
        Json::Array(rows) => rows,
        Json::Null => Vec::new(),
        one => vec![one],
    };
    let mut out = Vec::new();
    for issue in &top {
        let head = cells(issue, &ISSUE);
        match w.spec.number {
            1 | 6 | 7 => out.push(head),
            2 => {
                let mut r = head;
                r.extend(match &issue["creator"] {
                    Json::Null => nulls(USER.len()),
                    u => cells(u, &USER),
                });
                out.push(r);
            }
            3 => {
                let mut r = head;
                r.push(issue["commentCount"].clone());
                out.push(r);
            }
            n => {
                let comments = issue["comments"].as_array().unwrap();
                let width = COMMENT.len() + if n == 9 { USER.len() } else { 0 };
                if comments.is_empty() {
                    let mut r = head.clone();
                    r.extend(nulls(width));
                    out.push(r);
                }
                for c in comments {
                    let mut r = head.clone();
                    r.extend(cells(c, &COMMENT));
                    if n == 9 {
                        r.extend(match &c["author"] {
                            Json::Null => nulls(USER.len()),
                            u => cells(u, &USER),
                        });
                    }
                    out.push(r);
                }
            }
        }
    }
    out
}

fn baseline_rows(data: &IssueTracker, w: &Workload) -> Vec<Vec<Json>> {
    let b = Baseline::new(data, w.clone()).unwrap();
    b.rows()
        .unwrap()
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| match v {
                    rusqlite::types::Value::Null => Json::Null,
                    rusqlite::types::Value::Integer(i) => json!(i),
                    rusqlite::types::Value::Real(x) => json!(x),
                    rusqlite::types::Value::Text(s) => json!(s),
                    rusqlite::types::Value::Blob(b) => json!(b),
                })
                .collect()
        })
        .collect()
}

#[test]
fn each_baseline_statement_returns_the_views_rows_in_its_order() {
    let data = data();
    for w in Workload::all(&data) {
        let (ours, theirs) = (engine_rows(&data, &w), baseline_rows(&data, &w));
        assert!(!ours.is_empty(), "view {} is empty", w.spec.number);
        assert_eq!(ours, theirs, "view {}: {}", w.spec.number, w.sql);
    }
}

#[test]
fn every_pair_changes_the_view_on_every_runner_and_leaves_it_as_it_was() {
    let data = data();
    let rounds = Rounds {
        hydrate: 1,
        warmup: 1,
        batches: 1,
        per_batch: 2,
    };
    for w in Workload::all(&data) {
        let before = engine_rows(&data, &w);
        let mut runners: Vec<Box<dyn Runner>> = vec![
            Box::new(Baseline::new(&data, w.clone()).unwrap()),
            Box::new(MemoryRunner::new(&data, w.clone())),
            Box::new(sqlite_runner(&data, w.clone()).unwrap()),
            Box::new(redb_runner(&data, w.clone()).unwrap()),
        ];
        for r in &mut runners {
            // A pair whose write leaves the view alone is an error.
            let m = measure(r.as_mut(), rounds)
                .unwrap_or_else(|e| panic!("view {} on {}: {e}", w.spec.number, r.name()));
            assert_eq!(m.pair.samples, 2);
        }
        // The writes were undone: the baseline reads what it read before.
        let b = Baseline::new(&data, w.clone()).unwrap();
        assert_eq!(b.query().unwrap(), before.len(), "view {}", w.spec.number);
    }
}

#[test]
fn the_views_have_the_shape_benchmarks_md_gives() {
    let data = IssueTracker::new(rindle_testkit::Scale::Small);
    let rows = |n: u8| {
        let w = Workload::new(n, &data);
        let mut r = MemoryRunner::new(&data, w);
        r.hydrate().unwrap().1
    };
    for n in [1, 2, 3, 4, 6] {
        assert_eq!(rows(n), 50, "view {n} shows a viewport of 50");
    }
    assert_eq!(rows(5), 1);
    assert_eq!(rows(7), (0..1000).filter(|i| i % 3 != 0).count());
    assert_eq!(rows(8), 1000);
    assert_eq!(rows(9), 1000);
}
