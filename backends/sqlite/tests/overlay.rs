//! The SQLite source's overlay under long transactions: thousands of changes
//! applied on top of one pinned snapshot, with ordered fetches after each
//! change in the patterns the operators use (a step from a window's bound in
//! either direction, a full read, a constrained read) and in random ones.
//! Every fetch must return exactly the rows a fresh read of the table would:
//! the model's rows inside the request's constraint and start bound, in its
//! order, stopping where the sink stops.
//!
//! The patterns build long runs of snapshot rows shadowed by the overlay
//! (blocks deleted, everything deleted and written again, keys moved) and
//! long runs of overlay rows, so fetches start inside, before and after
//! them, in prepared and unprepared shapes.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use rindle_core::{
    Column, ColumnType, CompareOp, Direction, FetchRequest, Predicate, Row, SortOrder, Source,
    SourceChange, Start, StartBasis, TableSchema, Value,
};

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

const ID: usize = 0;
const GRP: usize = 1;
const V: usize = 2;
const T: usize = 3;

fn schema() -> TableSchema {
    TableSchema::new(
        "item",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("grp", ColumnType::Integer),
            Column::new("v", ColumnType::Integer),
            Column::new("t", ColumnType::Text),
        ],
        &["id"],
    )
    .unwrap()
}

fn item(rng: &mut Rng, id: i64) -> Row {
    let v = if rng.chance(10) {
        Value::Null
    } else {
        Value::Int(rng.below(40) as i64)
    };
    let t = if rng.chance(20) {
        Value::Null
    } else {
        Value::text(["a", "b", "c", "d"][rng.below(4) as usize])
    };
    Row::new(vec![Value::Int(id), Value::Int(rng.below(3) as i64), v, t])
}

type Model = BTreeMap<i64, Row>;

fn id_of(r: &Row) -> i64 {
    match r[ID] {
        Value::Int(i) => i,
        _ => unreachable!("ids are integers"),
    }
}

/// Writes `model` as the committed table of a new database file and opens
/// a source on it.
fn snapshot(dir: &tempfile::TempDir, n: usize, model: &Model) -> rindle_sqlite::SqliteSource {
    let path = dir.path().join(format!("t{n}.db"));
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE item (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, v INTEGER, t TEXT);
         CREATE INDEX item_grp ON item(grp, id);
         CREATE INDEX item_v ON item(v, id);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut ins = tx
            .prepare("INSERT INTO item VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for r in model.values() {
            let cell = |v: &Value| match v {
                Value::Int(i) => rusqlite::types::Value::Integer(*i),
                Value::Text(s) => rusqlite::types::Value::Text(s.to_string()),
                _ => rusqlite::types::Value::Null,
            };
            ins.execute(rusqlite::params_from_iter(r.iter().map(cell)))
                .unwrap();
        }
    }
    tx.commit().unwrap();
    rindle_sqlite::open_source(&path, schema()).unwrap()
}

/// The orders fetched; the first ones are prepared (with the constraint
/// columns of `prepared`), the last ones are not.
fn orders() -> Vec<SortOrder> {
    let s = schema();
    [
        vec![(ID, Direction::Asc)],
        vec![(ID, Direction::Desc)],
        vec![(V, Direction::Desc), (ID, Direction::Asc)],
        vec![(V, Direction::Asc), (ID, Direction::Desc)],
        vec![(T, Direction::Asc), (V, Direction::Desc)],
        vec![(GRP, Direction::Desc), (T, Direction::Desc)],
    ]
    .into_iter()
    .map(|k| SortOrder::new(k).completed(&s))
    .collect()
}

/// Prepared (order index, constraint columns) shapes.
const PREPARED: &[(usize, &[usize])] = &[
    (0, &[]),
    (1, &[]),
    (1, &[GRP]),
    (2, &[]),
    (2, &[GRP]),
    (3, &[GRP]),
    (4, &[T]),
];

/// One fetch, checked against the model.
struct Probe {
    order: usize,
    constraint: Vec<(usize, Value)>,
    start: Option<Start>,
    reverse: bool,
    filter: Option<Predicate>,
    stop_after: Option<usize>,
}

