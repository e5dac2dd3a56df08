//! The lifecycle of a live query over the in-memory source:
//! build a query, hydrate a view, push writes, watch the view change.
//!
//! Run with `cargo run -p rindle-core --example lifecycle`.

#![allow(clippy::print_stdout)] // printing is this demo's whole job

use rindle_core::*;

fn show(title: &str, view: &View) {
    println!("{title}");
    if view.is_empty() {
        println!("    (empty)");
    }
    for row in view.rows() {
        println!("    #{} {:<28} created {}", row[0], row[1], row[3]);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Tables and initial rows.
    let mut catalog = MemoryCatalog::new();
    catalog.add_table(TableSchema::new(
        "issue",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("title", ColumnType::Text).not_null(),
            Column::new("open", ColumnType::Boolean).not_null(),
            Column::new("created", ColumnType::Integer).not_null(),
        ],
        &["id"],
    )?)?;
    let seed = [
        (1, "Crash on start", true, 100),
        (2, "Typo in README", false, 110),
        (3, "Slow query on /issues", true, 120),
        (4, "Dark mode", true, 130),
        (5, "Login loops forever", true, 140),
    ];
    for (id, title, open, created) in seed {
        catalog.insert("issue", row![id, title, open, created])?;
    }
    let mut engine = Engine::new(catalog);

    // 2. A query, as a client would send it: the three newest open issues.
    let ast: Ast = serde_json::from_str(
        r#"{"table": "issue",
            "where": {"type": "simple", "op": "=",
                      "left": {"type": "column", "name": "open"},
                      "right": {"type": "literal", "value": true}},
            "orderBy": [["created", "desc"]],
            "limit": 3}"#,
    )?;
    // The builder produces the same AST.
    assert_eq!(
        ast,
        Query::table("issue")
            .filter(col("open").eq(true))
            .order_by("created", Direction::Desc)
            .limit(3)
            .into_ast()
    );

    // 3. Build and hydrate.
    let id = QueryId(1);
    let nodes = engine.add_query(id, &ast)?;
    let mut view = View::hydrated(engine.format(id).expect("registered").clone(), &nodes)?;
    view.subscribe(|v| println!("  listener: the view now holds {} rows", v.len()));
    view.flush();
    show("hydrated:", &view);

    // 4. Writes: each is pushed through the query, which emits only the difference.
    let writes = [
        (
            "a new issue enters at the top and displaces the oldest",
            SourceChange::Add(row![6, "Export to CSV", true, 150]),
        ),
        (
            "closing a visible issue refills from past the limit",
            SourceChange::Edit {
                old: row![5, "Login loops forever", true, 140],
                new: row![5, "Login loops forever", false, 140],
            },
        ),
        (
            "a change outside the window changes nothing",
            SourceChange::Remove(row![1, "Crash on start", true, 100]),
        ),
    ];
    for (what, change) in writes {
        println!("\n{what}:");
        engine.push("issue", change)?;
        for event in engine.drain() {
            if let QueryEvent::Changed { changes, .. } = event {
                for c in &changes {
                    println!("  change: {}", describe(c));
                }
                view.apply_all(&changes)?;
            }
        }
        if !view.flush() {
            println!("  (no change to the view)");
        }
        show("view:", &view);
    }

    // 5. A write the engine refuses leaves everything as it was.
    let err = engine
        .push("issue", SourceChange::Add(row![3, "duplicate", true, 1]))
        .unwrap_err();
    println!("\nrefused: {err}");
    Ok(())
}

fn describe(c: &Change) -> String {
    match c {
        Change::Add(n) => format!("add #{}", n.row[0]),
        Change::Remove(n) => format!("remove #{}", n.row[0]),
        Change::Edit { new, .. } => format!("edit #{}", new.row[0]),
        Change::Child { row, .. } => format!("child change under #{}", row[0]),
    }
}
