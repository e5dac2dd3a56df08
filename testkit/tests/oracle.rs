//! The oracle's semantics, pinned: each place where SQLite and QUERY.md could
//! differ, QUERY.md's examples over related tables, aggregates, and refusals.
//! Single-table pins also run through the in-memory engine, which must agree.

use rindle_core::{Column, ColumnType};
use rindle_testkit::{MemorySubject, Oracle, OracleError, Subject, TableData};
use serde_json::{Value as Json, json};

fn table(name: &str, cols: &[(&str, ColumnType)], pk: &[&str], rows: Json) -> TableData {
    TableData {
        name: name.into(),
        columns: cols.iter().map(|(n, t)| Column::new(n, *t)).collect(),
        primary_key: pk.iter().map(|s| s.to_string()).collect(),
        rows: serde_json::from_value(rows).unwrap(),
    }
}

fn ask(tables: &[TableData], q: Json) -> Json {
    let oracle = Oracle::new(tables).unwrap();
    oracle
        .query(&serde_json::from_value(q.clone()).unwrap())
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// The oracle's answer, checked to equal the engine's hydration.
fn both(tables: &[TableData], q: Json) -> Json {
    let want = ask(tables, q.clone());
    let got = MemorySubject::new()
        .start(tables, &serde_json::from_value(q.clone()).unwrap())
        .unwrap();
    assert_eq!(
        rindle_testkit::harness::first_difference(&got, &want),
        None,
        "engine vs oracle for {q}"
    );
    want
}

fn ids(j: &Json) -> Vec<i64> {
    j.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

fn cond(op: &str, col: &str, v: Json) -> Json {
    json!({"type":"simple","op":op,"left":{"type":"column","name":col},"right":{"type":"literal","value":v}})
}

fn filtered(tables: &[TableData], t: &str, c: Json) -> Vec<i64> {
    ids(&both(tables, json!({"table": t, "where": c})))
}

fn mixed() -> Vec<TableData> {
    use ColumnType::*;
    vec![table(
        "t",
        &[
            ("id", Integer),
            ("n", Real),
            ("s", Text),
            ("b", Boolean),
            ("i", Integer),
        ],
        &["id"],
        json!([
            [1, null, null, null, null],
            [2, 1, "abc", true, 5],
            [3, 1.0, "ABC", false, 0],
            [4, -0.0, "a%c", true, -1],
            [5, 0.0, "xéy", false, 9007199254740993i64],
            [6, 0, "a\\", true, 2],
            [7, 2.5, "5", false, 3]
        ]),
    )]
}

#[test]
fn null_is_false_for_every_operator_but_is() {
    let t = mixed();
    assert_eq!(
        filtered(&t, "t", cond("=", "s", json!(null))),
        Vec::<i64>::new()
    );
    assert_eq!(
        filtered(&t, "t", cond("!=", "s", json!(null))),
        Vec::<i64>::new()
    );
    assert_eq!(
        filtered(&t, "t", cond("!=", "s", json!("abc"))),
        [3, 4, 5, 6, 7]
    );
    assert_eq!(
        filtered(&t, "t", cond("<", "n", json!(100))),
        [2, 3, 4, 5, 6, 7]
    );
    assert_eq!(filtered(&t, "t", cond("IS", "s", json!(null))), [1]);
    assert_eq!(
        filtered(&t, "t", cond("IS NOT", "s", json!(null))),
        [2, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        filtered(&t, "t", cond("IS NOT", "s", json!("abc"))),
        [1, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        filtered(&t, "t", cond("NOT LIKE", "s", json!("zzz"))),
        [2, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        filtered(&t, "t", cond("NOT IN", "i", json!([5]))),
        [3, 4, 5, 6, 7]
    );
}

#[test]
fn not_in_ignores_null_list_elements() {
    // SQL's `i NOT IN (5, NULL)` is never true; QUERY.md's nulls match nothing.
    let t = mixed();
    assert_eq!(
        filtered(&t, "t", cond("NOT IN", "i", json!([5, null]))),
        [3, 4, 5, 6, 7]
    );
    assert_eq!(filtered(&t, "t", cond("IN", "i", json!([5, null]))), [2]);
    assert_eq!(
        filtered(&t, "t", cond("IN", "i", json!([]))),
        Vec::<i64>::new()
    );
    assert_eq!(
        filtered(&t, "t", cond("NOT IN", "i", json!([]))),
        [2, 3, 4, 5, 6, 7]
    );
}

#[test]
fn integers_and_floats_compare_exactly() {
    let t = mixed();
    assert_eq!(filtered(&t, "t", cond("=", "n", json!(1))), [2, 3]);
    assert_eq!(filtered(&t, "t", cond("=", "n", json!(1.0))), [2, 3]);
    // 2^53 + 1 is above the float 2^53 although they round to the same double.
    assert_eq!(
        filtered(&t, "t", cond(">", "i", json!(9007199254740992.0))),
        [5]
    );
    let ordered = both(&t, json!({"table":"t","orderBy":[["n","asc"]]}));
    // null first; -0.0 below 0 and 0.0 (IEEE total order), which tie and fall
    // back to the key; 1 and 1.0 tie likewise.
    assert_eq!(ids(&ordered), [1, 4, 5, 6, 2, 3, 7]);
}

#[test]
fn negative_zero_sorts_below_zero_and_is_not_equal_to_it() {
    let t = mixed();
    assert_eq!(filtered(&t, "t", cond("=", "n", json!(0))), [5, 6]);
    assert_eq!(filtered(&t, "t", cond("<", "n", json!(0))), [4]);
    assert_eq!(filtered(&t, "t", cond("=", "n", json!(-0.0))), [4]);
    assert_eq!(
        filtered(&t, "t", cond(">", "n", json!(-0.0))),
        [2, 3, 5, 6, 7]
    );
    assert_eq!(filtered(&t, "t", cond("IN", "n", json!([0]))), [5, 6]);
    let desc = both(&t, json!({"table":"t","orderBy":[["n","desc"]]}));
    assert_eq!(ids(&desc), [7, 2, 3, 5, 6, 4, 1]);
}

#[test]
fn like_is_case_sensitive_with_escapes_and_only_matches_text() {
    let t = mixed();
    assert_eq!(filtered(&t, "t", cond("LIKE", "s", json!("abc"))), [2]);
    assert_eq!(filtered(&t, "t", cond("ILIKE", "s", json!("abc"))), [2, 3]);
    assert_eq!(
        filtered(&t, "t", cond("NOT ILIKE", "s", json!("ABC"))),
        [4, 5, 6, 7]
    );
    assert_eq!(filtered(&t, "t", cond("LIKE", "s", json!("a%"))), [2, 4, 6]);
    assert_eq!(filtered(&t, "t", cond("LIKE", "s", json!("a\\%c"))), [4]);
    // A trailing backslash is a literal backslash (SQLite would match nothing).
    assert_eq!(filtered(&t, "t", cond("LIKE", "s", json!("a\\"))), [6]);
    // `_` is one character, not one byte.
    assert_eq!(filtered(&t, "t", cond("LIKE", "s", json!("x_y"))), [5]);
    // GLOB metacharacters in a LIKE pattern are literal.
    assert_eq!(
        filtered(&t, "t", cond("LIKE", "s", json!("[a]*"))),
        Vec::<i64>::new()
    );
    // Non-text never matches LIKE (SQLite matches 5 LIKE '5').
    assert_eq!(
        filtered(&t, "t", cond("LIKE", "i", json!("5"))),
        Vec::<i64>::new()
    );
    assert_eq!(
        filtered(&t, "t", cond("NOT LIKE", "i", json!("5"))),
        [2, 3, 4, 5, 6, 7]
    );
    // ILIKE folds ASCII only.
    let u = vec![table(
        "u",
        &[("id", ColumnType::Integer), ("s", ColumnType::Text)],
        &["id"],
        json!([[1, "É"], [2, "é"]]),
    )];
    assert_eq!(filtered(&u, "u", cond("ILIKE", "s", json!("é"))), [2]);
}

#[test]
fn values_of_different_kinds_order_by_kind() {
    let t = mixed();
    // A boolean is not the number 1 (SQLite stores it as 1).
    assert_eq!(
        filtered(&t, "t", cond("=", "b", json!(1))),
        Vec::<i64>::new()
    );
    assert_eq!(filtered(&t, "t", cond("=", "b", json!(true))), [2, 4, 6]);
    // bool < number < text.
    assert_eq!(
        filtered(&t, "t", cond("<", "b", json!(0))),
        [2, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        filtered(&t, "t", cond(">", "s", json!(1000))),
        [2, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        filtered(&t, "t", cond("=", "s", json!(5))),
        Vec::<i64>::new()
    );
    assert_eq!(
        filtered(&t, "t", cond("<", "i", json!("0"))),
        [2, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        filtered(&t, "t", cond("IN", "s", json!(["5", 5, true]))),
        [7]
    );
    // Text orders by UTF-8 bytes: "ABC" < "a%c" < "abc" < "xéy".
    let by_s = both(
        &t,
        json!({"table":"t","where":cond("IS NOT","s",json!(null)),"orderBy":[["s","asc"]]}),
    );
    assert_eq!(ids(&by_s), [7, 3, 4, 6, 2, 5]);
}

#[test]
fn start_bounds_treat_unnamed_columns_as_null() {
    let t = mixed();
    let q = |row: Json, exclusive: bool| {
        ids(&both(
            &t,
            json!({"table":"t","orderBy":[["n","asc"]],"start":{"row":row,"exclusive":exclusive}}),
        ))
    };
    assert_eq!(q(json!({"n": 1}), true), [2, 3, 7]);
    assert_eq!(q(json!({"n": 1, "id": 2}), true), [3, 7]);
    assert_eq!(q(json!({"n": 1, "id": 2}), false), [2, 3, 7]);
    assert_eq!(q(json!({"n": null}), true), [1, 4, 5, 6, 2, 3, 7]);
    assert_eq!(q(json!({"n": -0.0, "id": 4}), true), [5, 6, 2, 3, 7]);
    assert_eq!(q(json!({"n": "x"}), false), Vec::<i64>::new());
}

#[test]
fn cells_render_by_column_type() {
    use ColumnType::*;
    let t = vec![table(
        "j",
        &[("id", Integer), ("b", Boolean), ("doc", Json), ("x", Real)],
        &["id"],
        json!([[1, true, {"k": [1, "two", null]}, 0.1], [2, false, "plain", 1e300], [3, null, null, null]]),
    )];
    let rows = both(&t, json!({"table":"j"}));
    assert_eq!(
        rows,
        json!([
            {"id": 1, "b": true, "doc": {"k": [1, "two", null]}, "x": 0.1},
            {"id": 2, "b": false, "doc": "plain", "x": 1e300},
            {"id": 3, "b": null, "doc": null, "x": null}
        ])
    );
}

#[test]
fn one_at_the_root_is_an_object_or_null() {
    let t = mixed();
    assert_eq!(
        both(
            &t,
            json!({"table":"t","one":true,"orderBy":[["id","desc"]]})
        )["id"],
        7
    );
    assert_eq!(
        both(
            &t,
            json!({"table":"t","one":true,"where":cond("=","id",json!(99))})
        ),
        Json::Null
    );
}

// ------------------------------------------------ related, EXISTS, aggregates

fn tracker() -> Vec<TableData> {
    use ColumnType::*;
    vec![
        table(
            "project",
            &[("id", Integer), ("name", Text)],
            &["id"],
            json!([[1, "beta"], [2, "alpha"], [3, "gamma"]]),
        ),
        table(
            "task",
            &[
                ("id", Integer),
                ("projectID", Integer),
                ("priority", Integer),
                ("assigneeID", Integer),
                ("state", Text),
                ("updatedAt", Integer),
            ],
            &["id"],
            json!([
                [10, 1, 5, 100, "open", 1000],
                [11, 1, 9, 101, "done", 1001],
                [12, 1, 7, null, "open", 1002],
                [13, 1, 1, 100, "open", 1003],
                [20, 2, 3, 102, "open", 1004],
                [30, null, 8, 100, "open", 1005]
            ]),
        ),
        table(
            "member",
            &[("id", Integer), ("name", Text)],
            &["id"],
            json!([[100, "ann"], [101, "bob"]]),
        ),
        table(
            "note",
            &[("id", Integer), ("taskID", Integer), ("weight", Real)],
            &["id"],
            json!([[1, 10, 1.5], [2, 10, 2], [3, 12, null], [4, 20, 4]]),
        ),
    ]
}

#[test]
fn query_md_every_project_with_its_three_highest_priority_tasks() {
    let out = ask(
        &tracker(),
        json!({"table":"project","orderBy":[["name","asc"]],
            "related":[{"correlation":{"parentField":["id"],"childField":["projectID"]},
              "subquery":{"table":"task","alias":"topTasks","orderBy":[["priority","desc"],["id","asc"]],"limit":3}}]}),
    );
    let names: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    assert_eq!(ids(&out[0]["topTasks"]), [20]);
    assert_eq!(ids(&out[1]["topTasks"]), [11, 12, 10]);
    assert_eq!(ids(&out[2]["topTasks"]), Vec::<i64>::new());
}

#[test]
fn query_md_open_tasks_with_assignee_that_have_notes() {
    let out = ask(
        &tracker(),
        json!({"table":"task","orderBy":[["updatedAt","desc"],["id","asc"]],"limit":20,
            "start":{"row":{"updatedAt":1004,"id":20},"exclusive":true},
            "where":{"type":"and","conditions":[
                {"type":"simple","op":"=","left":{"type":"column","name":"projectID"},"right":{"type":"literal","value":1}},
                {"type":"simple","op":"!=","left":{"type":"column","name":"state"},"right":{"type":"literal","value":"done"}},
                {"type":"correlatedSubquery","op":"EXISTS","related":{
                    "correlation":{"parentField":["id"],"childField":["taskID"]},"subquery":{"table":"note","alias":"notes"}}}]},
            "related":[{"correlation":{"parentField":["assigneeID"],"childField":["id"]},
                "subquery":{"table":"member","alias":"assignee","one":true}}]}),
    );
    assert_eq!(ids(&out), [12, 10]);
    // A null correlation value never joins: task 12 has no assignee.
    assert_eq!(out[0]["assignee"], Json::Null);
    assert_eq!(out[1]["assignee"], json!({"id": 100, "name": "ann"}));
}

#[test]
fn exists_under_or_nested_and_negated() {
    let t = tracker();
    let has_notes = |op: &str, w: Json| {
        json!({"type":"correlatedSubquery","op":op,"related":{
            "correlation":{"parentField":["id"],"childField":["taskID"]},
            "subquery":{"table":"note","where":w}}})
    };
    let heavy = cond(">", "weight", json!(1.9));
    let q = json!({"table":"task","where":{"type":"or","conditions":[
        has_notes("EXISTS", heavy.clone()), cond("=", "priority", json!(1))]}});
    assert_eq!(ids(&ask(&t, q)), [10, 13, 20]);
    let q = json!({"table":"task","where":has_notes("NOT EXISTS", json!({"type":"and","conditions":[]}))});
    assert_eq!(ids(&ask(&t, q)), [11, 13, 30]);
    // Projects having a task that has a note.
    let q = json!({"table":"project","where":{"type":"correlatedSubquery","op":"EXISTS","flip":true,"related":{
        "correlation":{"parentField":["id"],"childField":["projectID"]},
        "subquery":{"table":"task","where":has_notes("EXISTS", json!({"type":"and","conditions":[]}))}}}});
    assert_eq!(ids(&ask(&t, q)), [1, 2]);
}

#[test]
fn relationship_aggregates_are_zero_or_null_without_children() {
    let t = tracker();
    let agg = |a: Json| {
        json!({"table":"task","orderBy":[["id","asc"]],"related":[{"correlation":{"parentField":["id"],"childField":["taskID"]},
            "subquery":{"table":"note","alias":"x","aggregate":a}}]})
    };
    let col = |out: &Json| -> Vec<Json> {
        out.as_array()
            .unwrap()
            .iter()
            .map(|r| r["x"].clone())
            .collect()
    };
    assert_eq!(
        col(&ask(&t, agg(json!("count")))),
        [json!(2), json!(0), json!(1), json!(0), json!(1), json!(0)]
    );
    assert_eq!(
        col(&ask(&t, agg(json!({"sum":"weight"})))),
        [
            json!(3.5),
            Json::Null,
            Json::Null,
            Json::Null,
            json!(4),
            Json::Null
        ]
    );
    assert_eq!(
        col(&ask(&t, agg(json!({"avg":"weight"})))),
        [
            json!(1.75),
            Json::Null,
            Json::Null,
            Json::Null,
            json!(4.0),
            Json::Null
        ]
    );
}

#[test]
fn root_aggregates_group_and_filter() {
    let t = tracker();
    let out = ask(
        &t,
        json!({"table":"task","aggregate":"count","groupBy":["projectID"],
            "having":cond(">=", "count", json!(1)),"orderBy":[["count","desc"]]}),
    );
    assert_eq!(
        out,
        json!([{"projectID": 1, "count": 4}, {"projectID": null, "count": 1}, {"projectID": 2, "count": 1}])
    );
    let out = ask(
        &t,
        json!({"table":"task","aggregate":{"sum":"priority"},"where":cond("=","state",json!("open"))}),
    );
    assert_eq!(out, json!([{"sum": 24}]));
    let empty = ask(
        &t,
        json!({"table":"task","aggregate":"count","where":cond("=","id",json!(-1))}),
    );
    assert_eq!(empty, json!([{"count": 0}]));
    let out = ask(
        &t,
        json!({"table":"note","aggregate":{"avg":"weight"},"groupBy":["taskID"],"having":cond("IS NOT","avg",json!(null))}),
    );
    assert_eq!(
        out,
        json!([{"taskID": 10, "avg": 1.75}, {"taskID": 20, "avg": 4.0}])
    );
}

#[test]
fn select_keeps_the_primary_key_and_many_to_many_nests() {
    use ColumnType::*;
    let mut t = tracker();
    t.push(table(
        "taskMember",
        &[("taskID", Integer), ("memberID", Integer)],
        &["taskID", "memberID"],
        json!([[10, 100], [10, 101], [11, 101]]),
    ));
    let out = ask(
        &t,
        json!({"table":"task","select":["state"],"where":cond("IN","id",json!([10, 11])),
            "related":[{"correlation":{"parentField":["id"],"childField":["taskID"]},
              "subquery":{"table":"taskMember","alias":"links","related":[{"correlation":{"parentField":["memberID"],"childField":["id"]},
                "subquery":{"table":"member","alias":"member","one":true,"select":["id"]}}]}}]}),
    );
    assert_eq!(
        out,
        json!([
            {"id": 10, "state": "open", "links": [
                {"taskID": 10, "memberID": 100, "member": {"id": 100}},
                {"taskID": 10, "memberID": 101, "member": {"id": 101}}]},
            {"id": 11, "state": "done", "links": [{"taskID": 11, "memberID": 101, "member": {"id": 101}}]}
        ])
    );
}

#[test]
fn correlations_of_different_kinds_never_join() {
    use ColumnType::*;
    let t = vec![
        table(
            "a",
            &[("id", Integer), ("flag", Boolean)],
            &["id"],
            json!([[1, true]]),
        ),
        table(
            "b",
            &[("id", Integer), ("n", Integer)],
            &["id"],
            json!([[1, 1]]),
        ),
    ];
    let out = ask(
        &t,
        json!({"table":"a","related":[{"correlation":{"parentField":["flag"],"childField":["n"]},
            "subquery":{"table":"b","alias":"bs"}}]}),
    );
    assert_eq!(out, json!([{"id": 1, "flag": true, "bs": []}]));
}

#[test]
fn bad_queries_get_typed_errors() {
    let oracle = Oracle::new(&tracker()).unwrap();
    let err = |q: Json| {
        oracle
            .query(&serde_json::from_value(q).unwrap())
            .unwrap_err()
    };
    assert!(matches!(err(json!({"table":"nope"})), OracleError::UnknownTable(t) if t == "nope"));
    assert!(matches!(
        err(json!({"table":"task","orderBy":[["nope","asc"]]})),
        OracleError::UnknownColumn { column, .. } if column == "nope"
    ));
    assert!(matches!(
        err(json!({"table":"task","where":cond("LIKE","state",json!(1))})),
        OracleError::Invalid(_)
    ));
    assert!(matches!(
        err(json!({"table":"task","aggregate":"count","start":{"row":{},"exclusive":true}})),
        OracleError::Unsupported(_)
    ));
    assert!(matches!(
        err(json!({"table":"task","groupBy":["state"]})),
        OracleError::Unsupported(_)
    ));
}