fn check(
    src: &rindle_sqlite::SqliteSource,
    model: &Model,
    orders: &[SortOrder],
    p: &Probe,
    what: &str,
) {
    let order = &orders[p.order];
    let req = FetchRequest {
        order,
        constraint: &p.constraint,
        start: p.start.as_ref(),
        reverse: p.reverse,
        filter: p.filter.as_ref(),
    };
    let mut want: Vec<Row> = model.values().filter(|r| req.admits(r)).cloned().collect();
    want.sort_by(|a, b| {
        let o = order.compare(a, b);
        if p.reverse { o.reverse() } else { o }
    });
    let mut got: Vec<Row> = Vec::new();
    src.fetch(&req, &mut |r| {
        assert!(
            p.stop_after.is_none_or(|n| got.len() <= n),
            "{what}: sink called after it broke"
        );
        got.push(r.clone());
        match p.stop_after {
            Some(n) if got.len() > n => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    })
    .unwrap();
    let describe = || {
        format!(
            "{what}: order {:?} constraint {:?} start {:?} reverse {} filter {:?} stop {:?}",
            order.keys(),
            p.constraint,
            p.start,
            p.reverse,
            p.filter,
            p.stop_after
        )
    };
    match &p.filter {
        None => {
            if let Some(n) = p.stop_after {
                want.truncate(n + 1);
            }
            assert_eq!(got, want, "{}", describe());
        }
        Some(f) => {
            // The filter is a hint: the rows passing it come in full and in
            // order; rows failing it may come or not.
            assert!(got.iter().all(|r| req.admits(r)), "{}", describe());
            let got_passing: Vec<&Row> = got.iter().filter(|r| f.eval(r)).collect();
            let want_passing: Vec<&Row> = want.iter().filter(|r| f.eval(r)).collect();
            let stopped = p.stop_after.is_some_and(|n| got.len() > n);
            if stopped {
                assert!(
                    want_passing.starts_with(&got_passing),
                    "{}\n got {got:?}\nwant {want:?}",
                    describe()
                );
            } else {
                assert_eq!(got_passing, want_passing, "{}", describe());
            }
        }
    }
}

/// A start bound at `row`'s position, or at a position between rows.
fn start_at(rng: &mut Rng, row: &Row) -> Start {
    let mut cells = row.to_vec();
    if rng.chance(15) {
        // Same first columns, another key: a position no row holds.
        let shift = if rng.chance(50) { 100_000 } else { -100_000 };
        cells[ID] = Value::Int(id_of(row) + shift);
    }
    Start {
        row: Row::new(cells),
        basis: if rng.chance(50) {
            StartBasis::At
        } else {
            StartBasis::After
        },
    }
}

/// The fetches made after a change to `row`: the ones a limit window makes
/// around its bound, and random ones.
fn probes(rng: &mut Rng, model: &Model, row: &Row, deleted: &[Row]) -> Vec<Probe> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let order = rng.below(orders().len() as u64) as usize;
        let constraint = match rng.below(8) {
            0..=3 => Vec::new(),
            4 | 5 => vec![(GRP, row[GRP].clone())],
            6 => vec![(T, row[T].clone())],
            _ => vec![(GRP, Value::Int(rng.below(3) as i64)), (V, row[V].clone())],
        };
        let anchor = match rng.below(4) {
            0 | 1 => Some(row.clone()),
            2 if !deleted.is_empty() => Some(rng.pick(deleted).clone()),
            _ => {
                let n = model.len();
                (n > 0).then(|| {
                    model
                        .values()
                        .nth(rng.below(n as u64) as usize)
                        .cloned()
                        .expect("in range")
                })
            }
        };
        let start = match anchor {
            Some(a) if rng.chance(80) => Some(start_at(rng, &a)),
            _ => None,
        };
        let filter = rng.chance(10).then(|| Predicate::Compare {
            column: GRP,
            op: CompareOp::Eq,
            value: Value::Int(rng.below(3) as i64),
        });
        let stop_after = match rng.below(6) {
            0 => None,
            1 => Some(4),
            _ => Some(0),
        };
        out.push(Probe {
            order,
            constraint,
            start,
            reverse: rng.chance(50),
            filter,
            stop_after,
        });
    }
    out
}

