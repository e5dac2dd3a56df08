//! Named cases for single-table queries: QUERY.md's worked push, strict change
//! validation, build refusals, views and listeners, fault isolation.

use std::cell::{Cell, RefCell};
use std::ops::ControlFlow;
use std::rc::Rc;

use rindle_core::*;
use serde_json::json;

fn issue_schema() -> TableSchema {
    TableSchema::new(
        "issue",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("owner", ColumnType::Integer),
            Column::new("score", ColumnType::Integer),
        ],
        &["id"],
    )
    .unwrap()
}

fn issues(rows: &[[i64; 3]]) -> MemoryCatalog {
    let mut cat = MemoryCatalog::new();
    cat.add_table(issue_schema()).unwrap();
    for r in rows {
        cat.insert("issue", row![r[0], r[1], r[2]]).unwrap();
    }
    cat
}

fn ids(rows: impl IntoIterator<Item = Row>) -> Vec<i64> {
    rows.into_iter()
        .map(|r| match r[0] {
            Value::Int(i) => i,
            ref v => panic!("{v:?}"),
        })
        .collect()
}

fn ast(j: serde_json::Value) -> Ast {
    serde_json::from_value(j).unwrap()
}

/// QUERY.md: `issue where owner = 1 orderBy [score desc, id asc] start
/// {score:40,id:4} exclusive limit 2` over (1,1,10), (2,2,20), (3,1,30),
/// (4,1,40) is [3, 1]; editing row 2 to owner 1, score 35 outputs Remove(1) then
/// Add(2), and the view becomes [2, 3].
#[test]
fn query_md_worked_push() {
    let mut engine = Engine::new(issues(&[[1, 1, 10], [2, 2, 20], [3, 1, 30], [4, 1, 40]]));
    let q = Query::table("issue")
        .filter(col("owner").eq(1))
        .order_by("score", Direction::Desc)
        .order_by("id", Direction::Asc)
        .start([("score", 40), ("id", 4)], true)
        .limit(2)
        .into_ast();
    let nodes = engine.add_query(QueryId(1), &q).unwrap();
    let mut view = View::hydrated(engine.format(QueryId(1)).unwrap().clone(), &nodes).unwrap();
    assert_eq!(ids(view.rows().cloned()), [3, 1]);

    engine
        .push(
            "issue",
            SourceChange::Edit {
                old: row![2, 2, 20],
                new: row![2, 1, 35],
            },
        )
        .unwrap();
    let changes = engine.take_changes(QueryId(1));
    assert_eq!(
        changes,
        vec![
            Change::Remove(Node::leaf(row![1, 1, 10])),
            Change::Add(Node::leaf(row![2, 1, 35])),
        ]
    );
    view.apply_all(&changes).unwrap();
    assert_eq!(ids(view.rows().cloned()), [2, 3]);
}

#[test]
fn limit_refills_from_past_the_boundary_and_never_overflows() {
    let mut engine = Engine::new(issues(&[[1, 0, 1], [2, 0, 2], [3, 0, 3], [4, 0, 4]]));
    let q = Query::table("issue")
        .order_by("score", Direction::Asc)
        .limit(2);
    let nodes = engine.add_query(QueryId(1), &q.into_ast()).unwrap();
    assert_eq!(ids(nodes.into_iter().map(|n| n.row)), [1, 2]);

    // A row inside the window goes: the next one past the boundary refills it.
    engine
        .push("issue", SourceChange::Remove(row![1, 0, 1]))
        .unwrap();
    assert_eq!(
        engine.take_changes(QueryId(1)),
        vec![
            Change::Remove(Node::leaf(row![1, 0, 1])),
            Change::Add(Node::leaf(row![3, 0, 3])),
        ]
    );
    // A row sorting before the boundary displaces it: remove first, then add.
    engine
        .push("issue", SourceChange::Add(row![9, 0, 0]))
        .unwrap();
    assert_eq!(
        engine.take_changes(QueryId(1)),
        vec![
            Change::Remove(Node::leaf(row![3, 0, 3])),
            Change::Add(Node::leaf(row![9, 0, 0])),
        ]
    );
    // A row past the boundary changes nothing.
    engine
        .push("issue", SourceChange::Add(row![10, 0, 7]))
        .unwrap();
    assert!(engine.take_changes(QueryId(1)).is_empty());
    // An edit moving a row out of the window brings in the next one.
    engine
        .push(
            "issue",
            SourceChange::Edit {
                old: row![9, 0, 0],
                new: row![9, 0, 50],
            },
        )
        .unwrap();
    assert_eq!(
        engine.take_changes(QueryId(1)),
        vec![
            Change::Remove(Node::leaf(row![9, 0, 0])),
            Change::Add(Node::leaf(row![3, 0, 3])),
        ]
    );
    // An edit moving within the window is an edit.
    engine
        .push(
            "issue",
            SourceChange::Edit {
                old: row![3, 0, 3],
                new: row![3, 0, -1],
            },
        )
        .unwrap();
    assert_eq!(
        engine.take_changes(QueryId(1)),
        vec![Change::Edit {
            old: Node::leaf(row![3, 0, 3]),
            new: Node::leaf(row![3, 0, -1]),
        }]
    );
}

