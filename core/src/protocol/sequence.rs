//! Sequencing: the publisher's and the subscriber's state machines.
//!
//! Per (connection, query id) the publisher sends `nhello`, the snapshot as
//! `seq` 0 (always, even empty), then one batch per transaction that changed
//! the footprint, `seq` 1, 2, 3, …; a transaction that changed nothing sends
//! nothing and uses no `seq`. Re-subscribing a query id moves to the next
//! epoch. The subscriber checks each frame against that and tells its caller
//! what to do: apply, discard, or re-subscribe.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::{
    Batch, Fingerprint, Hello, NBatch, NHello, Op, ProtocolError, Replica, TableShape,
    normalized_fp,
};
use crate::value::COMPARATOR_VERSION;

/// The epochs a connection has used, per query id: each subscription of a
/// query id gets the previous epoch + 1, so no frame of an older subscription
/// can be mistaken for a newer one's.
#[derive(Clone, Debug, Default)]
pub struct Epochs {
    last: BTreeMap<u64, u64>,
}

impl Epochs {
    /// No epochs used yet.
    pub fn new() -> Epochs {
        Epochs::default()
    }

    /// The epoch for a new subscription of `query_id` (1 the first time).
    pub fn next(&mut self, query_id: u64) -> u64 {
        let e = self.last.entry(query_id).or_insert(0);
        *e = e.saturating_add(1);
        *e
    }
}

/// The publishing side of one subscription.
#[derive(Clone, Debug)]
pub struct Publisher {
    query_id: u64,
    epoch: u64,
    fp: Fingerprint,
    /// `None` until the snapshot is sent.
    next_seq: Option<u64>,
}

impl Publisher {
    /// Starts a subscription: returns the publisher and the `nhello` to send
    /// first. `tables` are sorted by name here.
    pub fn new(
        query_id: u64,
        epoch: u64,
        boot_id: &str,
        mut tables: Vec<TableShape>,
    ) -> Result<(Publisher, NHello), ProtocolError> {
        tables.sort_by(|a, b| a.name.cmp(&b.name));
        let fp = normalized_fp(&tables)?;
        let hello = NHello {
            query_id,
            boot_id: String::from(boot_id),
            hello: Hello {
                epoch,
                comparator_version: COMPARATOR_VERSION,
                tables,
                normalized_fp: fp,
            },
        };
        let publisher = Publisher {
            query_id,
            epoch,
            fp,
            next_seq: None,
        };
        Ok((publisher, hello))
    }

    /// The subscription's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The fingerprint every batch carries.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fp
    }

    /// Whether the snapshot has been sent.
    pub fn has_snapshot(&self) -> bool {
        self.next_seq.is_some()
    }

    /// The snapshot (`seq` 0), sent even when empty. Only once.
    pub fn snapshot(&mut self, ops: Vec<Op>, cv: u64) -> Result<NBatch, ProtocolError> {
        if self.next_seq.is_some() {
            return Err(ProtocolError::OutOfOrder {
                reason: "the snapshot was already sent",
            });
        }
        self.next_seq = Some(1);
        Ok(self.frame(0, ops, cv))
    }

    /// One transaction's operations: `None` when there are none (no frame,
    /// no `seq` used). Refused before the snapshot.
    pub fn batch(&mut self, ops: Vec<Op>, cv: u64) -> Result<Option<NBatch>, ProtocolError> {
        let Some(seq) = self.next_seq else {
            return Err(ProtocolError::OutOfOrder {
                reason: "an increment before the snapshot",
            });
        };
        if ops.is_empty() {
            return Ok(None);
        }
        self.next_seq = Some(seq + 1);
        Ok(Some(self.frame(seq, ops, cv)))
    }

    fn frame(&self, seq: u64, ops: Vec<Op>, cv: u64) -> NBatch {
        NBatch {
            query_id: self.query_id,
            batch: Batch {
                epoch: self.epoch,
                seq,
                normalized_fp: self.fp,
                ops,
                cv,
            },
        }
    }
}

/// What a subscriber did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// A hello was accepted; the snapshot comes next.
    Hello,
    /// The snapshot replaced the table copies.
    Snapshot,
    /// An increment was applied to the table copies.
    Applied,
    /// A frame of an older epoch: discarded.
    Stale,
    /// A `seq` already applied: discarded.
    Duplicate,
    /// A `seq` past the next expected one: frames were lost. Re-subscribe
    /// (send `subscribe` again and call [`Subscriber::resubscribe`]).
    Gap {
        /// The `seq` expected.
        expected: u64,
        /// The `seq` received.
        got: u64,
    },
}

#[derive(Clone, Debug)]
enum State {
    AwaitingHello,
    AwaitingSnapshot {
        epoch: u64,
        fp: Fingerprint,
    },
    Live {
        epoch: u64,
        fp: Fingerprint,
        next_seq: u64,
    },
}

