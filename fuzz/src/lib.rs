//! The bodies of Rindle's fuzz targets, one function per target.
//!
//! Each `fuzz_targets/<name>.rs` is a one-line libFuzzer entry point that
//! calls the function of the same name here, so the unit tests below can run
//! every committed seed and regression input through exactly the code the
//! fuzzer runs. A target fails only by panicking: every `Err` the crates
//! return is an acceptable answer to a bad input. A few targets also check a
//! round trip (decode, encode, decode gives the same value); a broken round
//! trip panics on purpose, since it is a real bug (query keys, re-framing).

use rindle_core::protocol::{
    ClientMessage, NormalizeFold, ServerMessage, footprint, from_compact, read_varint, to_compact,
};
use rindle_core::{
    Ast, Column, ColumnType, Engine, Json, MemoryCatalog, QueryEvent, QueryId, ResultJson, Row,
    SourceChange, TableSchema, Value, View,
};

/// The control-plane endpoints `control_body` picks from with its first byte.
pub const ENDPOINTS: [&str; 6] = [
    "/materialize",
    "/dematerialize",
    "/execute-sql-txn",
    "/reject-mutation",
    "/execute-sql-read",
    "/query",
];

/// The longest QUIC frame body the `quic_frame` reader accepts (the real
/// limit is the plane's configured frame size; inputs are far smaller).
const MAX_FRAME: u64 = 1 << 20;

fn row(cells: Vec<Value>) -> Row {
    Row::new(cells)
}

fn int(i: i64) -> Value {
    Value::from(i)
}

fn text(s: &str) -> Value {
    Value::from(s)
}

/// The fixed catalog `ast_json` builds against: the issue tracker's three
/// tables with a few rows each (ties, nulls, an orphan comment, non-ASCII
/// text), so hydration has something to join, order, page and aggregate.
pub fn catalog() -> MemoryCatalog {
    let table = |name: &str, columns: Vec<Column>| {
        TableSchema::new(name, columns, &["id"]).expect("the fixture's schemas are valid")
    };
    let mut c = MemoryCatalog::new();
    for schema in [
        table(
            "issue",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("title", ColumnType::Text),
                Column::new("open", ColumnType::Boolean),
                Column::new("created", ColumnType::Integer),
                Column::new("ownerID", ColumnType::Integer),
            ],
        ),
        table(
            "comment",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("issueID", ColumnType::Integer),
                Column::new("body", ColumnType::Text),
            ],
        ),
        table(
            "user",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("name", ColumnType::Text),
            ],
        ),
    ] {
        c.add_table(schema)
            .expect("the fixture's tables are distinct");
    }
    let issue = |id, title: Value, open: bool, created, owner: Value| {
        row(vec![int(id), title, Value::from(open), int(created), owner])
    };
    let rows = [
        ("issue", issue(1, text("crash on start"), true, 10, int(1))),
        ("issue", issue(2, text("slow query"), false, 20, int(2))),
        ("issue", issue(3, Value::Null, true, 30, int(1))),
        ("issue", issue(4, text("docs"), true, 30, int(3))),
        (
            "issue",
            issue(5, text("édition ünïcode"), false, 50, Value::Null),
        ),
        ("issue", issue(6, text("LIKE 100%_"), true, -5, int(2))),
        ("comment", row(vec![int(1), int(1), text("me too")])),
        ("comment", row(vec![int(2), int(1), text("fixed?")])),
        ("comment", row(vec![int(3), int(2), text("repro attached")])),
        ("comment", row(vec![int(4), int(4), Value::Null])),
        ("comment", row(vec![int(5), int(99), text("orphan")])),
        ("comment", row(vec![int(6), int(3), text("+1")])),
        ("user", row(vec![int(1), text("ada")])),
        ("user", row(vec![int(2), text("bob")])),
        ("user", row(vec![int(3), Value::Null])),
    ];
    for (t, r) in rows {
        c.insert(t, r).expect("the fixture's rows fit their tables");
    }
    c
}

/// The writes `ast_json` pushes after hydration: adds, removes, an edit of a
/// filtered and ordered column, an edit of a join column, a key change.
fn writes() -> Vec<(&'static str, SourceChange)> {
    let issue = |id, title: &str, open: bool, created, owner| {
        row(vec![
            int(id),
            text(title),
            Value::from(open),
            int(created),
            int(owner),
        ])
    };
    vec![
        ("issue", SourceChange::Add(issue(7, "new", true, 70, 2))),
        (
            "issue",
            SourceChange::Edit {
                old: issue(2, "slow query", false, 20, 2),
                new: issue(2, "slow query", true, 25, 2),
            },
        ),
        (
            "comment",
            SourceChange::Add(row(vec![int(7), int(7), text("first")])),
        ),
        (
            "comment",
            SourceChange::Remove(row(vec![int(1), int(1), text("me too")])),
        ),
        (
            "user",
            SourceChange::Edit {
                old: row(vec![int(1), text("ada")]),
                new: row(vec![int(1), text("ada l.")]),
            },
        ),
        (
            "issue",
            SourceChange::Edit {
                old: issue(4, "docs", true, 30, 3),
                new: issue(8, "docs", true, 30, 3),
            },
        ),
        (
            "issue",
            SourceChange::Edit {
                old: issue(6, "LIKE 100%_", true, -5, 2),
                new: issue(6, "LIKE 100%_", true, -5, 1),
            },
        ),
        (
            "issue",
            SourceChange::Remove(issue(1, "crash on start", true, 10, 1)),
        ),
    ]
}