#[test]
fn filters_turn_edits_into_adds_removes_or_nothing() {
    let mut engine = Engine::new(issues(&[[1, 1, 10]]));
    let q = Query::table("issue").filter(col("owner").eq(1)).into_ast();
    engine.add_query(QueryId(1), &q).unwrap();
    let edit = |engine: &mut Engine<MemoryCatalog>, old: Row, new: Row| {
        engine
            .push("issue", SourceChange::Edit { old, new })
            .unwrap();
        engine.take_changes(QueryId(1))
    };
    assert_eq!(
        edit(&mut engine, row![1, 1, 10], row![1, 2, 10]),
        vec![Change::Remove(Node::leaf(row![1, 1, 10]))]
    );
    assert_eq!(edit(&mut engine, row![1, 2, 10], row![1, 3, 10]), vec![]);
    assert_eq!(
        edit(&mut engine, row![1, 3, 10], row![1, 1, 11]),
        vec![Change::Add(Node::leaf(row![1, 1, 11]))]
    );
    assert_eq!(
        edit(&mut engine, row![1, 1, 11], row![1, 1, 12]),
        vec![Change::Edit {
            old: Node::leaf(row![1, 1, 11]),
            new: Node::leaf(row![1, 1, 12]),
        }]
    );
}

#[test]
fn primary_key_edit_is_remove_then_add() {
    let mut engine = Engine::new(issues(&[[1, 1, 10]]));
    engine
        .add_query(QueryId(1), &Query::table("issue").into_ast())
        .unwrap();
    engine
        .push(
            "issue",
            SourceChange::Edit {
                old: row![1, 1, 10],
                new: row![5, 1, 10],
            },
        )
        .unwrap();
    assert_eq!(
        engine.take_changes(QueryId(1)),
        vec![
            Change::Remove(Node::leaf(row![1, 1, 10])),
            Change::Add(Node::leaf(row![5, 1, 10])),
        ]
    );
    assert!(
        engine
            .catalog()
            .table("issue")
            .unwrap()
            .rows()
            .eq([row![5, 1, 10]])
    );
}

