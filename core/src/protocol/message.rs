//! The protocol's messages, one set of types for both encodings.
//!
//! A human-readable serializer (JSON, the WebSocket plane) sees exactly the wire
//! of PROTOCOL.md: an object tagged by `t`, camelCase keys, optional keys left
//! out when absent. A compact serializer (postcard, the QUIC plane) sees plain
//! externally tagged enums, every field present, so nothing needs a
//! self-describing format. The switch is `is_human_readable`, decided once per
//! type below; the private `*Json*` and `*Compact*` mirrors are the two shapes.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::value::Row;

/// A message a client sends.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ClientMessage {
    /// `{"t":"init","clientID":…}`: names the client; must come first.
    Init(Init),
    /// `{"t":"subscribe",…}`: attach to a materialization by lease.
    Subscribe(Subscribe),
    /// `{"t":"unsubscribe","queryId":…}`.
    Unsubscribe(Unsubscribe),
    /// A well-formed message whose `t` this version does not know. Decoding
    /// yields it so a server can answer with an `error`; it cannot be encoded.
    Unknown,
}

/// `init`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Init {
    /// The client's id (`clientID` on the wire).
    pub client_id: String,
}

/// `subscribe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// Chosen by the client; scopes everything sent for this subscription.
    pub query_id: u64,
    /// The capability minted by the control plane's `/materialize`.
    pub lease_token: String,
    /// The only mode is `normalized`.
    pub mode: SubscribeMode,
}

/// How a subscription's data is shaped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SubscribeMode {
    /// Table-tagged base rows (the footprint), kept current by row operations.
    #[default]
    #[serde(rename = "normalized")]
    Normalized,
}

/// `unsubscribe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsubscribe {
    /// The subscription to end.
    pub query_id: u64,
}

/// A message a server sends.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// `nhello`: the subscription's tables and epoch; comes first.
    NHello(NHello),
    /// `nbatch`: the snapshot (`seq` 0) or one transaction's row operations.
    NBatch(NBatch),
    /// `queryError`: the subscription failed or was refused.
    QueryError(QueryErrorMessage),
    /// `progress`: every data frame up to a commit version has been sent.
    Progress(Progress),
    /// `error`: a protocol error (bad frame, message before `init`, limits).
    Error(ErrorMessage),
    /// A well-formed message whose `t` this version does not know; clients
    /// ignore it. It cannot be encoded.
    Unknown,
}

/// `nhello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NHello {
    /// The subscription.
    pub query_id: u64,
    /// The server process's boot id (changes on every restart).
    pub boot_id: String,
    /// Epoch, comparator version, tables and fingerprint.
    pub hello: Hello,
}

/// The body of `nhello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// Starts at 1; each re-subscription of a query id uses the next one.
    pub epoch: u64,
    /// Must be 2 ([`crate::COMPARATOR_VERSION`]).
    pub comparator_version: u32,
    /// Every base table the query touches, sorted by name.
    pub tables: Vec<TableShape>,
    /// [`super::normalized_fp`] of `tables`.
    pub normalized_fp: Fingerprint,
}

/// A table as the protocol describes it: names only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableShape {
    /// The table's name.
    pub name: String,
    /// Its columns, in row order.
    pub columns: Vec<String>,
    /// Indexes into `columns` of the primary key, in key order.
    pub primary_key: Vec<u32>,
}

/// `nbatch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NBatch {
    /// The subscription.
    pub query_id: u64,
    /// The operations and their sequencing.
    pub batch: Batch,
}

/// The body of `nbatch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// The subscription's epoch.
    pub epoch: u64,
    /// 0 for the snapshot, then 1, 2, 3, … per transaction that changed the
    /// footprint.
    pub seq: u64,
    /// The hello's fingerprint.
    pub normalized_fp: Fingerprint,
    /// Row operations, at most one per row.
    pub ops: Vec<Op>,
    /// The commit version the batch reflects.
    pub cv: u64,
}

/// One row operation on a table copy.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A row enters the footprint.
    Add {
        /// The table.
        table: Arc<str>,
        /// The row, positional against the table's columns.
        row: Row,
    },
    /// A row leaves the footprint.
    Remove {
        /// The table.
        table: Arc<str>,
        /// The row as the client holds it.
        row: Row,
    },
    /// A row of the footprint changes (same primary key).
    Edit {
        /// The table.
        table: Arc<str>,
        /// The row as the client holds it.
        old: Row,
        /// The row as it is now.
        new: Row,
    },
}