/// The subscribing side of one subscription: validates frames and keeps the
/// table copies ([`Replica`]) current.
#[derive(Clone, Debug)]
pub struct Subscriber {
    state: State,
    /// Frames of a lower epoch are stale.
    min_epoch: u64,
    replica: Replica,
    cv: Option<u64>,
}

impl Default for Subscriber {
    fn default() -> Self {
        Subscriber::new()
    }
}

impl Subscriber {
    /// A subscriber waiting for its first hello.
    pub fn new() -> Subscriber {
        Subscriber {
            state: State::AwaitingHello,
            min_epoch: 1,
            replica: Replica::default(),
            cv: None,
        }
    }

    /// The table copies.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Whether the snapshot of the current epoch has been applied.
    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Live { .. })
    }

    /// The epoch of the current (or awaited) subscription.
    pub fn epoch(&self) -> Option<u64> {
        match self.state {
            State::AwaitingHello => None,
            State::AwaitingSnapshot { epoch, .. } | State::Live { epoch, .. } => Some(epoch),
        }
    }

    /// The commit version the copies reflect.
    pub fn cv(&self) -> Option<u64> {
        self.cv
    }

    /// After sending `subscribe` again for this query id: frames of the
    /// current epoch and older are stale from now on. The copies stay as they
    /// are until the new snapshot replaces them.
    pub fn resubscribe(&mut self) {
        if let Some(epoch) = self.epoch() {
            self.min_epoch = self.min_epoch.max(epoch.saturating_add(1));
        }
        self.state = State::AwaitingHello;
    }

    /// Checks a hello: its comparator version must be 2 and its fingerprint
    /// must match the one computed from its tables.
    pub fn on_hello(&mut self, hello: &Hello) -> Result<Verdict, ProtocolError> {
        if hello.epoch < self.min_epoch {
            return Ok(Verdict::Stale);
        }
        if hello.comparator_version != COMPARATOR_VERSION {
            return Err(ProtocolError::ComparatorVersion {
                got: hello.comparator_version,
            });
        }
        let computed = normalized_fp(&hello.tables)?;
        if computed != hello.normalized_fp {
            return Err(ProtocolError::FingerprintMismatch {
                expected: computed,
                got: hello.normalized_fp,
            });
        }
        let mut replica = Replica::new(&hello.tables)?;
        // Keep rows of tables both epochs share until the snapshot replaces
        // them; readers see the old copies rather than nothing meanwhile.
        replica.adopt(&mut self.replica);
        self.replica = replica;
        self.min_epoch = hello.epoch;
        self.state = State::AwaitingSnapshot {
            epoch: hello.epoch,
            fp: hello.normalized_fp,
        };
        Ok(Verdict::Hello)
    }

    /// Checks a batch and, when it is the next one, applies it. An error
    /// leaves the copies untouched; the caller should re-subscribe.
    pub fn on_batch(&mut self, batch: &Batch) -> Result<Verdict, ProtocolError> {
        if batch.epoch < self.min_epoch {
            return Ok(Verdict::Stale);
        }
        match self.state {
            State::AwaitingHello => Err(ProtocolError::OutOfOrder {
                reason: "a batch before its hello",
            }),
            State::AwaitingSnapshot { epoch, fp } => {
                check_epoch_fp(epoch, fp, batch)?;
                if batch.seq != 0 {
                    return Ok(Verdict::Gap {
                        expected: 0,
                        got: batch.seq,
                    });
                }
                self.replica.replace_with(&batch.ops)?;
                self.cv = Some(batch.cv);
                self.state = State::Live {
                    epoch,
                    fp,
                    next_seq: 1,
                };
                Ok(Verdict::Snapshot)
            }
            State::Live {
                epoch,
                fp,
                ref mut next_seq,
            } => {
                check_epoch_fp(epoch, fp, batch)?;
                let expected = *next_seq;
                if batch.seq < expected {
                    return Ok(Verdict::Duplicate);
                }
                if batch.seq > expected {
                    return Ok(Verdict::Gap {
                        expected,
                        got: batch.seq,
                    });
                }
                self.replica.apply(&batch.ops)?;
                *next_seq = expected + 1;
                self.cv = Some(batch.cv);
                Ok(Verdict::Applied)
            }
        }
    }
}

fn check_epoch_fp(epoch: u64, fp: Fingerprint, batch: &Batch) -> Result<(), ProtocolError> {
    if batch.epoch != epoch {
        return Err(ProtocolError::OutOfOrder {
            reason: "a batch of an epoch whose hello never came",
        });
    }
    if batch.normalized_fp != fp {
        return Err(ProtocolError::FingerprintMismatch {
            expected: fp,
            got: batch.normalized_fp,
        });
    }
    Ok(())
}