#[test]
fn one_at_the_root_and_limit_zero() {
    let mut engine = Engine::new(issues(&[[1, 1, 10], [2, 1, 5]]));
    let one = Query::table("issue")
        .order_by("score", Direction::Asc)
        .one();
    let nodes = engine.add_query(QueryId(1), &one.into_ast()).unwrap();
    let format = engine.format(QueryId(1)).unwrap().clone();
    assert!(format.singular());
    let mut view = View::hydrated(format, &nodes).unwrap();
    assert_eq!(view.first().unwrap().row(), &row![2, 1, 5]);

    let zero = Query::table("issue").limit(0).into_ast();
    assert!(engine.add_query(QueryId(2), &zero).unwrap().is_empty());

    engine
        .push("issue", SourceChange::Add(row![3, 1, 0]))
        .unwrap();
    for e in engine.drain() {
        match e {
            QueryEvent::Changed { query, changes } => {
                assert_eq!(query, QueryId(1), "limit 0 never changes");
                view.apply_all(&changes).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(view.len(), 1);
    assert_eq!(view.first().unwrap().row(), &row![3, 1, 0]);
}

#[test]
fn start_inclusive_and_exclusive() {
    let mut engine = Engine::new(issues(&[[1, 0, 1], [2, 0, 2], [3, 0, 3]]));
    let at = |excl| {
        Query::table("issue")
            .order_by("score", Direction::Asc)
            .start([("score", 2)], excl)
            .into_ast()
    };
    // Unnamed order columns (here `id`) count as null, which sorts first: row
    // (score 2, id 2) is past (score 2, id null) even when exclusive.
    let nodes = engine.add_query(QueryId(1), &at(true)).unwrap();
    assert_eq!(ids(nodes.into_iter().map(|n| n.row)), [2, 3]);
    let full = |excl| {
        Query::table("issue")
            .order_by("score", Direction::Asc)
            .start([("score", 2), ("id", 2)], excl)
            .into_ast()
    };
    let nodes = engine.add_query(QueryId(2), &full(true)).unwrap();
    assert_eq!(ids(nodes.into_iter().map(|n| n.row)), [3]);
    let nodes = engine.add_query(QueryId(3), &full(false)).unwrap();
    assert_eq!(ids(nodes.into_iter().map(|n| n.row)), [2, 3]);
}

// ------------------------------------------------------------ validation

fn snapshot(engine: &Engine<MemoryCatalog>) -> Vec<Row> {
    engine.catalog().table("issue").unwrap().rows().collect()
}

#[test]
fn strict_validation_refuses_and_leaves_state_untouched() {
    let mut engine = Engine::new(issues(&[[1, 1, 10], [2, 1, 20]]));
    engine
        .add_query(QueryId(1), &Query::table("issue").limit(1).into_ast())
        .unwrap();
    let before = snapshot(&engine);
    type Expect = fn(&PushError) -> bool;
    let refusals: Vec<(SourceChange, Expect)> = vec![
        (SourceChange::Add(row![1, 9, 9]), |e| {
            matches!(e, PushError::Change(ChangeError::DuplicateKey { .. }))
        }),
        (SourceChange::Remove(row![7, 1, 10]), |e| {
            matches!(e, PushError::Change(ChangeError::MissingRow { .. }))
        }),
        (SourceChange::Remove(row![1, 1, 11]), |e| {
            matches!(e, PushError::Change(ChangeError::RowMismatch { .. }))
        }),
        (
            SourceChange::Edit {
                old: row![7, 1, 10],
                new: row![7, 1, 11],
            },
            |e| matches!(e, PushError::Change(ChangeError::MissingRow { .. })),
        ),
        (
            SourceChange::Edit {
                old: row![1, 1, 99],
                new: row![1, 1, 11],
            },
            |e| matches!(e, PushError::Change(ChangeError::RowMismatch { .. })),
        ),
        (
            SourceChange::Edit {
                old: row![1, 1, 10],
                new: row![2, 1, 10],
            },
            |e| matches!(e, PushError::Change(ChangeError::DuplicateKey { .. })),
        ),
        (SourceChange::Add(row![3, 1]), |e| {
            matches!(
                e,
                PushError::Change(ChangeError::RowWidth {
                    expected: 3,
                    got: 2,
                    ..
                })
            )
        }),
        (SourceChange::Add(row![3, 1, 2, 4]), |e| {
            matches!(e, PushError::Change(ChangeError::RowWidth { .. }))
        }),
        (
            SourceChange::Add(row![3, "x", 2]),
            |e| matches!(e, PushError::Change(ChangeError::CellType { column, .. }) if column == "owner"),
        ),
        (
            SourceChange::Add(row![Value::Null, 1, 2]),
            |e| matches!(e, PushError::Change(ChangeError::CellType { column, .. }) if column == "id"),
        ),
        (SourceChange::Add(row![3, 1.5, 2]), |e| {
            matches!(e, PushError::Change(ChangeError::CellType { .. }))
        }),
    ];
    for (change, is_expected) in refusals {
        let err = engine.push("issue", change.clone()).unwrap_err();
        assert!(is_expected(&err), "{change:?} gave {err:?}");
        assert!(!err.to_string().is_empty());
        assert!(engine.drain().is_empty(), "{change:?} produced output");
        assert_eq!(snapshot(&engine), before, "{change:?} changed the table");
    }
    assert!(matches!(
        engine.push("nope", SourceChange::Add(row![1])),
        Err(PushError::Change(ChangeError::UnknownTable { .. }))
    ));
    // The engine still works.
    engine
        .push("issue", SourceChange::Add(row![0, 1, 1]))
        .unwrap();
    assert_eq!(engine.drain().len(), 1);
}

#[test]
fn lenient_mode_repairs_like_an_upsert() {
    let mut engine = Engine::new(issues(&[[1, 1, 10]]));
    engine.set_mode(ChangeMode::Lenient);
    engine
        .add_query(QueryId(1), &Query::table("issue").into_ast())
        .unwrap();
    engine
        .push("issue", SourceChange::Add(row![1, 1, 11]))
        .unwrap();
    assert_eq!(
        engine.take_changes(QueryId(1)),
        vec![Change::Edit {
            old: Node::leaf(row![1, 1, 10]),
            new: Node::leaf(row![1, 1, 11])
        }]
    );
    engine
        .push("issue", SourceChange::Remove(row![5, 0, 0]))
        .unwrap();
    assert!(engine.take_changes(QueryId(1)).is_empty());
    engine
        .push("issue", SourceChange::Remove(row![1, 0, 0]))
        .unwrap();
    assert_eq!(
        engine.take_changes(QueryId(1)),
        vec![Change::Remove(Node::leaf(row![1, 1, 11]))]
    );
    engine
        .push(
            "issue",
            SourceChange::Edit {
                old: row![2, 0, 0],
                new: row![2, 0, 1],
            },
        )
        .unwrap();
    assert_eq!(
        engine.take_changes(QueryId(1)),
        vec![Change::Add(Node::leaf(row![2, 0, 1]))]
    );
    // Shape errors are refused in every mode.
    assert!(engine.push("issue", SourceChange::Add(row![3])).is_err());
}

// ------------------------------------------------------------ build errors

#[test]
fn build_errors_name_the_problem() {
    let mut cat = issues(&[]);
    let col_ = |name: &str| json!({"type":"column","name":name});
    let lit = |v: serde_json::Value| json!({"type":"literal","value":v});
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"table":"nope"}), "unknown table `nope`"),
        (
            json!({"table":"issue","orderBy":[["nope","asc"]]}),
            "unknown column `nope` of table `issue` in orderBy",
        ),
        (
            json!({"table":"issue","where":{"type":"simple","op":"=","left":col_("nope"),"right":lit(json!(1))}}),
            "unknown column `nope` of table `issue` in where",
        ),
        (
            json!({"table":"issue","start":{"row":{"nope":1},"exclusive":true}}),
            "unknown column `nope` of table `issue` in start",
        ),
        (
            json!({"table":"issue","where":{"type":"simple","op":"=","left":lit(json!(1)),"right":lit(json!(1))}}),
            "left side of `=` must be a column",
        ),
        (
            json!({"table":"issue","where":{"type":"simple","op":"<","left":col_("owner"),"right":col_("score")}}),
            "right side of `owner <` must be a literal, not column `score`",
        ),
        (
            json!({"table":"issue","where":{"type":"simple","op":"=","left":col_("owner"),"right":{"type":"static","anchor":"authData","field":"sub"}}}),
            "unbound `authData` parameter",
        ),
        (
            json!({"table":"issue","where":{"type":"simple","op":"LIKE","left":col_("owner"),"right":lit(json!(3))}}),
            "`owner LIKE` needs a string pattern",
        ),
        (
            json!({"table":"issue","where":{"type":"simple","op":"IN","left":col_("owner"),"right":lit(json!(3))}}),
            "`owner IN` needs an array",
        ),
        (
            json!({"table":"issue","where":{"type":"simple","op":"=","left":col_("owner"),"right":lit(json!([1]))}}),
            "`owner =` takes a single value",
        ),
        (
            json!({"table":"issue","where":{"type":"and","conditions":[{"type":"or","conditions":[{"type":"simple","op":"NOT IN","left":col_("id"),"right":lit(json!("x"))}]}]}}),
            "`id NOT IN` needs an array",
        ),
    ];
    for (j, needle) in cases {
        let err = build_pipeline(&ast(j.clone()), &mut cat).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(needle), "{j}: {text}");
    }
}