/// `ast_json`: the wire JSON of a query, read as the engine reads it, then
/// lowered and hydrated against [`catalog`], kept live through [`writes`],
/// and also run as its normalized subscription's footprint query through
/// the normalize fold (what `/materialize` plus a subscriber do).
pub fn ast_json(data: &[u8]) {
    let Ok(tree) = serde_json::from_slice::<Json>(data) else {
        return;
    };
    let Ok(ast) = Ast::from_json(&tree) else {
        return;
    };
    // The wire form written back reads as the same query (the daemon keys
    // materializations by it). Floats may move by an ulp: serde_json's
    // default float parser does not round correctly (see the README).
    let wire = serde_json::to_string(&ast).expect("an AST serializes");
    let tree = serde_json::from_str::<Json>(&wire).expect("a serialized AST is JSON");
    let reread = Ast::from_json(&tree).expect("a serialized AST reads back");
    let rewire = serde_json::to_string(&reread).expect("an AST serializes");
    let retree = serde_json::from_str::<Json>(&rewire).expect("a serialized AST is JSON");
    assert!(
        same_json(&tree, &retree),
        "the AST changed through its wire JSON: {wire} became {rewire}"
    );

    let mut engine = Engine::new(catalog());
    let query = QueryId(1);
    let Ok(nodes) = engine.add_query(query, &ast) else {
        return;
    };
    let format = engine
        .format(query)
        .expect("an added query has a format")
        .clone();
    let _ = serde_json::to_vec(&ResultJson::new(&format, &nodes));
    let mut view = View::hydrated(format, &nodes).ok();

    let fp_query = QueryId(2);
    let mut fold = footprint(&ast).ok().and_then(|fp| {
        let nodes = engine.add_query(fp_query, &fp.query).ok()?;
        let mut fold = NormalizeFold::new(engine.format(fp_query)?.clone()).ok()?;
        fold.hydrate(&nodes).ok()?;
        Some(fold)
    });

    for (table, change) in writes() {
        if engine.push(table, change).is_err() {
            continue;
        }
        for event in engine.drain() {
            let QueryEvent::Changed { query: id, changes } = event else {
                continue;
            };
            if id == query
                && let Some(v) = view.as_mut()
                && v.apply_all(&changes).is_err()
            {
                view = None;
            }
            if id == fp_query
                && let Some(f) = fold.as_mut()
                && f.apply(&changes).is_err()
            {
                fold = None;
            }
        }
    }
    if let Some(v) = view.as_mut() {
        v.flush();
        let nodes = v.to_nodes();
        let _ = serde_json::to_vec(&ResultJson::new(v.format(), &nodes));
    }
    if let Some(f) = fold {
        let _ = f.snapshot();
    }
    let _ = engine.read(query);
}

/// Equal trees, but for floats a couple of ulps apart.
fn same_json(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Float(x), Json::Float(y)) => x.to_bits().abs_diff(y.to_bits()) <= 2,
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k, x), (l, y))| k == l && same_json(x, y))
        }
        _ => a == b,
    }
}

/// Checks that a decoded client message survives both encodings.
fn client_round_trip(msg: &ClientMessage) {
    if *msg == ClientMessage::Unknown {
        return;
    }
    let text = serde_json::to_string(msg).expect("a known client message encodes as JSON");
    let back: ClientMessage = serde_json::from_str(&text).expect("its JSON decodes");
    assert_eq!(&back, msg, "JSON round trip of {text}");
    let bytes = to_compact(msg).expect("a known client message encodes compactly");
    let back: ClientMessage = from_compact(&bytes).expect("its compact form decodes");
    assert_eq!(&back, msg, "compact round trip of {bytes:?}");
}

/// `ws_frame`: a WebSocket text frame as the server decodes it.
pub fn ws_frame(data: &[u8]) {
    if let Ok(msg) = serde_json::from_slice::<ClientMessage>(data) {
        client_round_trip(&msg);
    }
}

/// `quic_frame`: the bytes as one compact message, then as a QUIC control
/// stream: varint length prefixes, each followed by a postcard message (read
/// as a client message, as the server does, and as a server message, as the
/// client does).
pub fn quic_frame(data: &[u8]) {
    if let Ok(msg) = from_compact::<ClientMessage>(data) {
        client_round_trip(&msg);
    }
    let mut rest = data;
    while let Ok(Some((len, used))) = read_varint(rest) {
        assert!((1..=10).contains(&used), "a varint of {used} bytes");
        if len > MAX_FRAME {
            return;
        }
        let Some(end) = used.checked_add(len as usize).filter(|&e| e <= rest.len()) else {
            return;
        };
        let frame = &rest[used..end];
        if let Ok(msg) = from_compact::<ClientMessage>(frame) {
            client_round_trip(&msg);
        }
        if let Ok(msg) = from_compact::<ServerMessage>(frame) {
            let _ = to_compact(&msg);
        }
        rest = &rest[end..];
    }
}

/// `config`: `rindled`'s configuration file.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rindle_server::Config::from_json(text);
    }
}

/// `control_body`: the first byte picks the endpoint, the rest is its body.
pub fn control_body(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let endpoint = ENDPOINTS[usize::from(pick) % ENDPOINTS.len()];
    let _ = rindle_server::check_request(endpoint, body);
}

#[cfg(test)]
mod tests;