impl Op {
    /// The table the operation is on.
    pub fn table(&self) -> &str {
        match self {
            Op::Add { table, .. } | Op::Remove { table, .. } | Op::Edit { table, .. } => table,
        }
    }
}

/// `queryError`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryErrorMessage {
    /// The subscription.
    pub query_id: u64,
    /// What went wrong.
    pub message: String,
    /// A machine-readable code (`faulted`, `shed`, `lease`, …).
    pub code: Option<String>,
    /// Whether subscribing again may succeed.
    pub retryable: Option<bool>,
    /// How long to wait before subscribing again.
    pub retry_after_ms: Option<u64>,
}

/// `progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The frame body.
    pub frame: ProgressFrame,
}

/// The body of `progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressFrame {
    /// Every data frame with `cv ≤ cv_min` for this connection has been sent.
    pub cv_min: u64,
}

/// `error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// The subscription the error is about, if any.
    pub query_id: Option<u64>,
    /// What was wrong.
    pub message: String,
}

// ---- the JSON shapes ------------------------------------------------------

#[derive(Serialize)]
#[serde(tag = "t")]
enum ClientJsonRef<'a> {
    #[serde(rename = "init")]
    Init {
        #[serde(rename = "clientID")]
        client_id: &'a str,
    },
    #[serde(rename = "subscribe")]
    Subscribe {
        #[serde(rename = "queryId")]
        query_id: u64,
        #[serde(rename = "leaseToken")]
        lease_token: &'a str,
        mode: SubscribeMode,
    },
    #[serde(rename = "unsubscribe")]
    Unsubscribe {
        #[serde(rename = "queryId")]
        query_id: u64,
    },
}

#[derive(Deserialize)]
#[serde(tag = "t")]
enum ClientJson {
    #[serde(rename = "init")]
    Init {
        #[serde(rename = "clientID")]
        client_id: String,
    },
    #[serde(rename = "subscribe")]
    Subscribe {
        #[serde(rename = "queryId")]
        query_id: u64,
        #[serde(rename = "leaseToken")]
        lease_token: String,
        #[serde(default)]
        mode: SubscribeMode,
    },
    #[serde(rename = "unsubscribe")]
    Unsubscribe {
        #[serde(rename = "queryId")]
        query_id: u64,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Serialize)]
#[serde(tag = "t")]
enum ServerJsonRef<'a> {
    #[serde(rename = "nhello")]
    NHello {
        #[serde(rename = "queryId")]
        query_id: u64,
        #[serde(rename = "bootId")]
        boot_id: &'a str,
        hello: &'a Hello,
    },
    #[serde(rename = "nbatch")]
    NBatch {
        #[serde(rename = "queryId")]
        query_id: u64,
        batch: &'a Batch,
    },
    #[serde(rename = "queryError")]
    QueryError {
        #[serde(rename = "queryId")]
        query_id: u64,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retryable: Option<bool>,
        #[serde(rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    #[serde(rename = "progress")]
    Progress { frame: ProgressFrame },
    #[serde(rename = "error")]
    Error {
        #[serde(rename = "queryId", skip_serializing_if = "Option::is_none")]
        query_id: Option<u64>,
        message: &'a str,
    },
}

#[derive(Deserialize)]
#[serde(tag = "t")]
enum ServerJson {
    #[serde(rename = "nhello")]
    NHello {
        #[serde(rename = "queryId")]
        query_id: u64,
        #[serde(rename = "bootId")]
        boot_id: String,
        hello: Hello,
    },
    #[serde(rename = "nbatch")]
    NBatch {
        #[serde(rename = "queryId")]
        query_id: u64,
        batch: Batch,
    },
    #[serde(rename = "queryError")]
    QueryError {
        #[serde(rename = "queryId")]
        query_id: u64,
        message: String,
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        retryable: Option<bool>,
        #[serde(rename = "retryAfterMs", default)]
        retry_after_ms: Option<u64>,
    },
    #[serde(rename = "progress")]
    Progress { frame: ProgressFrame },
    #[serde(rename = "error")]
    Error {
        #[serde(rename = "queryId", default)]
        query_id: Option<u64>,
        message: String,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Serialize)]