#[test]
fn too_deep_and_malformed_correlations_are_refused() {
    let mut cat = issues(&[]);
    let mut cond = Condition::And { conditions: vec![] };
    for _ in 0..MAX_AST_DEPTH + 1 {
        cond = Condition::Or {
            conditions: vec![cond],
        };
    }
    let deep = Query::table("issue").filter(cond).into_ast();
    assert_eq!(
        build_pipeline(&deep, &mut cat).unwrap_err(),
        BuildError::TooDeep {
            limit: MAX_AST_DEPTH
        }
    );
    let bad = json!({"table":"issue","where":{"type":"correlatedSubquery","op":"EXISTS","related":
        {"correlation":{"parentField":["id","owner"],"childField":["owner"]},"subquery":{"table":"issue"}}}});
    assert!(matches!(
        build_pipeline(&ast(bad), &mut cat),
        Err(BuildError::InvalidCondition { .. })
    ));
}

#[test]
fn duplicate_query_ids_are_refused() {
    let mut engine = Engine::new(issues(&[]));
    let q = Query::table("issue").into_ast();
    engine.add_query(QueryId(1), &q).unwrap();
    assert!(matches!(
        engine.add_query(QueryId(1), &q),
        Err(QueryError::DuplicateId(QueryId(1)))
    ));
    assert!(engine.remove_query(QueryId(1)));
    assert!(!engine.remove_query(QueryId(1)));
    engine.add_query(QueryId(1), &q).unwrap();
}

