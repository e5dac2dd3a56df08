//! Every shape outside the supported subset is refused at build time with a
//! `BuildError` that says why — one test per refusal.

use rindle_core::*;
use serde_json::{Value as Json, json};

fn catalog() -> MemoryCatalog {
    let mut cat = MemoryCatalog::new();
    cat.add_table(
        TableSchema::new(
            "issue",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("title", ColumnType::Text),
                Column::new("score", ColumnType::Real),
            ],
            &["id"],
        )
        .unwrap(),
    )
    .unwrap();
    cat.add_table(
        TableSchema::new(
            "comment",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("issueID", ColumnType::Integer),
                Column::new("body", ColumnType::Text),
            ],
            &["id"],
        )
        .unwrap(),
    )
    .unwrap();
    cat
}

fn refuse(q: Json) -> BuildError {
    let ast: Ast = serde_json::from_value(q.clone()).unwrap();
    match build_pipeline(&ast, &mut catalog()) {
        Err(e) => {
            assert!(!e.to_string().is_empty());
            e
        }
        Ok(_) => panic!("built {q}"),
    }
}

fn comments(sub: Json) -> Json {
    json!([{"correlation": {"parentField": ["id"], "childField": ["issueID"]}, "subquery": sub}])
}

fn exists(sub: Json) -> Json {
    json!({"type": "correlatedSubquery", "op": "EXISTS",
        "related": {"correlation": {"parentField": ["id"], "childField": ["issueID"]}, "subquery": sub}})
}

fn reason(e: BuildError) -> String {
    match e {
        BuildError::Unsupported { reason, .. } => reason,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn unknown_tables_at_every_level() {
    for q in [
        json!({"table": "nope"}),
        json!({"table": "issue", "related": comments(json!({"table": "nope", "alias": "x"}))}),
        json!({"table": "issue", "where": exists(json!({"table": "nope"}))}),
    ] {
        assert!(matches!(refuse(q), BuildError::UnknownTable { table } if table == "nope"));
    }
}

#[test]
fn unknown_columns_name_where_they_appear() {
    let cases = [
        (json!({"table": "issue", "select": ["nope"]}), "select"),
        (
            json!({"table": "issue", "aggregate": "count", "groupBy": ["nope"]}),
            "groupBy",
        ),
        (
            json!({"table": "issue", "aggregate": {"sum": "nope"}}),
            "aggregate",
        ),
        (
            json!({"table": "issue", "aggregate": "count", "orderBy": [["title", "asc"]]}),
            "orderBy",
        ),
        (
            json!({"table": "issue", "related": [{"correlation": {"parentField": ["nope"], "childField": ["issueID"]},
            "subquery": {"table": "comment", "alias": "c"}}]}),
            "correlation parentField",
        ),
        (
            json!({"table": "issue", "related": [{"correlation": {"parentField": ["id"], "childField": ["nope"]},
            "subquery": {"table": "comment", "alias": "c"}}]}),
            "correlation childField",
        ),
    ];
    for (q, where_) in cases {
        match refuse(q.clone()) {
            BuildError::UnknownColumn { place, .. } => assert_eq!(place, where_, "{q}"),
            other => panic!("{q}: {other:?}"),
        }
    }
    let having = json!({"table": "issue", "aggregate": "count", "having":
        {"type": "simple", "op": ">", "left": {"type": "column", "name": "title"}, "right": {"type": "literal", "value": 1}}});
    assert!(
        matches!(refuse(having), BuildError::UnknownColumn { column, .. } if column == "title")
    );
}

#[test]
fn correlations_must_pair_up() {
    for (p, c) in [
        (json!([]), json!([])),
        (json!(["id"]), json!(["issueID", "id"])),
    ] {
        let q = json!({"table": "issue", "related": [{"correlation": {"parentField": p, "childField": c},
            "subquery": {"table": "comment", "alias": "c"}}]});
        assert!(matches!(refuse(q), BuildError::InvalidCondition { .. }));
    }
}

#[test]
fn relationships_need_one_alias_each() {
    let no_alias = json!({"table": "issue", "related": comments(json!({"table": "comment"}))});
    assert!(matches!(
        refuse(no_alias),
        BuildError::UnknownRelationship { .. }
    ));
    let mut twice = comments(json!({"table": "comment", "alias": "c"}));
    let first = twice[0].clone();
    twice.as_array_mut().unwrap().push(first);
    let q = json!({"table": "issue", "related": twice});
    assert!(matches!(refuse(q), BuildError::UnknownRelationship { alias, .. } if alias == "c"));
}

#[test]
fn group_by_and_having_need_a_root_aggregate() {
    assert!(
        reason(refuse(json!({"table": "issue", "groupBy": ["title"]}))).contains("root aggregate")
    );
    let child = json!({"table": "issue", "related": comments(json!({"table": "comment", "alias": "c", "groupBy": ["body"]}))});
    assert!(reason(refuse(child)).contains("root aggregate"));
}

#[test]
fn root_aggregates_cannot_have_rows_features() {
    for extra in [
        json!({"related": comments(json!({"table": "comment", "alias": "c"}))}),
        json!({"start": {"row": {"id": 1}, "exclusive": true}}),
        json!({"one": true}),
        json!({"select": ["id"]}),
    ] {
        let mut q = json!({"table": "issue", "aggregate": "count"});
        q.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert!(reason(refuse(q)).contains("root aggregate"));
    }
}

#[test]
fn relationship_aggregates_cannot_have_rows_features() {
    for extra in [
        json!({"select": ["id"]}),
        json!({"one": true}),
        json!({"related": [{"correlation": {"parentField": ["issueID"], "childField": ["id"]},
                         "subquery": {"table": "issue", "alias": "i"}}]}),
    ] {
        let mut sub = json!({"table": "comment", "alias": "n", "aggregate": "count"});
        sub.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let q = json!({"table": "issue", "related": comments(sub)});
        assert!(reason(refuse(q)).contains("relationship aggregate"));
    }
}

#[test]
fn sum_and_avg_need_numeric_columns() {
    assert!(
        reason(refuse(
            json!({"table": "issue", "aggregate": {"sum": "title"}})
        ))
        .contains("numeric")
    );
    let q = json!({"table": "issue", "related": comments(json!({"table": "comment", "alias": "n", "aggregate": {"avg": "body"}}))});
    assert!(reason(refuse(q)).contains("numeric"));
}

#[test]
fn exists_subqueries_cannot_aggregate() {
    let q = json!({"table": "issue", "where": exists(json!({"table": "comment", "aggregate": "count"}))});
    assert!(reason(refuse(q)).contains("EXISTS"));
}

#[test]
fn having_cannot_contain_exists() {
    let q = json!({"table": "issue", "aggregate": "count", "groupBy": ["title"],
        "having": exists(json!({"table": "comment"}))});
    assert!(reason(refuse(q)).contains("having"));
}

#[test]
fn a_group_column_may_not_shadow_the_aggregate() {
    let mut cat = MemoryCatalog::new();
    cat.add_table(
        TableSchema::new(
            "t",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("count", ColumnType::Integer),
            ],
            &["id"],
        )
        .unwrap(),
    )
    .unwrap();
    let ast: Ast =
        serde_json::from_value(json!({"table": "t", "aggregate": "count", "groupBy": ["count"]}))
            .unwrap();
    assert!(matches!(
        build_pipeline(&ast, &mut cat),
        Err(BuildError::Unsupported { .. })
    ));
}
