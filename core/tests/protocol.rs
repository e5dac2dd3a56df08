//! The protocol's pure parts: wire forms, fingerprints, sequencing, the fold.

use rindle_core::protocol::*;
use rindle_core::*;
use serde_json::json;

fn shape(name: &str, columns: &[&str], pk: &[u32]) -> TableShape {
    TableShape {
        name: name.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        primary_key: pk.to_vec(),
    }
}

#[test]
fn fingerprints_match_the_protocol_vectors() {
    let issue = shape("issue", &["id", "title"], &[0]);
    let mutations = shape(
        "_rindle_client_mutations",
        &["client_id", "last_mutation_id"],
        &[0],
    );
    let comment = shape("comment", &["id", "issueID", "body"], &[0]);
    let fp = |t: &[TableShape]| normalized_fp(t).unwrap().to_string();
    assert_eq!(fp(std::slice::from_ref(&issue)), "38961d9f6348135c");
    assert_eq!(fp(&[mutations]), "ff539a32a611f1b5");
    assert_eq!(fp(&[comment.clone(), issue.clone()]), "d149cef5e6c6d8f2");
    // Sorted by name whatever the order given.
    assert_eq!(fp(&[issue, comment]), "d149cef5e6c6d8f2");
    // A key index past the columns is refused, not a panic.
    assert!(normalized_fp(&[shape("t", &["a"], &[3])]).is_err());
    assert_eq!(
        Fingerprint::parse("d149cef5e6c6d8f2").unwrap().0,
        0xd149cef5e6c6d8f2
    );
    assert_eq!(Fingerprint::parse("d149cef5e6c6d8f"), None);
    assert_eq!(Fingerprint::parse("zz49cef5e6c6d8f2"), None);
}

fn hello_for(tables: Vec<TableShape>, epoch: u64) -> (Publisher, NHello) {
    Publisher::new(9, epoch, "boot-1", tables).unwrap()
}

#[test]
fn server_messages_have_the_exact_json_wire() {
    let (mut p, hello) = hello_for(vec![shape("issue", &["id", "title"], &[0])], 1);
    assert_eq!(
        serde_json::to_value(ServerMessage::NHello(hello)).unwrap(),
        json!({"t":"nhello","queryId":9,"bootId":"boot-1","hello":{"epoch":1,"comparatorVersion":2,
            "tables":[{"name":"issue","columns":["id","title"],"primaryKey":[0]}],
            "normalizedFp":"38961d9f6348135c"}})
    );
    let issue: std::sync::Arc<str> = "issue".into();
    let snap = p
        .snapshot(
            vec![Op::Add {
                table: issue.clone(),
                row: row![1, "crash", Value::Null],
            }],
            4,
        )
        .unwrap();
    assert_eq!(
        serde_json::to_value(ServerMessage::NBatch(snap)).unwrap(),
        json!({"t":"nbatch","queryId":9,"batch":{"epoch":1,"seq":0,"normalizedFp":"38961d9f6348135c",
            "ops":[{"table":"issue","op":"add","row":[1,"crash",null]}],"cv":4}})
    );
    let edit = p
        .batch(
            vec![
                Op::Edit {
                    table: issue.clone(),
                    old: row![1, "crash"],
                    new: row![1, 2.5],
                },
                Op::Remove {
                    table: issue,
                    row: row![2, true],
                },
            ],
            5,
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(ServerMessage::NBatch(edit)).unwrap()["batch"]["ops"],
        json!([{"table":"issue","op":"edit","old":[1,"crash"],"new":[1,2.5]},
               {"table":"issue","op":"remove","row":[2,true]}])
    );
    let qe = ServerMessage::QueryError(QueryErrorMessage {
        query_id: 3,
        message: "lease expired".into(),
        code: None,
        retryable: None,
        retry_after_ms: None,
    });
    assert_eq!(
        serde_json::to_value(&qe).unwrap(),
        json!({"t":"queryError","queryId":3,"message":"lease expired"})
    );
    let shed = ServerMessage::QueryError(QueryErrorMessage {
        query_id: 3,
        message: "overloaded".into(),
        code: Some("shed".into()),
        retryable: Some(true),
        retry_after_ms: Some(250),
    });
    assert_eq!(
        serde_json::to_value(&shed).unwrap(),
        json!({"t":"queryError","queryId":3,"message":"overloaded","code":"shed","retryable":true,"retryAfterMs":250})
    );
    assert_eq!(
        serde_json::to_value(ServerMessage::Progress(Progress {
            frame: ProgressFrame { cv_min: 12 }
        }))
        .unwrap(),
        json!({"t":"progress","frame":{"cvMin":12}})
    );
    assert_eq!(
        serde_json::to_value(ServerMessage::Error(ErrorMessage {
            query_id: None,
            message: "send init first".into()
        }))
        .unwrap(),
        json!({"t":"error","message":"send init first"})
    );
    // Every message decodes back to itself, from JSON and from postcard.
    for msg in [qe, shed] {
        let text = serde_json::to_string(&msg).unwrap();
        assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), msg);
        assert_eq!(
            from_compact::<ServerMessage>(&to_compact(&msg).unwrap()).unwrap(),
            msg
        );
    }
}

