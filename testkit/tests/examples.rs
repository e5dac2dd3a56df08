//! QUERY.md's worked examples, and the relational shapes by name, run through
//! the in-memory engine with writes, checked against the oracle after every
//! transaction; plus the shape of the changes a relationship emits.

use rindle_core::{
    Ast, Change, Column, ColumnType, Engine, MemoryCatalog, Node, QueryId, SourceChange,
    TableSchema, Value, row,
};
use rindle_testkit::harness::{assert_agrees, flip_variants};
use rindle_testkit::{MemorySubject, Scenario, TableData, Write, WriteOp};
use serde_json::{Value as Json, json};

fn table(name: &str, cols: &[(&str, ColumnType)], pk: &[&str], rows: Json) -> TableData {
    TableData {
        name: name.into(),
        columns: cols.iter().map(|(n, t)| Column::new(n, *t)).collect(),
        primary_key: pk.iter().map(|s| s.to_string()).collect(),
        rows: serde_json::from_value(rows).unwrap(),
    }
}

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
                [10, 7, 5, 100, "open", 1700000100],
                [11, 7, 9, 101, "done", 1700000200],
                [12, 7, 7, null, "open", 1699999000],
                [13, 7, 1, 100, "open", 1600000000],
                [20, 2, 3, 102, "open", 1700000300],
                [30, null, 8, 100, "open", 1699999999],
                [310, 7, 2, 101, "open", 1700000000]
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
        table(
            "comment",
            &[("id", Integer), ("taskID", Integer)],
            &["id"],
            json!([[1, 10], [2, 10], [3, 13]]),
        ),
    ]
}

fn w(table: &str, op: WriteOp, row: Json, old: Option<Json>) -> Write {
    Write {
        table: table.into(),
        op,
        row: serde_json::from_value(row).unwrap(),
        old: old.map(|o| serde_json::from_value(o).unwrap()),
    }
}

/// Writes that move tasks between projects, change assignees, add and drop
/// notes, rename members, delete parents with children, and re-key a task.
fn writes() -> Vec<Vec<Write>> {
    use WriteOp::*;
    vec![
        vec![w("note", Add, json!([5, 13, 0.5]), None)],
        vec![w(
            "task",
            Edit,
            json!([12, 7, 7, 101, "open", 1699999000]),
            Some(json!([12, 7, 7, null, "open", 1699999000])),
        )],
        vec![w(
            "member",
            Edit,
            json!([101, "bobby"]),
            Some(json!([101, "bob"])),
        )],
        vec![w(
            "task",
            Edit,
            json!([20, 7, 10, 100, "open", 1700000300]),
            Some(json!([20, 2, 3, 102, "open", 1700000300])),
        )],
        vec![
            w("note", Remove, json!([1, 10, 1.5]), None),
            w("note", Remove, json!([2, 10, 2]), None),
        ],
        vec![
            w(
                "task",
                Add,
                json!([14, 7, 6, 100, "open", 1699000000]),
                None,
            ),
            w("note", Add, json!([6, 14, 3]), None),
        ],
        vec![w("project", Remove, json!([1, "beta"]), None)],
        vec![w(
            "task",
            Edit,
            json!([15, 7, 1, 100, "open", 1600000000]),
            Some(json!([13, 7, 1, 100, "open", 1600000000])),
        )],
        vec![
            w("comment", Add, json!([4, 12]), None),
            w("comment", Edit, json!([1, 12]), Some(json!([1, 10]))),
        ],
        vec![w("member", Remove, json!([100, "ann"]), None)],
    ]
}

fn check(query: Json) {
    let ast: Ast = serde_json::from_value(query).unwrap();
    for query in flip_variants(&ast, 4) {
        let case = Scenario {
            tables: tracker(),
            query,
            steps: writes(),
        };
        assert_agrees(&mut MemorySubject::new(), &case);
    }
}