/// The changes of one transaction, by pattern.
fn changes(rng: &mut Rng, model: &Model, pattern: u64, next_id: &mut i64) -> Vec<SourceChange> {
    let mut m = model.clone();
    let mut out = Vec::new();
    let mut push = |m: &mut Model, c: SourceChange| {
        if let Some(r) = c.old_row() {
            m.remove(&id_of(r));
        }
        if let Some(r) = c.new_row() {
            m.insert(id_of(r), r.clone());
        }
        out.push(c);
    };
    match pattern {
        // Everything deleted (ascending or descending), then written again
        // under the same keys and new ones.
        0 => {
            let ids: Vec<i64> = m.keys().copied().collect();
            let desc = rng.chance(50);
            let mut order = ids.clone();
            if desc {
                order.reverse();
            }
            for id in order {
                let r = m[&id].clone();
                push(&mut m, SourceChange::Remove(r));
            }
            for &id in &ids {
                if rng.chance(70) {
                    let r = item(rng, id);
                    push(&mut m, SourceChange::Add(r));
                }
            }
            for _ in 0..100 {
                *next_id += 1;
                let r = item(rng, *next_id);
                push(&mut m, SourceChange::Add(r));
            }
        }
        // Blocks deleted from the middle, rows added below, above and into
        // the holes.
        1 => {
            for _ in 0..4 {
                let ids: Vec<i64> = m.keys().copied().collect();
                if ids.len() < 10 {
                    break;
                }
                let from = rng.below(ids.len() as u64 - 5) as usize;
                let len = (rng.below(80) as usize + 5).min(ids.len() - from);
                for &id in &ids[from..from + len] {
                    let r = m[&id].clone();
                    push(&mut m, SourceChange::Remove(r));
                }
                for _ in 0..40 {
                    let id = match rng.below(3) {
                        0 => -(rng.below(1000) as i64) - 1,
                        1 => {
                            *next_id += 1;
                            *next_id
                        }
                        _ => {
                            ids[from]
                                + rng.below((ids[from + len - 1] - ids[from]) as u64 + 1) as i64
                        }
                    };
                    if !m.contains_key(&id) {
                        let r = item(rng, id);
                        push(&mut m, SourceChange::Add(r));
                    }
                }
            }
        }
        // Edits of the ordering columns across the whole table, in key
        // order, and rows deleted and added back in between.
        2 => {
            let ids: Vec<i64> = m.keys().copied().collect();
            for id in ids {
                let old = m[&id].clone();
                match rng.below(6) {
                    0 => push(&mut m, SourceChange::Remove(old)),
                    1 => {
                        push(&mut m, SourceChange::Remove(old));
                        let r = item(rng, id);
                        push(&mut m, SourceChange::Add(r));
                    }
                    _ => {
                        let mut cells = old.to_vec();
                        cells[V] = Value::Int(rng.below(60) as i64 - 10);
                        if rng.chance(30) {
                            cells[GRP] = Value::Int(rng.below(3) as i64);
                        }
                        push(
                            &mut m,
                            SourceChange::Edit {
                                old,
                                new: Row::new(cells),
                            },
                        );
                    }
                }
            }
        }
        // Many new rows above every key (the desc window's case), some
        // removed again.
        _ => {
            for _ in 0..600 {
                *next_id += 1;
                let r = item(rng, *next_id);
                push(&mut m, SourceChange::Add(r));
                if rng.chance(10)
                    && let Some(gone) = m.get(&(*next_id - rng.below(5) as i64)).cloned()
                {
                    push(&mut m, SourceChange::Remove(gone));
                }
            }
        }
    }
    out
}

#[test]
fn fetches_through_long_overlays_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let orders = orders();
    for seed in 1..=4u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut model = Model::new();
        let mut next_id = 0;
        for _ in 0..300 {
            next_id += 1 + rng.below(2) as i64;
            model.insert(next_id, item(&mut rng, next_id));
        }
        for (round, pattern) in [0, 1, 2, 3, 1, 0].into_iter().enumerate() {
            let mut src = snapshot(&dir, seed as usize * 100 + round, &model);
            for &(o, cols) in PREPARED {
                src.prepare(&orders[o], cols);
            }
            let mut deleted: Vec<Row> = Vec::new();
            for (n, change) in changes(&mut rng, &model, pattern, &mut next_id)
                .into_iter()
                .enumerate()
            {
                src.apply(&change).unwrap();
                if let Some(r) = change.old_row() {
                    model.remove(&id_of(r));
                    deleted.push(r.clone());
                }
                if let Some(r) = change.new_row() {
                    model.insert(id_of(r), r.clone());
                }
                let row = change
                    .new_row()
                    .or(change.old_row())
                    .expect("a row")
                    .clone();
                let what = format!("seed {seed}, round {round} (pattern {pattern}), change {n}");
                for p in probes(&mut rng, &model, &row, &deleted) {
                    check(&src, &model, &orders, &p, &what);
                }
                // Now and then a whole read of each order.
                if n % 97 == 0 {
                    for o in 0..orders.len() {
                        for reverse in [false, true] {
                            let p = Probe {
                                order: o,
                                constraint: Vec::new(),
                                start: None,
                                reverse,
                                filter: None,
                                stop_after: None,
                            };
                            check(&src, &model, &orders, &p, &what);
                        }
                    }
                }
                for (k, r) in model.range(id_of(&row) - 2..=id_of(&row) + 2) {
                    assert_eq!(
                        src.get(&[Value::Int(*k)]).unwrap().as_ref(),
                        Some(r),
                        "{what}"
                    );
                }
                assert_eq!(
                    src.get(&[row[ID].clone()]).unwrap().as_ref(),
                    model.get(&id_of(&row)),
                    "{what}"
                );
            }
        }
    }
}