#[test]
fn client_messages_decode_from_the_wire_in_any_key_order() {
    let m: ClientMessage =
        serde_json::from_str(r#"{"clientID":"c1","t":"init","extra":[1,{"x":2}]}"#).unwrap();
    assert_eq!(
        m,
        ClientMessage::Init(Init {
            client_id: "c1".into()
        })
    );
    let m: ClientMessage = serde_json::from_str(
        r#"{"mode":"normalized","leaseToken":"L","queryId":4,"t":"subscribe"}"#,
    )
    .unwrap();
    assert_eq!(
        m,
        ClientMessage::Subscribe(Subscribe {
            query_id: 4,
            lease_token: "L".into(),
            mode: SubscribeMode::Normalized
        })
    );
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({"t":"subscribe","queryId":4,"leaseToken":"L","mode":"normalized"})
    );
    let m: ClientMessage = serde_json::from_str(r#"{"t":"unsubscribe","queryId":4}"#).unwrap();
    assert_eq!(m, ClientMessage::Unsubscribe(Unsubscribe { query_id: 4 }));
    // An unknown type is its own value, so a server can answer it.
    let m: ClientMessage = serde_json::from_str(r#"{"t":"ping","n":1}"#).unwrap();
    assert_eq!(m, ClientMessage::Unknown);
    assert!(serde_json::to_string(&m).is_err());
    let m: ServerMessage = serde_json::from_str(r#"{"t":"future","frame":3}"#).unwrap();
    assert_eq!(m, ServerMessage::Unknown);
    // Malformed: each an error, none a panic.
    for bad in [
        "",
        "{",
        "[]",
        "5",
        r#"{"queryId":1}"#,
        r#"{"t":"subscribe","queryId":"one","leaseToken":"L"}"#,
        r#"{"t":"subscribe","queryId":-1,"leaseToken":"L"}"#,
        r#"{"t":"subscribe","queryId":1.5,"leaseToken":"L"}"#,
        r#"{"t":"subscribe","queryId":1}"#,
        r#"{"t":"subscribe","queryId":1,"leaseToken":"L","mode":"denormalized"}"#,
        r#"{"t":"init"}"#,
        r#"{"t":7}"#,
    ] {
        assert!(serde_json::from_str::<ClientMessage>(bad).is_err(), "{bad}");
    }
}

#[test]
fn compact_encoding_round_trips_every_value_kind_and_refuses_garbage() {
    let (mut p, hello) = hello_for(vec![shape("t", &["a", "b", "c", "d", "e"], &[0])], 3);
    let batch = p
        .snapshot(
            vec![Op::Add {
                table: "t".into(),
                row: row![Value::Null, true, -7, -0.0, "ünï"],
            }],
            1,
        )
        .unwrap();
    for msg in [ServerMessage::NHello(hello), ServerMessage::NBatch(batch)] {
        let bytes = to_compact(&msg).unwrap();
        assert_eq!(from_compact::<ServerMessage>(&bytes).unwrap(), msg);
        let framed = to_frame(&msg).unwrap();
        let (len, used) = read_varint(&framed).unwrap().unwrap();
        assert_eq!(len as usize, bytes.len());
        assert_eq!(&framed[used..], &bytes[..]);
        // Truncated or padded bytes are refused.
        assert!(from_compact::<ServerMessage>(&bytes[..bytes.len() - 1]).is_err());
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(from_compact::<ServerMessage>(&padded).is_err());
    }
    assert!(from_compact::<ClientMessage>(&[0xff, 0xff, 0xff]).is_err());
    assert!(from_compact::<ClientMessage>(&[]).is_err());
}

#[test]
fn varints_are_leb128() {
    for n in [0u64, 1, 127, 128, 300, 16_384, u32::MAX as u64, u64::MAX] {
        let mut out = Vec::new();
        write_varint(n, &mut out);
        assert_eq!(read_varint(&out).unwrap(), Some((n, out.len())));
        assert_eq!(read_varint(&out[..out.len() - 1]).unwrap(), None);
    }
    let mut out = Vec::new();
    write_varint(300, &mut out);
    assert_eq!(out, [0xac, 0x02]);
    assert!(read_varint(&[0xff; 11]).is_err());
    assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).is_err());
}

fn add(table: &str, row: Row) -> Op {
    Op::Add {
        table: table.into(),
        row,
    }
}

#[test]
fn publisher_and_subscriber_sequence_epochs_seqs_gaps_and_duplicates() {
    let tables = vec![shape("issue", &["id", "title"], &[0])];
    let mut epochs = Epochs::new();
    assert_eq!(epochs.next(9), 1);
    let (mut p, hello) = hello_for(tables.clone(), 1);
    assert!(
        p.batch(vec![], 1).is_err(),
        "an increment before the snapshot"
    );
    let snap = p.snapshot(vec![], 0).unwrap();
    assert_eq!(snap.batch.seq, 0, "the snapshot is sent even when empty");
    assert!(p.snapshot(vec![], 0).is_err());
    assert_eq!(
        p.batch(vec![], 1).unwrap(),
        None,
        "no ops: no frame, no seq"
    );
    let b1 = p
        .batch(vec![add("issue", row![1, "a"])], 2)
        .unwrap()
        .unwrap();
    let b2 = p
        .batch(vec![add("issue", row![2, "b"])], 3)
        .unwrap()
        .unwrap();
    let b3 = p
        .batch(vec![add("issue", row![3, "c"])], 4)
        .unwrap()
        .unwrap();
    assert_eq!((b1.batch.seq, b2.batch.seq, b3.batch.seq), (1, 2, 3));

    let mut s = Subscriber::new();
    assert!(s.on_batch(&b1.batch).is_err(), "a batch before its hello");
    assert_eq!(s.on_hello(&hello.hello).unwrap(), Verdict::Hello);
    assert_eq!(
        s.on_batch(&b1.batch).unwrap(),
        Verdict::Gap {
            expected: 0,
            got: 1
        },
        "before the snapshot only seq 0 is accepted"
    );
    assert_eq!(s.on_batch(&snap.batch).unwrap(), Verdict::Snapshot);
    assert_eq!(s.on_batch(&b1.batch).unwrap(), Verdict::Applied);
    assert_eq!(s.on_batch(&b1.batch).unwrap(), Verdict::Duplicate);
    assert_eq!(
        s.on_batch(&b3.batch).unwrap(),
        Verdict::Gap {
            expected: 2,
            got: 3
        }
    );
    assert_eq!(s.replica().len(), 1);
    assert_eq!(s.cv(), Some(2));

    // Re-subscribe: a new epoch; frames of the old one are stale.
    s.resubscribe();
    assert_eq!(epochs.next(9), 2);
    assert_eq!(s.on_batch(&b2.batch).unwrap(), Verdict::Stale);
    assert_eq!(s.on_hello(&hello.hello).unwrap(), Verdict::Stale);
    let (mut p2, hello2) = hello_for(tables.clone(), 2);
    assert_eq!(s.on_hello(&hello2.hello).unwrap(), Verdict::Hello);
    assert_eq!(s.replica().len(), 1, "old copies stay until the snapshot");
    let snap2 = p2
        .snapshot(
            vec![
                add("issue", row![1, "a"]),
                add("issue", row![2, "b"]),
                add("issue", row![3, "c"]),
            ],
            4,
        )
        .unwrap();
    assert_eq!(s.on_batch(&b3.batch).unwrap(), Verdict::Stale);
    assert_eq!(s.on_batch(&snap2.batch).unwrap(), Verdict::Snapshot);
    assert_eq!(s.replica().len(), 3);
    assert!(s.is_live());
}

#[test]
fn subscriber_refuses_bad_hellos_and_inconsistent_ops_without_changing_copies() {
    let tables = vec![shape("issue", &["id", "title"], &[0])];
    let (mut p, hello) = hello_for(tables.clone(), 1);
    let mut bad = hello.hello.clone();
    bad.comparator_version = 1;
    let mut s = Subscriber::new();
    assert_eq!(
        s.on_hello(&bad),
        Err(ProtocolError::ComparatorVersion { got: 1 })
    );
    let mut bad = hello.hello.clone();
    bad.normalized_fp = Fingerprint(1);
    assert!(matches!(
        s.on_hello(&bad),
        Err(ProtocolError::FingerprintMismatch { .. })
    ));
    s.on_hello(&hello.hello).unwrap();
    let snap = p
        .snapshot(
            vec![add("issue", row![1, "a"]), add("issue", row![2, "b"])],
            1,
        )
        .unwrap();
    s.on_batch(&snap.batch).unwrap();
    for ops in [
        // The first op is fine; the second does not fit: nothing applies.
        vec![add("issue", row![3, "c"]), add("issue", row![1, "again"])],
        vec![
            add("issue", row![3, "c"]),
            Op::Remove {
                table: "issue".into(),
                row: row![9, "x"],
            },
        ],
        vec![Op::Remove {
            table: "issue".into(),
            row: row![1, "not as held"],
        }],
        vec![Op::Edit {
            table: "issue".into(),
            old: row![1, "a"],
            new: row![2, "onto 2"],
        }],
        vec![add("issue", row![4])],
        vec![add("nope", row![4, "d"])],
    ] {
        let batch = Batch {
            epoch: 1,
            seq: 1,
            normalized_fp: p.fingerprint(),
            ops: ops.clone(),
            cv: 2,
        };
        assert!(s.on_batch(&batch).is_err(), "{ops:?}");
        assert_eq!(s.replica().len(), 2, "{ops:?}");
        assert_eq!(
            s.replica().get("issue", &[Value::Int(1)]),
            Some(&row![1, "a"])
        );
    }
    // A batch whose fingerprint is not the hello's is refused.
    let mut wrong = p
        .batch(vec![add("issue", row![3, "c"])], 2)
        .unwrap()
        .unwrap()
        .batch;
    wrong.normalized_fp = Fingerprint(0);
    assert!(matches!(
        s.on_batch(&wrong),
        Err(ProtocolError::FingerprintMismatch { .. })
    ));
    wrong.normalized_fp = p.fingerprint();
    assert_eq!(s.on_batch(&wrong).unwrap(), Verdict::Applied);
}

fn tracker() -> MemoryCatalog {
    let mut c = MemoryCatalog::new();
    c.add_table(
        TableSchema::new(
            "user",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("name", ColumnType::Text),
            ],
            &["id"],
        )
        .unwrap(),
    )
    .unwrap();
    c.add_table(
        TableSchema::new(
            "comment",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("issueID", ColumnType::Integer),
                Column::new("authorID", ColumnType::Integer),
            ],
            &["id"],
        )
        .unwrap(),
    )
    .unwrap();
    c.insert("user", row![1, "ann"]).unwrap();
    c.insert("user", row![2, "bob"]).unwrap();
    c.insert("comment", row![10, 1, 1]).unwrap();
    c.insert("comment", row![11, 1, 1]).unwrap();
    c
}