#[test]
fn query_md_open_tasks_of_a_project_newest_first_with_assignee_and_notes() {
    check(
        json!({"table":"task","orderBy":[["updatedAt","desc"],["id","asc"]],"limit":20,
     "start":{"row":{"updatedAt":1700000000,"id":310},"exclusive":true},
     "where":{"type":"and","conditions":[
       {"type":"simple","op":"=","left":{"type":"column","name":"projectID"},"right":{"type":"literal","value":7}},
       {"type":"simple","op":"!=","left":{"type":"column","name":"state"},"right":{"type":"literal","value":"done"}},
       {"type":"correlatedSubquery","op":"EXISTS","related":{
          "correlation":{"parentField":["id"],"childField":["taskID"]},"subquery":{"table":"note","alias":"notes"}}}]},
     "related":[{"correlation":{"parentField":["assigneeID"],"childField":["id"]},
                 "subquery":{"table":"member","alias":"assignee","one":true}}]}),
    );
}

#[test]
fn query_md_every_project_with_its_three_highest_priority_tasks() {
    check(json!({"table":"project","orderBy":[["name","asc"]],
     "related":[{"correlation":{"parentField":["id"],"childField":["projectID"]},
       "subquery":{"table":"task","alias":"topTasks","orderBy":[["priority","desc"],["id","asc"]],"limit":3}}]}));
}

#[test]
fn query_md_relationship_count() {
    check(
        json!({"table":"task","related":[{"correlation":{"parentField":["id"],"childField":["taskID"]},
        "subquery":{"table":"comment","alias":"commentCount","aggregate":"count"}}]}),
    );
    check(
        json!({"table":"task","related":[{"correlation":{"parentField":["id"],"childField":["taskID"]},
        "subquery":{"table":"note","alias":"weight","aggregate":{"sum":"weight"}}}]}),
    );
}

#[test]
fn nested_relationships_three_deep_with_siblings() {
    check(json!({"table":"project","related":[
        {"correlation":{"parentField":["id"],"childField":["projectID"]},
         "subquery":{"table":"task","alias":"tasks","limit":2,"orderBy":[["updatedAt","desc"]],"related":[
            {"correlation":{"parentField":["id"],"childField":["taskID"]},"subquery":{"table":"note","alias":"notes","orderBy":[["weight","desc"]]}},
            {"correlation":{"parentField":["assigneeID"],"childField":["id"]},"subquery":{"table":"member","alias":"who","one":true}},
            {"correlation":{"parentField":["id"],"childField":["taskID"]},"subquery":{"table":"note","alias":"avgWeight","aggregate":{"avg":"weight"}}}]}},
        {"correlation":{"parentField":["id"],"childField":["projectID"]},
         "subquery":{"table":"task","alias":"open","where":{"type":"simple","op":"=","left":{"type":"column","name":"state"},"right":{"type":"literal","value":"open"}},"select":["state"]}}]}));
}

#[test]
fn exists_nested_under_or_and_not_exists() {
    let notes = |op: &str| {
        json!({"type":"correlatedSubquery","op":op,"flip":true,"related":{
        "correlation":{"parentField":["id"],"childField":["taskID"]},"subquery":{"table":"note",
        "where":{"type":"simple","op":">","left":{"type":"column","name":"weight"},"right":{"type":"literal","value":1}}}}})
    };
    check(
        json!({"table":"project","orderBy":[["name","desc"]],"limit":2,"where":{"type":"correlatedSubquery","op":"EXISTS","related":{
        "correlation":{"parentField":["id"],"childField":["projectID"]},
        "subquery":{"table":"task","where":{"type":"or","conditions":[notes("EXISTS"),
            {"type":"simple","op":"=","left":{"type":"column","name":"priority"},"right":{"type":"literal","value":1}}]}}}}}),
    );
    check(
        json!({"table":"task","where":{"type":"and","conditions":[notes("NOT EXISTS"),
        {"type":"correlatedSubquery","op":"EXISTS","related":{"correlation":{"parentField":["assigneeID"],"childField":["id"]},"subquery":{"table":"member"}}}]}}),
    );
}

#[test]
fn root_aggregates_with_group_by_and_having() {
    check(
        json!({"table":"task","aggregate":"count","groupBy":["projectID"],"orderBy":[["count","desc"]],"limit":2,
        "having":{"type":"simple","op":">","left":{"type":"column","name":"count"},"right":{"type":"literal","value":0}}}),
    );
    check(json!({"table":"note","aggregate":{"avg":"weight"}}));
}

