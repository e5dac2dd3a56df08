//! The `rindle-scenario` binary: JSON scenario in, one JSON line per view out.

use std::io::Write as _;
use std::process::{Command, Stdio};

use rindle_testkit::harness::first_difference;
use serde_json::{Value as Json, json};

fn run(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rindle-scenario"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn scenario() -> Json {
    json!({
        "tables": [{"name": "issue", "columns": [{"name": "id", "type": "integer"}, {"name": "title", "type": "text"},
                    {"name": "open", "type": "boolean"}, {"name": "meta", "type": "json"}, {"name": "score", "type": "real"}],
                    "primaryKey": ["id"], "rows": [[1, "a", true, {"tags": ["x"]}, 1.5], [2, "b", false, null, 2]]}],
        "query": {"table": "issue", "where": {"type": "simple", "op": "=", "left": {"type": "column", "name": "open"},
                  "right": {"type": "literal", "value": true}}, "orderBy": [["score", "desc"]], "limit": 1},
        "steps": [
            [{"table": "issue", "op": "edit", "old": [2, "b", false, null, 2], "row": [2, "b", true, null, 2]}],
            [{"table": "issue", "op": "remove", "row": [2, "b", true, null, 2]},
             {"table": "issue", "op": "add", "row": [3, "c", true, [1, 2], 0.5]}]
        ]
    })
}

fn lines(s: &str) -> Vec<Json> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn prints_a_line_per_view_for_every_backend_and_the_oracle() {
    let input = scenario().to_string();
    let expected = vec![
        json!([{"id": 1, "title": "a", "open": true, "meta": {"tags": ["x"]}, "score": 1.5}]),
        json!([{"id": 2, "title": "b", "open": true, "meta": null, "score": 2}]),
        json!([{"id": 1, "title": "a", "open": true, "meta": {"tags": ["x"]}, "score": 1.5}]),
    ];
    let (code, out, err) = run(&["--oracle"], &input);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out), expected);
    // A real column holds floats: the backends print the 2 stored there as 2.0.
    for backend in ["memory", "sqlite", "redb"] {
        let (code, out, err) = run(&["--backend", backend], &input);
        assert_eq!(code, 0, "{backend}: {err}");
        let got = lines(&out);
        assert_eq!(got.len(), expected.len(), "{backend}");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(first_difference(g, e), None, "{backend}: {g} vs {e}");
        }
        assert_eq!(got[1][0]["score"], json!(2.0), "{backend}");
    }
}

#[test]
fn singular_roots_print_the_object_or_null() {
    let mut s = scenario();
    s["query"] = json!({"table": "issue", "one": true, "where": {"type": "simple", "op": "=",
        "left": {"type": "column", "name": "id"}, "right": {"type": "literal", "value": 3}}});
    let (code, out, _) = run(&[], &s.to_string());
    assert_eq!(code, 0);
    let got = lines(&out);
    assert_eq!(got[0], Json::Null);
    assert_eq!(got[2]["id"], 3);
}

#[test]
fn bad_input_names_the_problem_and_exits_2() {
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "bad scenario"),
        (
            json!({"tables": [], "query": {"table": "t"}, "extra": 1}).to_string(),
            "extra",
        ),
        (
            {
                let mut s = scenario();
                s["query"]["orderBy"] = json!([["nope", "asc"]]);
                s.to_string()
            },
            "unknown column `nope`",
        ),
        (
            {
                let mut s = scenario();
                s["tables"][0]["rows"][0][0] = json!("one");
                s.to_string()
            },
            "does not fit column `id`",
        ),
        (
            {
                let mut s = scenario();
                s["steps"][1][0]["row"] = json!([9, "z", true, null, 1]);
                s.to_string()
            },
            "step 2, write 1",
        ),
        (
            {
                let mut s = scenario();
                s["tables"][0]["columns"][1]["type"] = json!("varchar");
                s.to_string()
            },
            "varchar",
        ),
    ];
    for (input, needle) in cases {
        for args in [&[][..], &["--oracle"][..]] {
            let (code, out, err) = run(args, &input);
            assert_eq!(code, 2, "{args:?} {input}: {out}");
            assert!(
                err.contains(needle),
                "{args:?}: `{err}` should name `{needle}`"
            );
            assert!(out.is_empty());
        }
    }
    let (code, _, err) = run(&["--backend", "nope"], &scenario().to_string());
    assert_eq!(code, 2);
    assert!(err.contains("unknown backend `nope`"));
    let (code, _, err) = run(&["--frobnicate"], "");
    assert_eq!(code, 2);
    assert!(err.contains("--frobnicate"));
}
