//! Many rows entering a limit window one after another, over the in-memory
//! source: every insert above the window's top displaces its bottom row (a
//! desc window over increasing keys), and the view must equal a fresh query
//! of the same AST afterwards, with and without a per-parent partition.
//!
//! How long such streams take is measured by
//! `cargo bench -p rindle-bench --bench big_txn`.

use rindle_core::{
    Ast, Column, ColumnType, Direction, Engine, MemoryCatalog, Query, QueryEvent, QueryId,
    SourceChange, TableSchema, Value, View, row,
};

fn engine(seed: i64) -> Engine<MemoryCatalog> {
    let mut catalog = MemoryCatalog::new();
    catalog
        .add_table(
            TableSchema::new("grp", vec![Column::new("id", ColumnType::Integer)], &["id"]).unwrap(),
        )
        .unwrap();
    catalog
        .add_table(
            TableSchema::new(
                "item",
                vec![
                    Column::new("id", ColumnType::Integer),
                    Column::new("grp", ColumnType::Integer),
                ],
                &["id"],
            )
            .unwrap(),
        )
        .unwrap();
    for g in 0..4 {
        catalog.insert("grp", row![g]).unwrap();
    }
    for i in 1..=seed {
        catalog.insert("item", row![i, i % 4]).unwrap();
    }
    Engine::new(catalog)
}

fn window(dir: Direction) -> Ast {
    Query::table("item").order_by("id", dir).limit(3).into_ast()
}

fn per_group(dir: Direction) -> Ast {
    Query::table("grp")
        .related(
            "items",
            &["id"],
            &["grp"],
            Query::table("item").order_by("id", dir).limit(3),
        )
        .into_ast()
}

/// Pushes `changes`, keeping `view` (query 1) current.
fn push_all(e: &mut Engine<MemoryCatalog>, view: &mut View, changes: Vec<SourceChange>) {
    for c in changes {
        e.push("item", c).unwrap();
        for ev in e.drain() {
            match ev {
                QueryEvent::Changed { changes, .. } => view.apply_all(&changes).unwrap(),
                other => panic!("{other:?}"),
            }
        }
    }
}

fn fresh(e: &mut Engine<MemoryCatalog>, ast: &Ast) -> Vec<rindle_core::Node> {
    let nodes = e.add_query(QueryId(99), ast).unwrap();
    e.remove_query(QueryId(99));
    nodes
}

fn adds(from: i64, n: i64) -> Vec<SourceChange> {
    (from..from + n)
        .map(|i| SourceChange::Add(row![i, i % 4]))
        .collect()
}

#[test]
fn a_20k_row_stream_through_limit_windows_matches_a_fresh_query() {
    for dir in [Direction::Desc, Direction::Asc] {
        for ast in [window(dir), per_group(dir)] {
            let mut e = engine(100);
            let nodes = e.add_query(QueryId(1), &ast).unwrap();
            let mut view = View::hydrated(e.format(QueryId(1)).unwrap().clone(), &nodes).unwrap();
            push_all(&mut e, &mut view, adds(101, 20_000));
            // Then the top half goes again, from the top down.
            let removes = (10_101..=20_100)
                .rev()
                .map(|i| SourceChange::Remove(row![i, i % 4]))
                .collect();
            push_all(&mut e, &mut view, removes);
            assert_eq!(view.to_nodes(), fresh(&mut e, &ast), "{dir:?} {ast:?}");
        }
    }
    // The flat desc window holds the three largest ids.
    let mut e = engine(100);
    let ast = window(Direction::Desc);
    let nodes = e.add_query(QueryId(1), &ast).unwrap();
    let mut view = View::hydrated(e.format(QueryId(1)).unwrap().clone(), &nodes).unwrap();
    push_all(&mut e, &mut view, adds(101, 20_000));
    let ids: Vec<Value> = view.rows().map(|r| r[0].clone()).collect();
    assert_eq!(
        ids,
        vec![Value::Int(20_100), Value::Int(20_099), Value::Int(20_098)]
    );
    assert_eq!(view.to_nodes(), fresh(&mut e, &ast));
}