fn people() -> Vec<TableData> {
    use ColumnType::*;
    vec![
        table(
            "person",
            &[("id", Integer), ("name", Text), ("managerID", Integer)],
            &["id"],
            json!([[1, "ada", null], [2, "bo", 1], [3, "cy", 1], [4, "di", 2]]),
        ),
        table(
            "team",
            &[("id", Integer), ("name", Text)],
            &["id"],
            json!([[1, "core"], [2, "web"]]),
        ),
        table(
            "membership",
            &[("personID", Integer), ("teamID", Integer)],
            &["personID", "teamID"],
            json!([[1, 1], [2, 1], [2, 2], [4, 2]]),
        ),
    ]
}

fn check_people(query: Json, steps: Vec<Vec<Write>>) {
    let ast: Ast = serde_json::from_value(query).unwrap();
    for query in flip_variants(&ast, 4) {
        assert_agrees(
            &mut MemorySubject::new(),
            &Scenario {
                tables: people(),
                query,
                steps: steps.clone(),
            },
        );
    }
}

#[test]
fn self_join_and_many_to_many_through_a_junction() {
    use WriteOp::*;
    let steps = vec![
        vec![w(
            "person",
            Edit,
            json!([4, "di", 3]),
            Some(json!([4, "di", 2])),
        )],
        vec![
            w("membership", Add, json!([3, 2]), None),
            w("membership", Remove, json!([2, 2]), None),
        ],
        vec![w("person", Remove, json!([1, "ada", null]), None)],
        vec![w(
            "team",
            Edit,
            json!([2, "frontend"]),
            Some(json!([2, "web"])),
        )],
        vec![w(
            "person",
            Edit,
            json!([2, "bo", 2]),
            Some(json!([2, "bo", 1])),
        )],
    ];
    // Managers with their reports (a self-join) and each person's teams.
    check_people(
        json!({"table":"person","related":[
        {"correlation":{"parentField":["id"],"childField":["managerID"]},"subquery":{"table":"person","alias":"reports"}},
        {"correlation":{"parentField":["id"],"childField":["personID"]},"subquery":{"table":"membership","alias":"teams","related":[
            {"correlation":{"parentField":["teamID"],"childField":["id"]},"subquery":{"table":"team","alias":"team","one":true}}]}}]}),
        steps.clone(),
    );
    // People who manage someone, and people in a team named like "c%".
    check_people(
        json!({"table":"person","where":{"type":"or","conditions":[
        {"type":"correlatedSubquery","op":"EXISTS","related":{"correlation":{"parentField":["id"],"childField":["managerID"]},"subquery":{"table":"person"}}},
        {"type":"correlatedSubquery","op":"EXISTS","related":{"correlation":{"parentField":["id"],"childField":["personID"]},"subquery":{"table":"membership",
            "where":{"type":"correlatedSubquery","op":"EXISTS","related":{"correlation":{"parentField":["teamID"],"childField":["id"]},"subquery":{"table":"team",
                "where":{"type":"simple","op":"LIKE","left":{"type":"column","name":"name"},"right":{"type":"literal","value":"c%"}}}}}}}}]}}),
        steps,
    );
}

