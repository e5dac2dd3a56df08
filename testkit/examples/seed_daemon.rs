//! Seeds a running `rindled` (configured with `examples/issues.json`) with
//! the issue-tracker dataset through its control plane, so every row goes
//! through `/execute-sql-txn` and live queries see it like any other write.
//!
//! `cargo run -p rindle-testkit --example seed_daemon -- [small|medium|large|xl] [http://127.0.0.1:7600] [token]`

use std::io::{Read, Write};
use std::net::TcpStream;

use rindle_testkit::{IssueTracker, Scale};
use serde_json::{Value as Json, json};

/// Rows per transaction.
const BATCH: usize = 500;

fn post(addr: &str, token: Option<&str>, path: &str, body: &Json) -> Result<Json, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("cannot reach {addr}: {e}"))?;
    let body = body.to_string();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, rest) = raw.split_once("\r\n\r\n").ok_or("a malformed response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{path}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    serde_json::from_str(rest).map_err(|e| format!("{e}: {rest}"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scale: Scale = args
        .next()
        .unwrap_or_else(|| "small".into())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7600".into());
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let token = args.next();
    let data = IssueTracker::new(scale);
    let mut last = json!(null);
    for schema in IssueTracker::schemas() {
        let name = schema.name().to_string();
        let marks = vec!["?"; schema.columns().len()].join(", ");
        let sql = format!("INSERT INTO \"{name}\" VALUES ({marks})");
        let rows: Vec<_> = data.rows(&name).collect();
        for chunk in rows.chunks(BATCH) {
            let statements: Vec<Json> = chunk
                .iter()
                .map(|row| {
                    let params: Vec<Json> = row
                        .iter()
                        .map(|v| serde_json::to_value(v).unwrap_or(Json::Null))
                        .collect();
                    json!({ "sql": sql, "params": params })
                })
                .collect();
            last = post(
                &addr,
                token.as_deref(),
                "/execute-sql-txn",
                &json!({ "statements": statements }),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        eprintln!("{name}: {} rows", rows.len());
    }
    eprintln!("seeded {} at cv {}", scale.name(), last["cv"]);
}