// ------------------------------------------------------------ the view

#[test]
fn view_listeners_fire_on_flush_after_changes() {
    let mut engine = Engine::new(issues(&[[1, 1, 10]]));
    let nodes = engine
        .add_query(QueryId(1), &Query::table("issue").into_ast())
        .unwrap();
    let mut view = View::hydrated(engine.format(QueryId(1)).unwrap().clone(), &nodes).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let id = view.subscribe(move |v| s.borrow_mut().push(v.len()));
    assert!(view.flush(), "hydration is a change");
    assert!(!view.flush(), "nothing changed since");
    engine
        .push("issue", SourceChange::Add(row![2, 1, 1]))
        .unwrap();
    engine
        .push("issue", SourceChange::Add(row![3, 1, 1]))
        .unwrap();
    view.apply_all(&engine.take_changes(QueryId(1))).unwrap();
    assert!(view.flush());
    assert_eq!(
        *seen.borrow(),
        [1, 3],
        "one call per flush, seeing the batch"
    );
    assert!(view.unsubscribe(id));
    view.apply(&Change::Remove(Node::leaf(row![3, 1, 1])))
        .unwrap();
    assert!(view.flush());
    assert_eq!(seen.borrow().len(), 2);
}

#[test]
fn view_refuses_changes_that_do_not_fit_and_counts_paths() {
    let format = {
        let mut engine = Engine::new(issues(&[]));
        engine
            .add_query(QueryId(1), &Query::table("issue").into_ast())
            .unwrap();
        engine.format(QueryId(1)).unwrap().clone()
    };
    let mut view = View::new(format);
    let r = row![1, 1, 1];
    assert_eq!(
        view.apply(&Change::Remove(Node::leaf(r.clone()))),
        Err(ViewError::MissingRow)
    );
    assert_eq!(
        view.apply(&Change::Edit {
            old: Node::leaf(r.clone()),
            new: Node::leaf(row![2, 1, 1])
        }),
        Err(ViewError::KeyChanged)
    );
    assert_eq!(
        view.apply(&Change::Child {
            row: r.clone(),
            relationship: "x".into(),
            change: Box::new(Change::Add(Node::leaf(r.clone())))
        }),
        Err(ViewError::MissingRow)
    );
    assert!(view.is_empty());
    view.apply(&Change::Add(Node::leaf(r.clone()))).unwrap();
    view.apply(&Change::Add(Node::leaf(r.clone()))).unwrap();
    assert_eq!(view.first().unwrap().count(), 2);
    view.apply(&Change::Remove(Node::leaf(r.clone()))).unwrap();
    assert_eq!(view.len(), 1, "still reached by one path");
    assert!(matches!(
        view.apply(&Change::Child {
            row: r.clone(),
            relationship: "x".into(),
            change: Box::new(Change::Add(Node::leaf(r.clone())))
        }),
        Err(ViewError::UnknownRelationship(a)) if a == "x"
    ));
    view.apply(&Change::Remove(Node::leaf(r))).unwrap();
    assert!(view.is_empty());
}

// ------------------------------------------------------------ faults

/// A one-table catalog whose source starts failing on demand.
struct Flaky {
    source: MemorySource,
    fail: Rc<Cell<bool>>,
}

#[derive(Debug)]
struct Boom;
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk on fire")
    }
}
impl std::error::Error for Boom {}