#[test]
fn a_row_reached_by_several_paths_is_added_once_and_removed_with_its_last_path() {
    // Comments of issue 1, each with its author: ann is reached twice.
    let ast: Ast = serde_json::from_value(json!({
        "table": "comment", "select": ["id"],
        "where": {"type":"simple","op":"=","left":{"type":"column","name":"issueID"},
                  "right":{"type":"literal","value":1}},
        "related": [{"correlation":{"parentField":["authorID"],"childField":["id"]},
                     "subquery":{"table":"user","alias":"author","one":true}}]
    }))
    .unwrap();
    let fp = footprint(&ast).unwrap();
    assert_eq!(fp.tables, ["comment", "user"]);
    assert_eq!(fp.query.select, None, "copies hold whole rows");
    let mut engine = Engine::new(tracker());
    let nodes = engine.add_query(QueryId(1), &fp.query).unwrap();
    let mut fold = NormalizeFold::new(engine.format(QueryId(1)).unwrap().clone()).unwrap();
    let snapshot = fold.hydrate(&nodes).unwrap();
    let users: Vec<_> = snapshot.iter().filter(|o| o.table() == "user").collect();
    assert_eq!(users.len(), 1, "ann once: {snapshot:?}");
    assert_eq!(fold.snapshot().len(), 3);

    let mut step = |change: SourceChange, table: &str| -> Vec<Op> {
        engine.push(table, change).unwrap();
        let mut ops = Vec::new();
        for e in engine.drain() {
            if let QueryEvent::Changed { changes, .. } = e {
                ops.extend(fold.apply(&changes).unwrap());
            }
        }
        ops
    };
    // One of ann's two comments goes: only the comment is removed.
    assert_eq!(
        step(SourceChange::Remove(row![10, 1, 1]), "comment"),
        [Op::Remove {
            table: "comment".into(),
            row: row![10, 1, 1]
        }]
    );
    // ann is renamed: one edit, though she is in the result once per comment.
    assert_eq!(
        step(
            SourceChange::Edit {
                old: row![1, "ann"],
                new: row![1, "anna"]
            },
            "user"
        ),
        [Op::Edit {
            table: "user".into(),
            old: row![1, "ann"],
            new: row![1, "anna"]
        }]
    );
    // A write outside the footprint: nothing.
    assert_eq!(
        step(
            SourceChange::Edit {
                old: row![2, "bob"],
                new: row![2, "rob"]
            },
            "user"
        ),
        []
    );
    // The last path goes: comment and author leave together.
    let ops = step(SourceChange::Remove(row![11, 1, 1]), "comment");
    assert_eq!(ops.len(), 2);
    assert!(ops.contains(&Op::Remove {
        table: "user".into(),
        row: row![1, "anna"]
    }));
    assert!(fold.is_empty());
}

