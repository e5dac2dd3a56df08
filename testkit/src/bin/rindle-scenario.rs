//! `rindle-scenario`: runs a JSON scenario and prints the query's result after
//! hydration and after each step, one JSON line each.
//!
//! ```text
//! rindle-scenario [--backend memory|memory-db|sqlite|redb] [--oracle] < scenario.json
//! ```
//!
//! The scenario is `{tables: [{name, columns: [{name, type}], primaryKey,
//! rows}], query: <AST>, steps: [[{table, op, row, old?}]]}`; each step is one
//! transaction. `--oracle` prints the SQLite oracle's fresh answers instead, so
//! an outside tool can compare the two. Bad input: a message naming the problem
//! on stderr and exit code 2.

#![allow(clippy::print_stdout)] // printing results is this tool's whole job

use std::io::Read;
use std::process::ExitCode;

use rindle_testkit::{
    MemoryDbSubject, MemorySubject, Model, Oracle, RedbSubject, Scenario, SqliteSubject, Subject,
};
use serde_json::Value as Json;

const USAGE: &str =
    "usage: rindle-scenario [--backend memory|memory-db|sqlite|redb] [--oracle] < scenario.json";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rindle-scenario: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut backend = "memory".to_string();
    let mut oracle = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--backend" => backend = args.next().ok_or(USAGE)?,
            "--oracle" => oracle = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("reading stdin: {e}"))?;
    let scenario: Scenario =
        serde_json::from_str(&input).map_err(|e| format!("bad scenario: {e}"))?;

    // Check every step against the rows before running anything, so both modes
    // refuse the same inputs.
    let mut model = Model::new(&scenario.tables).map_err(|e| format!("bad tables: {e}"))?;
    for (i, tx) in scenario.steps.iter().enumerate() {
        for (j, w) in tx.iter().enumerate() {
            model
                .apply(w)
                .map_err(|e| format!("step {}, write {}: {e}", i + 1, j + 1))?;
        }
    }

    let print = |j: &Json| println!("{}", serde_json::to_string(j).unwrap_or_default());
    if oracle {
        let mut o = Oracle::new(&scenario.tables).map_err(|e| format!("oracle: {e}"))?;
        let mut model = Model::new(&scenario.tables).map_err(|e| e.to_string())?;
        print(
            &o.query(&scenario.query)
                .map_err(|e| format!("query: {e}"))?,
        );
        for tx in &scenario.steps {
            for w in tx {
                let change = model.apply(w).map_err(|e| e.to_string())?;
                o.apply(&w.table, &change).map_err(|e| e.to_string())?;
            }
            print(
                &o.query(&scenario.query)
                    .map_err(|e| format!("query: {e}"))?,
            );
        }
        return Ok(());
    }
    let mut subject: Box<dyn Subject> = match backend.as_str() {
        "memory" => Box::new(MemorySubject::new()),
        "memory-db" => Box::new(MemoryDbSubject::new()),
        "sqlite" => Box::new(SqliteSubject::new()),
        "redb" => Box::new(RedbSubject::new()),
        other => {
            return Err(format!(
                "unknown backend `{other}` (available: memory, memory-db, sqlite, redb)"
            ));
        }
    };
    print(
        &subject
            .start(&scenario.tables, &scenario.query)
            .map_err(|e| format!("query: {e}"))?,
    );
    for (i, tx) in scenario.steps.iter().enumerate() {
        print(
            &subject
                .step(tx)
                .map_err(|e| format!("step {}: {e}", i + 1))?,
        );
    }
    Ok(())
}