#[serde(tag = "op")]
enum OpJsonRef<'a> {
    #[serde(rename = "add")]
    Add { table: &'a str, row: &'a Row },
    #[serde(rename = "remove")]
    Remove { table: &'a str, row: &'a Row },
    #[serde(rename = "edit")]
    Edit {
        table: &'a str,
        old: &'a Row,
        new: &'a Row,
    },
}

#[derive(Deserialize)]
#[serde(tag = "op")]
enum OpJson {
    #[serde(rename = "add")]
    Add { table: String, row: Row },
    #[serde(rename = "remove")]
    Remove { table: String, row: Row },
    #[serde(rename = "edit")]
    Edit { table: String, old: Row, new: Row },
}

// ---- the compact shapes ---------------------------------------------------

#[derive(Serialize)]
enum ClientCompactRef<'a> {
    Init(&'a Init),
    Subscribe(&'a Subscribe),
    Unsubscribe(&'a Unsubscribe),
}

#[derive(Deserialize)]
enum ClientCompact {
    Init(Init),
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
}

#[derive(Serialize)]
enum ServerCompactRef<'a> {
    NHello(&'a NHello),
    NBatch(&'a NBatch),
    QueryError(&'a QueryErrorMessage),
    Progress(&'a Progress),
    Error(&'a ErrorMessage),
}

#[derive(Deserialize)]
enum ServerCompact {
    NHello(NHello),
    NBatch(NBatch),
    QueryError(QueryErrorMessage),
    Progress(Progress),
    Error(ErrorMessage),
}

#[derive(Serialize)]
enum OpCompactRef<'a> {
    Add(&'a str, &'a Row),
    Remove(&'a str, &'a Row),
    Edit(&'a str, &'a Row, &'a Row),
}

#[derive(Deserialize)]
enum OpCompact {
    Add(String, Row),
    Remove(String, Row),
    Edit(String, Row, Row),
}

fn unencodable<E: serde::ser::Error>(what: &str) -> E {
    E::custom(alloc::format!(
        "an unknown {what} message cannot be encoded"
    ))
}

impl Serialize for ClientMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match self {
                ClientMessage::Init(m) => ClientJsonRef::Init {
                    client_id: &m.client_id,
                },
                ClientMessage::Subscribe(m) => ClientJsonRef::Subscribe {
                    query_id: m.query_id,
                    lease_token: &m.lease_token,
                    mode: m.mode,
                },
                ClientMessage::Unsubscribe(m) => ClientJsonRef::Unsubscribe {
                    query_id: m.query_id,
                },
                ClientMessage::Unknown => return Err(unencodable("client")),
            }
            .serialize(s)
        } else {
            match self {
                ClientMessage::Init(m) => ClientCompactRef::Init(m),
                ClientMessage::Subscribe(m) => ClientCompactRef::Subscribe(m),
                ClientMessage::Unsubscribe(m) => ClientCompactRef::Unsubscribe(m),
                ClientMessage::Unknown => return Err(unencodable("client")),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ClientMessage, D::Error> {
        if d.is_human_readable() {
            Ok(match ClientJson::deserialize(d)? {
                ClientJson::Init { client_id } => ClientMessage::Init(Init { client_id }),
                ClientJson::Subscribe {
                    query_id,
                    lease_token,
                    mode,
                } => ClientMessage::Subscribe(Subscribe {
                    query_id,
                    lease_token,
                    mode,
                }),
                ClientJson::Unsubscribe { query_id } => {
                    ClientMessage::Unsubscribe(Unsubscribe { query_id })
                }
                ClientJson::Unknown => ClientMessage::Unknown,
            })
        } else {
            Ok(match ClientCompact::deserialize(d)? {
                ClientCompact::Init(m) => ClientMessage::Init(m),
                ClientCompact::Subscribe(m) => ClientMessage::Subscribe(m),
                ClientCompact::Unsubscribe(m) => ClientMessage::Unsubscribe(m),
            })
        }
    }
}

impl Serialize for ServerMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match self {
                ServerMessage::NHello(m) => ServerJsonRef::NHello {
                    query_id: m.query_id,
                    boot_id: &m.boot_id,
                    hello: &m.hello,
                },
                ServerMessage::NBatch(m) => ServerJsonRef::NBatch {
                    query_id: m.query_id,
                    batch: &m.batch,
                },
                ServerMessage::QueryError(m) => ServerJsonRef::QueryError {
                    query_id: m.query_id,
                    message: &m.message,
                    code: m.code.as_deref(),
                    retryable: m.retryable,
                    retry_after_ms: m.retry_after_ms,
                },
                ServerMessage::Progress(m) => ServerJsonRef::Progress { frame: m.frame },
                ServerMessage::Error(m) => ServerJsonRef::Error {
                    query_id: m.query_id,
                    message: &m.message,
                },
                ServerMessage::Unknown => return Err(unencodable("server")),
            }
            .serialize(s)
        } else {
            match self {
                ServerMessage::NHello(m) => ServerCompactRef::NHello(m),
                ServerMessage::NBatch(m) => ServerCompactRef::NBatch(m),
                ServerMessage::QueryError(m) => ServerCompactRef::QueryError(m),
                ServerMessage::Progress(m) => ServerCompactRef::Progress(m),
                ServerMessage::Error(m) => ServerCompactRef::Error(m),
                ServerMessage::Unknown => return Err(unencodable("server")),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ServerMessage, D::Error> {
        if d.is_human_readable() {
            Ok(match ServerJson::deserialize(d)? {
                ServerJson::NHello {
                    query_id,
                    boot_id,
                    hello,
                } => ServerMessage::NHello(NHello {
                    query_id,
                    boot_id,
                    hello,
                }),
                ServerJson::NBatch { query_id, batch } => {
                    ServerMessage::NBatch(NBatch { query_id, batch })
                }
                ServerJson::QueryError {
                    query_id,
                    message,
                    code,
                    retryable,
                    retry_after_ms,
                } => ServerMessage::QueryError(QueryErrorMessage {
                    query_id,
                    message,
                    code,
                    retryable,
                    retry_after_ms,
                }),
                ServerJson::Progress { frame } => ServerMessage::Progress(Progress { frame }),
                ServerJson::Error { query_id, message } => {
                    ServerMessage::Error(ErrorMessage { query_id, message })
                }
                ServerJson::Unknown => ServerMessage::Unknown,
            })
        } else {
            Ok(match ServerCompact::deserialize(d)? {
                ServerCompact::NHello(m) => ServerMessage::NHello(m),
                ServerCompact::NBatch(m) => ServerMessage::NBatch(m),
                ServerCompact::QueryError(m) => ServerMessage::QueryError(m),
                ServerCompact::Progress(m) => ServerMessage::Progress(m),
                ServerCompact::Error(m) => ServerMessage::Error(m),
            })
        }
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match self {
                Op::Add { table, row } => OpJsonRef::Add { table, row },
                Op::Remove { table, row } => OpJsonRef::Remove { table, row },
                Op::Edit { table, old, new } => OpJsonRef::Edit { table, old, new },
            }
            .serialize(s)
        } else {
            match self {
                Op::Add { table, row } => OpCompactRef::Add(table, row),
                Op::Remove { table, row } => OpCompactRef::Remove(table, row),
                Op::Edit { table, old, new } => OpCompactRef::Edit(table, old, new),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Op, D::Error> {
        let op = if d.is_human_readable() {
            match OpJson::deserialize(d)? {
                OpJson::Add { table, row } => OpCompact::Add(table, row),
                OpJson::Remove { table, row } => OpCompact::Remove(table, row),
                OpJson::Edit { table, old, new } => OpCompact::Edit(table, old, new),
            }
        } else {
            OpCompact::deserialize(d)?
        };
        Ok(match op {
            OpCompact::Add(table, row) => Op::Add {
                table: Arc::from(table),
                row,
            },
            OpCompact::Remove(table, row) => Op::Remove {
                table: Arc::from(table),
                row,
            },
            OpCompact::Edit(table, old, new) => Op::Edit {
                table: Arc::from(table),
                old,
                new,
            },
        })
    }
}

/// A 64-bit FNV-1a fingerprint; 16 lowercase hex digits on the JSON wire, a
/// `u64` in the compact encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Fingerprint {
    /// Parses 16 hex digits.
    pub fn parse(text: &str) -> Option<Fingerprint> {
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Fingerprint)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
        if d.is_human_readable() {
            let text = alloc::borrow::Cow::<'de, str>::deserialize(d)?;
            Fingerprint::parse(&text).ok_or_else(|| {
                de::Error::invalid_value(de::Unexpected::Str(&text), &"16 hex digits")
            })
        } else {
            u64::deserialize(d).map(Fingerprint)
        }
    }
}