#[test]
fn footprints_carry_witnesses_and_aggregated_rows_and_refuse_shared_not_exists() {
    let ast: Ast = serde_json::from_value(json!({
        "table": "user",
        "where": {"type":"correlatedSubquery","op":"EXISTS","related":{
            "correlation":{"parentField":["id"],"childField":["authorID"]},
            "subquery":{"table":"comment","alias":"c"}}},
        "related": [{"correlation":{"parentField":["id"],"childField":["authorID"]},
                     "subquery":{"table":"comment","alias":"n","aggregate":"count"}}]
    }))
    .unwrap();
    let fp = footprint(&ast).unwrap();
    let aliases: Vec<_> = fp
        .query
        .related
        .iter()
        .map(|r| r.subquery.alias.clone().unwrap())
        .collect();
    assert_eq!(aliases, ["n", "_rindle_witness_0"]);
    assert_eq!(fp.query.related[0].subquery.aggregate, None);
    assert_eq!(fp.query.related[1].subquery.limit, Some(1));

    let root_agg: Ast = serde_json::from_value(json!({
        "table": "comment", "aggregate": "count", "groupBy": ["issueID"], "limit": 2
    }))
    .unwrap();
    let fp = footprint(&root_agg).unwrap();
    assert_eq!(
        (fp.query.aggregate, fp.query.group_by, fp.query.limit),
        (None, None, None)
    );

    let shared: Ast = serde_json::from_value(json!({
        "table": "user",
        "where": {"type":"correlatedSubquery","op":"NOT EXISTS","related":{
            "correlation":{"parentField":["id"],"childField":["authorID"]},
            "subquery":{"table":"comment","alias":"c"}}},
        "related": [{"correlation":{"parentField":["id"],"childField":["id"]},
                     "subquery":{"table":"user","alias":"me"}}]
    }))
    .unwrap();
    assert_eq!(
        footprint(&shared),
        Err(FootprintError::SharedNotExistsTable {
            table: "user".into()
        })
    );
}
