//! Every committed input runs through its target without panicking, the
//! seeds' names still say what the crates do with them (`ok-*` accepted,
//! `bad-*` refused, `edge-*` either), and the QUIC seeds are the bytes the
//! generator below writes (`RINDLE_FUZZ_WRITE_SEEDS=1` rewrites them).

use std::fs;
use std::path::{Path, PathBuf};

use rindle_core::protocol::{
    Batch, ClientMessage, ErrorMessage, Hello, Init, NBatch, NHello, Op, Progress, ProgressFrame,
    QueryErrorMessage, ServerMessage, Subscribe, SubscribeMode, TableShape, Unsubscribe,
    from_compact, normalized_fp, to_frame,
};
use rindle_core::{Ast, Engine, Json, QueryId, Row, Value};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 5] = [
    ("ast_json", super::ast_json),
    ("ws_frame", super::ws_frame),
    ("quic_frame", super::quic_frame),
    ("config", super::config),
    ("control_body", super::control_body),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// `regressions/OPEN`: `<target>/<file>` per line (then `#` and why) for
/// inputs that still crash, reported and awaiting a fix.
fn open_regressions() -> Vec<String> {
    fs::read_to_string(root().join("regressions/OPEN"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn every_seed_and_fixed_regression_runs() {
    let open = open_regressions();
    for (name, target) in TARGETS {
        let seeds = files(&root().join("seeds").join(name));
        assert!(!seeds.is_empty(), "no seeds for {name}");
        let regressions = files(&root().join("regressions").join(name));
        for path in seeds.iter().chain(&regressions) {
            let file = path.file_name().unwrap().to_string_lossy();
            if open.contains(&format!("{name}/{file}")) {
                continue;
            }
            target(&fs::read(path).unwrap());
        }
    }
}

/// What each target's crate makes of an input: accepted or refused.
fn accepts(target: &str, data: &[u8]) -> bool {
    match target {
        "ast_json" => serde_json::from_slice::<Json>(data)
            .ok()
            .and_then(|tree| Ast::from_json(&tree).ok())
            .is_some_and(|ast| {
                Engine::new(super::catalog())
                    .add_query(QueryId(1), &ast)
                    .is_ok()
            }),
        "ws_frame" => serde_json::from_slice::<ClientMessage>(data).is_ok(),
        "quic_frame" => {
            let mut rest = data;
            let mut frames = 0;
            while let Ok(Some((len, used))) = rindle_core::protocol::read_varint(rest) {
                let end = used + len as usize;
                if end > rest.len() {
                    return false;
                }
                let frame = &rest[used..end];
                if from_compact::<ClientMessage>(frame).is_err()
                    && from_compact::<ServerMessage>(frame).is_err()
                {
                    return false;
                }
                frames += 1;
                rest = &rest[end..];
            }
            frames > 0 && rest.is_empty()
        }
        "config" => std::str::from_utf8(data)
            .is_ok_and(|text| rindle_server::Config::from_json(text).is_ok()),
        "control_body" => data.split_first().is_some_and(|(&pick, body)| {
            let endpoint = super::ENDPOINTS[usize::from(pick) % super::ENDPOINTS.len()];
            rindle_server::check_request(endpoint, body).is_ok()
        }),
        other => panic!("unknown target {other}"),
    }
}

#[test]
fn seed_names_say_what_the_crates_do() {
    let mut wrong = Vec::new();
    for (name, _) in TARGETS {
        for path in files(&root().join("seeds").join(name)) {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let ok = accepts(name, &fs::read(&path).unwrap());
            let expected = if file.starts_with("ok-") {
                Some(true)
            } else if file.starts_with("bad-") {
                Some(false)
            } else {
                assert!(
                    file.starts_with("edge-"),
                    "{name}/{file}: name it ok-, bad- or edge-"
                );
                None
            };
            if expected.is_some_and(|e| e != ok) {
                wrong.push(format!("{name}/{file}: accepted = {ok}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "seeds whose name is wrong:\n{}",
        wrong.join("\n")
    );
}

fn client(name: &str, msgs: &[ClientMessage]) -> (String, Vec<u8>) {
    let mut bytes = Vec::new();
    for m in msgs {
        bytes.extend(to_frame(m).expect("a client message encodes"));
    }
    (name.to_string(), bytes)
}

fn server(name: &str, msgs: &[ServerMessage]) -> (String, Vec<u8>) {
    let mut bytes = Vec::new();
    for m in msgs {
        bytes.extend(to_frame(m).expect("a server message encodes"));
    }
    (name.to_string(), bytes)
}

/// The QUIC seeds: length-prefixed postcard frames made by `to_frame` from
/// valid messages, and a few slightly broken variants of them.
fn quic_seeds() -> Vec<(String, Vec<u8>)> {
    let init = ClientMessage::Init(Init {
        client_id: "my-client".into(),
    });
    let subscribe = |query_id, lease: &str| {
        ClientMessage::Subscribe(Subscribe {
            query_id,
            lease_token: lease.into(),
            mode: SubscribeMode::Normalized,
        })
    };
    let unsubscribe = ClientMessage::Unsubscribe(Unsubscribe { query_id: 1 });
    let lease = "3q2-7w8AAAAQkZ6mX1bK0g";
    let tables = vec![
        TableShape {
            name: "comment".into(),
            columns: vec!["id".into(), "issueID".into(), "body".into()],
            primary_key: vec![0],
        },
        TableShape {
            name: "issue".into(),
            columns: vec!["id".into(), "title".into()],
            primary_key: vec![0],
        },
    ];
    let fp = normalized_fp(&tables).expect("the seed tables are valid");
    let hello = ServerMessage::NHello(NHello {
        query_id: 1,
        boot_id: "b00t".into(),
        hello: Hello {
            epoch: 1,
            comparator_version: 2,
            tables,
            normalized_fp: fp,
        },
    });
    let row = |cells: Vec<Value>| Row::new(cells);
    let batch = ServerMessage::NBatch(NBatch {
        query_id: 1,
        batch: Batch {
            epoch: 1,
            seq: 0,
            normalized_fp: fp,
            ops: vec![
                Op::Add {
                    table: "issue".into(),
                    row: row(vec![Value::from(1), Value::from("crash on start")]),
                },
                Op::Edit {
                    table: "issue".into(),
                    old: row(vec![Value::from(2), Value::Null]),
                    new: row(vec![Value::from(2), Value::from("titled")]),
                },
                Op::Remove {
                    table: "comment".into(),
                    row: row(vec![Value::from(5), Value::from(1), Value::from(2.5)]),
                },
                Op::Add {
                    table: "comment".into(),
                    row: row(vec![Value::from(6), Value::from(true), Value::from(-0.0)]),
                },
            ],
            cv: 42,
        },
    });
    let query_error = ServerMessage::QueryError(QueryErrorMessage {
        query_id: 1,
        message: "the query faulted".into(),
        code: Some("faulted".into()),
        retryable: Some(true),
        retry_after_ms: Some(250),
    });
    let progress = ServerMessage::Progress(Progress {
        frame: ProgressFrame { cv_min: 42 },
    });
    let error = |query_id| {
        ServerMessage::Error(ErrorMessage {
            query_id,
            message: "send init before anything else".into(),
        })
    };

    let mut seeds = vec![
        client("ok-init", std::slice::from_ref(&init)),
        client("ok-subscribe", &[subscribe(1, lease)]),
        client("ok-subscribe-max-id", &[subscribe(u64::MAX, "")]),
        client("ok-unsubscribe", std::slice::from_ref(&unsubscribe)),
        client(
            "ok-control-stream",
            &[
                init.clone(),
                subscribe(1, lease),
                subscribe(2, "other-lease"),
                unsubscribe.clone(),
            ],
        ),
        server("ok-server-nhello", &[hello]),
        server("ok-server-nbatch", &[batch]),
        server(
            "ok-server-control-stream",
            &[query_error, progress, error(None)],
        ),
        server("ok-server-error-with-query", &[error(Some(3))]),
    ];
    let mut broken = |name: &str, from: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = seeds.iter().find(|(n, _)| n == from).unwrap().1.clone();
        edit(&mut bytes);
        seeds.push((name.to_string(), bytes));
    };
    broken("bad-subscribe-truncated", "ok-subscribe", &|b| {
        b.truncate(b.len() - 3)
    });
    broken("bad-subscribe-unknown-variant", "ok-subscribe", &|b| {
        b[1] = 9
    });
    broken("bad-subscribe-mode-1", "ok-subscribe", &|b| {
        let last = b.len() - 1;
        b[last] = 1;
    });
    broken("bad-init-trailing-byte", "ok-init", &|b| {
        b[0] += 1;
        b.push(0);
    });
    broken("bad-init-invalid-utf8", "ok-init", &|b| b[3] = 0xff);
    broken("bad-init-length-past-end", "ok-init", &|b| b[2] = 0x7f);
    broken("bad-overlong-prefix", "ok-unsubscribe", &|b| {
        b.splice(0..0, [0xff; 10]);
    });
    broken("bad-nbatch-row-tag", "ok-server-nbatch", &|b| {
        // the first op's first cell's kind tag, past query id, epoch, seq,
        // fingerprint and the op count
        if let Some(i) = b.windows(5).position(|w| w == b"issue") {
            b[i + 6] = 0x7f;
        }
    });
    seeds
}

#[test]
fn quic_seeds_are_current() {
    let dir = root().join("seeds/quic_frame");
    let write = std::env::var_os("RINDLE_FUZZ_WRITE_SEEDS").is_some();
    let seeds = quic_seeds();
    for (name, bytes) in &seeds {
        let path = dir.join(format!("{name}.bin"));
        if write {
            fs::write(&path, bytes).unwrap();
        } else {
            let committed = fs::read(&path).unwrap_or_default();
            assert_eq!(
                &committed,
                bytes,
                "{} is stale: RINDLE_FUZZ_WRITE_SEEDS=1 cargo test rewrites it",
                path.display()
            );
        }
    }
    // Hand-made seeds (not .bin) may sit beside the generated ones.
    let generated = files(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .count();
    assert_eq!(
        generated,
        seeds.len(),
        "a .bin seed the generator does not make"
    );
}
