//! The normalized subscription protocol's pure parts (PROTOCOL.md).
//!
//! - [`ClientMessage`] / [`ServerMessage`]: the messages, serializing to the
//!   exact JSON wire with a human-readable serializer and to compact enums
//!   with postcard ([`to_compact`], [`from_compact`], [`write_varint`],
//!   [`read_varint`] for QUIC's length-prefixed framing);
//! - [`normalized_fp`]: the FNV-1a fingerprint of a subscription's tables;
//! - [`Publisher`] / [`Subscriber`]: sequencing (epochs, `seq`, duplicates,
//!   gaps), with [`Replica`] as the subscriber's table copies;
//! - [`footprint`] and [`NormalizeFold`]: what a subscription maintains and how
//!   its result changes become table-tagged row operations.
//!
//! Nothing here does I/O: transports feed frames in and send what comes out,
//! so an embedded subscriber validates frames with this crate alone.
//!
//! ```
//! use rindle_core::protocol::*;
//!
//! let frame = r#"{"t":"subscribe","queryId":7,"leaseToken":"abc","mode":"normalized"}"#;
//! let msg: ClientMessage = serde_json::from_str(frame)?;
//! assert_eq!(msg, ClientMessage::Subscribe(Subscribe {
//!     query_id: 7, lease_token: "abc".into(), mode: SubscribeMode::Normalized,
//! }));
//! // The same value in QUIC's encoding:
//! let bytes = to_compact(&msg)?;
//! assert_eq!(from_compact::<ClientMessage>(&bytes)?, msg);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod fingerprint;
mod fold;
mod message;
mod replica;
mod sequence;

pub use fingerprint::normalized_fp;
pub use fold::{FoldError, Footprint, FootprintError, NormalizeFold, footprint};
pub use message::{
    Batch, ClientMessage, ErrorMessage, Fingerprint, Hello, Init, NBatch, NHello, Op, Progress,
    ProgressFrame, QueryErrorMessage, ServerMessage, Subscribe, SubscribeMode, TableShape,
    Unsubscribe,
};
pub use replica::{Replica, ReplicaError};
pub use sequence::{Epochs, Publisher, Subscriber, Verdict};

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::schema::TableSchema;

impl TableShape {
    /// The shape of a table schema.
    pub fn of(schema: &TableSchema) -> TableShape {
        TableShape {
            name: String::from(schema.name()),
            columns: schema.columns().iter().map(|c| c.name.clone()).collect(),
            primary_key: schema.primary_key().iter().map(|&i| i as u32).collect(),
        }
    }

    /// Checks that the key is non-empty and indexes existing columns.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let invalid = |reason| ProtocolError::InvalidTable {
            table: self.name.clone(),
            reason,
        };
        if self.primary_key.is_empty() {
            return Err(invalid("no primary key"));
        }
        if self
            .primary_key
            .iter()
            .any(|&i| i as usize >= self.columns.len())
        {
            return Err(invalid("a primary-key index past the last column"));
        }
        Ok(())
    }
}

/// A frame or message that breaks the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A hello's comparator version is not 2.
    ComparatorVersion {
        /// The version received.
        got: u32,
    },
    /// A fingerprint differs from the one computed or announced.
    FingerprintMismatch {
        /// The fingerprint expected.
        expected: Fingerprint,
        /// The fingerprint received.
        got: Fingerprint,
    },
    /// A table shape that cannot be used.
    InvalidTable {
        /// The table.
        table: String,
        /// Why.
        reason: &'static str,
    },
    /// An operation on a table the subscription does not have.
    UnknownTable {
        /// The table.
        table: String,
    },
    /// A row with the wrong number of cells.
    RowWidth {
        /// The table.
        table: String,
        /// Its column count.
        expected: usize,
        /// The row's cell count.
        got: usize,
    },
    /// An operation that does not fit the copies (an add of a held key, a
    /// remove or edit of a row not held).
    Inconsistent {
        /// The table.
        table: String,
        /// What did not fit.
        reason: &'static str,
    },
    /// A frame or call out of sequence.
    OutOfOrder {
        /// What came out of order.
        reason: &'static str,
    },
    /// Bytes that do not decode as a message.
    Malformed {
        /// The decoder's complaint.
        reason: String,
    },
    /// A length prefix over the limit.
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: u64,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ComparatorVersion { got } => {
                write!(f, "comparator version {got} is not the supported version 2")
            }
            ProtocolError::FingerprintMismatch { expected, got } => {
                write!(f, "fingerprint {got} does not match {expected}")
            }
            ProtocolError::InvalidTable { table, reason } => {
                write!(f, "table `{table}`: {reason}")
            }
            ProtocolError::UnknownTable { table } => {
                write!(f, "an operation on `{table}`, which the subscription lacks")
            }
            ProtocolError::RowWidth {
                table,
                expected,
                got,
            } => write!(
                f,
                "a row of `{table}` has {got} cells; the table has {expected} columns"
            ),
            ProtocolError::Inconsistent { table, reason } => write!(f, "`{table}`: {reason}"),
            ProtocolError::OutOfOrder { reason } => write!(f, "out of order: {reason}"),
            ProtocolError::Malformed { reason } => write!(f, "malformed message: {reason}"),
            ProtocolError::TooLarge { len, max } => {
                write!(f, "a {len}-byte message is over the {max}-byte limit")
            }
        }
    }
}

impl core::error::Error for ProtocolError {}

/// Encodes a message in the compact (postcard) form QUIC carries.
pub fn to_compact<T: serde::Serialize>(msg: &T) -> Result<Vec<u8>, ProtocolError> {
    postcard::to_allocvec(msg).map_err(|e| ProtocolError::Malformed {
        reason: e.to_string(),
    })
}

/// Decodes one whole compact message; trailing bytes are refused.
pub fn from_compact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ProtocolError> {
    let (msg, rest) = postcard::take_from_bytes(bytes).map_err(|e| ProtocolError::Malformed {
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(ProtocolError::Malformed {
            reason: alloc::format!("{} bytes after the message", rest.len()),
        });
    }
    Ok(msg)
}

/// Appends `len` as an unsigned LEB128 varint (QUIC's length prefix).
pub fn write_varint(mut len: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads an unsigned LEB128 varint from the front of `buf`: `Ok(None)` when
/// more bytes are needed, else the value and the bytes it took. A prefix
/// longer than ten bytes or past 64 bits is malformed.
pub fn read_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, ProtocolError> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        let shift = 7 * i as u32;
        if i >= 10 || (i == 9 && b > 1) {
            return Err(ProtocolError::Malformed {
                reason: String::from("a length prefix past 64 bits"),
            });
        }
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Ok(None)
}

/// Encodes a message with its varint length prefix, ready for a QUIC stream.
pub fn to_frame<T: serde::Serialize>(msg: &T) -> Result<Vec<u8>, ProtocolError> {
    let body = to_compact(msg)?;
    let mut out = Vec::with_capacity(body.len() + 5);
    write_varint(body.len() as u64, &mut out);
    out.extend_from_slice(&body);
    Ok(out)
}