impl Source for Flaky {
    fn schema(&self) -> &TableSchema {
        self.source.schema()
    }
    fn prepare(&mut self, order: &SortOrder, constraint_columns: &[usize]) {
        self.source.prepare(order, constraint_columns);
    }
    fn fetch(
        &self,
        req: &FetchRequest<'_>,
        sink: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        if self.fail.get() {
            return Err(SourceError::Backend(Box::new(Boom)));
        }
        self.source.fetch(req, sink)
    }
    fn get(&self, key: &[Value]) -> Result<Option<Row>, SourceError> {
        self.source.get(key)
    }
    fn apply(&mut self, change: &SourceChange) -> Result<(), SourceError> {
        self.source.apply(change)
    }
}

impl Catalog for Flaky {
    fn table_id(&self, name: &str) -> Option<TableId> {
        (name == self.source.schema().name()).then_some(TableId(0))
    }
    fn source(&self, _id: TableId) -> &dyn Source {
        self
    }
    fn source_mut(&mut self, _id: TableId) -> &mut dyn Source {
        self
    }
}

#[test]
fn a_failing_query_is_torn_down_and_reported_others_carry_on() {
    let fail = Rc::new(Cell::new(false));
    let mut source = MemorySource::new(issue_schema());
    for r in [row![1, 1, 1], row![2, 1, 2], row![3, 1, 3]] {
        source.insert(r).unwrap();
    }
    let flaky = Flaky {
        source,
        fail: fail.clone(),
    };
    let mut engine = Engine::new(flaky);
    // Query 1 fetches during pushes (its limit refills); query 2 never does.
    engine
        .add_query(QueryId(1), &Query::table("issue").limit(2).into_ast())
        .unwrap();
    engine
        .add_query(QueryId(2), &Query::table("issue").into_ast())
        .unwrap();
    fail.set(true);
    engine
        .push("issue", SourceChange::Remove(row![1, 1, 1]))
        .unwrap();
    let events = engine.drain();
    assert!(matches!(
        &events[0],
        QueryEvent::Faulted { query: QueryId(1), error: EngineError::Source(SourceError::Backend(e)) }
            if e.to_string() == "disk on fire"
    ));
    assert!(matches!(
        &events[1],
        QueryEvent::Changed { query: QueryId(2), changes } if changes.len() == 1
    ));
    assert_eq!(engine.query_ids().collect::<Vec<_>>(), [QueryId(2)]);
    fail.set(false);
    engine
        .push("issue", SourceChange::Remove(row![2, 1, 2]))
        .unwrap();
    assert_eq!(engine.take_changes(QueryId(2)).len(), 1);
}

#[test]
fn memory_source_prepares_indexes_and_answers_unprepared_fetches() {
    let mut engine = Engine::new(issues(&[[1, 2, 30], [2, 1, 20], [3, 2, 10]]));
    engine
        .add_query(
            QueryId(1),
            &Query::table("issue")
                .order_by("score", Direction::Asc)
                .into_ast(),
        )
        .unwrap();
    let src = engine.catalog().table("issue").unwrap();
    assert_eq!(src.index_count(), 1, "one index for the score order");
    // An order never prepared is still answered, in order and reversed, from a
    // start, under a constraint.
    let order = SortOrder::new(vec![(1, Direction::Desc), (0, Direction::Asc)]);
    let start = Start {
        row: row![3, 2, 10],
        basis: StartBasis::After,
    };
    let fetch = |req: FetchRequest<'_>| {
        let mut out = Vec::new();
        src.fetch(&req, &mut |r| {
            out.push(r.clone());
            ControlFlow::Continue(())
        })
        .unwrap();
        ids(out)
    };
    let base = FetchRequest {
        order: &order,
        constraint: &[],
        start: None,
        reverse: false,
        filter: None,
    };
    assert_eq!(fetch(base), [1, 3, 2]);
    assert_eq!(
        fetch(FetchRequest {
            reverse: true,
            ..base
        }),
        [2, 3, 1]
    );
    assert_eq!(
        fetch(FetchRequest {
            start: Some(&start),
            ..base
        }),
        [2]
    );
    assert_eq!(
        fetch(FetchRequest {
            start: Some(&start),
            reverse: true,
            ..base
        }),
        [1]
    );
    let c = [(1usize, Value::Int(2))];
    assert_eq!(
        fetch(FetchRequest {
            constraint: &c,
            ..base
        }),
        [1, 3]
    );
}
