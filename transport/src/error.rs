//! The transport's errors.

use std::fmt;
use std::net::SocketAddr;

use rindle_core::protocol::ProtocolError;

/// Setting up or running a transport failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportError {
    /// A certificate or key could not be read, generated or used.
    Tls(String),
    /// An address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// Connecting to a server failed.
    Connect(String),
    /// The server's certificate does not have the pinned fingerprint.
    PinMismatch {
        /// The pinned SHA-256.
        expected: String,
        /// The certificate's.
        got: String,
    },
    /// The connection is closed.
    Closed,
    /// A message could not be encoded or decoded.
    Protocol(ProtocolError),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Tls(m) => write!(f, "tls: {m}"),
            TransportError::Bind { addr, message } => write!(f, "cannot bind {addr}: {message}"),
            TransportError::Connect(m) => write!(f, "cannot connect: {m}"),
            TransportError::PinMismatch { expected, got } => write!(
                f,
                "the server certificate's SHA-256 is {got}, not the pinned {expected}"
            ),
            TransportError::Closed => f.write_str("the connection is closed"),
            TransportError::Protocol(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TransportError {}

impl From<ProtocolError> for TransportError {
    fn from(e: ProtocolError) -> Self {
        TransportError::Protocol(e)
    }
}