#[test]
fn changes_inside_a_present_parent_arrive_as_child_changes() {
    let mut cat = MemoryCatalog::new();
    let t = |name, cols: Vec<Column>| TableSchema::new(name, cols, &["id"]).unwrap();
    cat.add_table(t("issue", vec![Column::new("id", ColumnType::Integer)]))
        .unwrap();
    cat.add_table(t(
        "comment",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("issueID", ColumnType::Integer),
        ],
    ))
    .unwrap();
    cat.insert("issue", row![1]).unwrap();
    let mut engine = Engine::new(cat);
    let q: Ast = serde_json::from_value(json!({"table":"issue","related":[
        {"correlation":{"parentField":["id"],"childField":["issueID"]},"subquery":{"table":"comment","alias":"comments"}},
        {"correlation":{"parentField":["id"],"childField":["issueID"]},"subquery":{"table":"comment","alias":"n","aggregate":"count"}}]}))
    .unwrap();
    let nodes = engine.add_query(QueryId(1), &q).unwrap();
    assert_eq!(nodes[0].relationships[0].1, vec![]);
    assert_eq!(nodes[0].relationships[1].1, vec![Node::leaf(row![0, 0])]);
    engine
        .push("comment", SourceChange::Add(row![7, 1]))
        .unwrap();
    assert_eq!(
        engine.take_changes(QueryId(1)),
        vec![
            Change::Child {
                row: row![1],
                relationship: "comments".into(),
                change: Box::new(Change::Add(Node::leaf(row![7, 1]))),
            },
            Change::Child {
                row: row![1],
                relationship: "n".into(),
                change: Box::new(Change::Edit {
                    old: Node::leaf(row![0, 0]),
                    new: Node::leaf(row![0, 1]),
                }),
            },
        ]
    );
    // A comment on an issue that is not there changes nothing.
    engine
        .push("comment", SourceChange::Add(row![8, 2]))
        .unwrap();
    assert!(engine.take_changes(QueryId(1)).is_empty());
    // Adding that issue brings its comment along.
    engine.push("issue", SourceChange::Add(row![2])).unwrap();
    let changes = engine.take_changes(QueryId(1));
    let Change::Add(n) = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(n.relationships[0].1, vec![Node::leaf(row![8, 2])]);
    assert_eq!(n.relationships[1].1[0].row[1], Value::Int(1));
}

#[test]
fn per_parent_state_is_released_when_its_parents_go() {
    let mut cat = MemoryCatalog::new();
    let t = |name, cols: Vec<Column>| TableSchema::new(name, cols, &["id"]).unwrap();
    cat.add_table(t("issue", vec![Column::new("id", ColumnType::Integer)]))
        .unwrap();
    cat.add_table(t(
        "comment",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("issueID", ColumnType::Integer),
            Column::new("authorID", ColumnType::Integer),
        ],
    ))
    .unwrap();
    cat.add_table(t("user", vec![Column::new("id", ColumnType::Integer)]))
        .unwrap();
    let mut engine = Engine::new(cat);
    // Each issue: its 2 newest comments, each with its author (one), and a count.
    let q: Ast = serde_json::from_value(json!({"table":"issue","related":[
        {"correlation":{"parentField":["id"],"childField":["issueID"]},
         "subquery":{"table":"comment","alias":"latest","orderBy":[["id","desc"]],"limit":2,"related":[
            {"correlation":{"parentField":["authorID"],"childField":["id"]},"subquery":{"table":"user","alias":"author","one":true}}]}},
        {"correlation":{"parentField":["id"],"childField":["issueID"]},"subquery":{"table":"comment","alias":"n","aggregate":"count"}}]}))
    .unwrap();
    engine.add_query(QueryId(1), &q).unwrap();
    assert_eq!(engine.partitions(QueryId(1)), Some(0));
    for i in 0..50i64 {
        engine.push("user", SourceChange::Add(row![i])).unwrap();
        engine.push("issue", SourceChange::Add(row![i])).unwrap();
        for c in 0..3 {
            engine
                .push(
                    "comment",
                    SourceChange::Add(row![i * 10 + c, i, (i + c) % 50]),
                )
                .unwrap();
        }
    }
    let busy = engine.partitions(QueryId(1)).unwrap();
    // 50 comment windows, 50 counts, and author windows per visible comment.
    assert!(busy >= 100, "{busy}");
    for i in 0..50i64 {
        engine.push("issue", SourceChange::Remove(row![i])).unwrap();
    }
    assert_eq!(
        engine.partitions(QueryId(1)),
        Some(0),
        "every parent is gone"
    );
    // Parents coming back read their children afresh.
    engine.push("issue", SourceChange::Add(row![7])).unwrap();
    engine.take_changes(QueryId(1));
    let nodes = engine.read(QueryId(1)).unwrap().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].relationships[0].1.len(), 2);
    assert_eq!(nodes[0].relationships[1].1[0].row[1], Value::Int(3));
}
