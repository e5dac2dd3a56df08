//! Measures what the crate docs' design argument rests on: loading a table from
//! redb, and reading it from redb (B-tree walk + decode) versus from the
//! in-memory ordered indexes the sources keep.
//!
//! `cargo run --release -p rindle-redb --example measure`

#![allow(clippy::print_stdout)] // printing the figures is this tool's job

use std::ops::ControlFlow;
use std::time::Instant;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use rindle_core::{
    Column, ColumnType, Direction, FetchRequest, MemorySource, Row, SortOrder, Source, TableSchema,
    Value,
};
use rindle_redb::format::{decode_row, encode_key};

const N: i64 = 50_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = TableSchema::new(
        "comment",
        vec![
            Column::new("id", ColumnType::Integer),
            Column::new("issueID", ColumnType::Integer).not_null(),
            Column::new("body", ColumnType::Text).not_null(),
            Column::new("creatorID", ColumnType::Integer).not_null(),
        ],
        &["id"],
    )?;
    let row = |i: i64| {
        Row::new(vec![
            Value::Int(i),
            Value::Int(i % 10_000),
            Value::text(&format!("comment {i} on issue {}", i % 10_000)),
            Value::Int(i % 1_000),
        ])
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("m.redb");
    {
        let db = rindle_redb::Db::open(&path)?;
        db.register_table(schema.clone())?;
        let t = Instant::now();
        let mut tx = db.write()?;
        for i in 0..N {
            tx.insert("comment", row(i))?;
        }
        tx.commit()?;
        println!("write {N} rows in one transaction: {:?}", t.elapsed());
    }
    let t = Instant::now();
    let db = rindle_redb::Db::open(&path)?;
    println!("reopen and load {N} rows into memory: {:?}", t.elapsed());
    drop(db);

    // Point reads by key.
    let raw = redb::Database::open(&path)?;
    let read = raw.begin_read()?;
    let table = read.open_table(TableDefinition::<&[u8], &[u8]>::new("rows:comment"))?;
    let keys: Vec<Vec<u8>> = (0..10_000)
        .map(|i| encode_key(&schema, &row((i * 7919) % N)))
        .collect();
    let t = Instant::now();
    for k in &keys {
        let v = table.get(k.as_slice())?.expect("present");
        std::hint::black_box(decode_row(v.value(), 4)?);
    }
    let redb_get = t.elapsed() / 10_000;
    let mut mem = MemorySource::new(schema.clone());
    for i in 0..N {
        mem.insert(row(i))?;
    }
    let t = Instant::now();
    for i in 0..10_000 {
        std::hint::black_box(mem.get(&[Value::Int((i * 7919) % N)])?);
    }
    let mem_get = t.elapsed() / 10_000;
    println!("point read: redb + decode {redb_get:?}, memory index {mem_get:?}");

    // The engine's typical incremental read: the first rows of one partition
    // in a non-key order (comments of an issue, newest first).
    let order = SortOrder::new(vec![(0, Direction::Desc)]).completed(&schema);
    mem.prepare(&order, &[1]);
    let t = Instant::now();
    for i in 0..10_000 {
        let c = [(1usize, Value::Int(i))];
        let req = FetchRequest {
            order: &order,
            constraint: &c,
            start: None,
            reverse: false,
            filter: None,
        };
        let mut n = 0;
        mem.fetch(&req, &mut |r| {
            std::hint::black_box(r);
            n += 1;
            if n == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
    }
    let mem_scan = t.elapsed() / 10_000;
    // Without a stored secondary index, redb can only answer it by a scan.
    let t = Instant::now();
    for i in 0..20 {
        let mut hits: Vec<Row> = Vec::new();
        for item in table.iter()? {
            let (_, v) = item?;
            let r = decode_row(v.value(), 4)?;
            if r[1] == Value::Int(i) {
                hits.push(r);
            }
        }
        std::hint::black_box(hits);
    }
    let redb_scan = t.elapsed() / 20;
    println!(
        "top-3 comments of one issue: memory index {mem_scan:?}, redb full scan + decode {redb_scan:?}"
    );
    Ok(())
}
