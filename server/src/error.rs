//! Why the daemon could not start or stopped.

use std::fmt;

/// A start-up or run failure: one clear line saying what and where.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid.
    Config(String),
    /// The database could not be opened or prepared.
    Database(String),
    /// A configured table could not be registered.
    Table {
        /// The table.
        table: String,
        /// Why.
        reason: String,
    },
    /// A port could not be bound.
    Bind {
        /// Which plane.
        plane: &'static str,
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The QUIC certificate could not be loaded or generated.
    Tls(String),
    /// Serving failed.
    Io(String),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(m) => f.write_str(m),
            ServerError::Database(m) => write!(f, "database: {m}"),
            ServerError::Table { table, reason } => {
                write!(f, "table `{table}` cannot be registered: {reason}")
            }
            ServerError::Bind {
                plane,
                addr,
                reason,
            } => {
                write!(f, "cannot bind the {plane} plane on {addr}: {reason}")
            }
            ServerError::Tls(m) => write!(f, "quic certificate: {m}"),
            ServerError::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ServerError {}
