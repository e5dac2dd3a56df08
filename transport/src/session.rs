//! One connection's protocol state, whatever carries it: `init`, the
//! subscriptions with their publishers, limits and abuse counting. The
//! transports decode frames into calls here and send what comes out.

use std::collections::HashMap;
use std::time::Instant;

use rindle_core::protocol::{
    ClientMessage, Epochs, ErrorMessage, Progress, ProgressFrame, Publisher, QueryErrorMessage,
    ServerMessage, Subscribe,
};

use crate::feeds::{AttachRequest, Delivery, Detach, Refusal, Sink, SubKey, next_key};
use crate::plane::Plane;

/// What the transport must send.
#[derive(Debug)]
pub(crate) enum Out {
    /// On the connection's control path.
    Control(ServerMessage),
    /// On subscription `key`'s path (QUIC opens its stream on the first);
    /// `last` ends that path after this message.
    Sub {
        key: SubKey,
        msg: ServerMessage,
        last: bool,
    },
    /// End subscription `key`'s path.
    End { key: SubKey },
}

/// Why a session wants its connection closed; the transport picks the
/// close code from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Over a policy limit: the message rate or the subscriptions.
    Policy,
    /// Too many protocol errors, the last an oversized frame; or a frame too
    /// big to read at all.
    TooBig,
    /// Too many protocol errors, or a violation of the framing itself.
    Protocol,
    /// A text frame that is not UTF-8.
    InvalidData,
    /// No `init` or `subscribe` in time.
    Idle,
}

impl Closing {
    /// The reason a close says (short: a WebSocket close reason is at most
    /// 123 bytes).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Closing::Policy => "protocol limits exceeded",
            Closing::TooBig => "message too big",
            Closing::Protocol => "protocol error",
            Closing::InvalidData => "text frame is not UTF-8",
            Closing::Idle => "idle timeout: no init or subscribe",
        }
    }
}

struct Active {
    key: SubKey,
    publisher: Publisher,
    _guard: Detach,
}

pub(crate) struct Session {
    plane: Plane,
    sink: Sink,
    client_id: Option<String>,
    epochs: Epochs,
    subs: HashMap<u64, Active>,
    by_key: HashMap<SubKey, u64>,
    errors: u32,
    tokens: f64,
    refilled: Instant,
    closing: Option<Closing>,
    engaged: bool,
}

impl Session {
    pub(crate) fn new(plane: Plane, sink: Sink) -> Session {
        let burst = plane.limits().message_burst as f64;
        Session {
            plane,
            sink,
            client_id: None,
            epochs: Epochs::new(),
            subs: HashMap::new(),
            by_key: HashMap::new(),
            errors: 0,
            tokens: burst,
            refilled: Instant::now(),
            closing: None,
            engaged: false,
        }
    }

    /// Whether (and why) the connection should be closed after sending what
    /// is out.
    pub(crate) fn closing(&self) -> Option<Closing> {
        self.closing
    }

    /// Whether the client has sent `init` or `subscribe`: until then the
    /// connection is on [`Limits::first_message_timeout`](crate::Limits).
    pub(crate) fn engaged(&self) -> bool {
        self.engaged
    }

    fn close(&mut self, why: Closing) {
        self.closing.get_or_insert(why);
    }

    pub(crate) fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// A protocol error: an `error` message; too many close the connection.
    pub(crate) fn abuse(&mut self, message: String, query_id: Option<u64>) -> Vec<Out> {
        self.counted(Closing::Protocol, message, query_id)
    }

    fn counted(&mut self, why: Closing, message: String, query_id: Option<u64>) -> Vec<Out> {
        self.errors += 1;
        if self.errors >= self.plane.limits().max_errors {
            self.close(why);
        }
        tracing::debug!(conn = self.sink.conn(), %message, "protocol error");
        vec![error(query_id, message)]
    }

    /// A frame over the size limit, read and discarded.
    pub(crate) fn oversized(&mut self, len: usize) -> Vec<Out> {
        let max = self.plane.limits().max_frame_bytes;
        self.counted(
            Closing::TooBig,
            format!("a {len}-byte frame is over the {max}-byte limit"),
            None,
        )
    }

    /// A frame or message too big to read at all: an `error`, and the
    /// connection closes (the stream cannot be resynchronized past it).
    pub(crate) fn unreadable(&mut self, detail: &str) -> Vec<Out> {
        let max = self.plane.limits().max_frame_bytes;
        self.close(Closing::TooBig);
        tracing::debug!(conn = self.sink.conn(), detail, "unreadable frame");
        vec![error(
            None,
            format!("a frame far over the {max}-byte limit ({detail}); closing"),
        )]
    }

    /// A violation of the framing under the protocol (for WebSocket, of RFC
    /// 6455): an `error`, and the connection closes.
    pub(crate) fn violation(&mut self, why: Closing, detail: &str) -> Vec<Out> {
        self.close(why);
        tracing::debug!(conn = self.sink.conn(), detail, "framing violation");
        vec![error(None, format!("{detail}; closing"))]
    }

    /// No `init` or `subscribe` within the first-message timeout: an
    /// `error`, and the connection closes.
    pub(crate) fn idle(&mut self) -> Vec<Out> {
        let ms = self.plane.limits().first_message_timeout.as_millis();
        self.close(Closing::Idle);
        tracing::debug!(conn = self.sink.conn(), "idle timeout");
        vec![error(
            None,
            format!("no init or subscribe within {ms} ms; closing"),
        )]
    }

    /// A JSON text frame.
    pub(crate) fn on_text(&mut self, text: &str) -> Vec<Out> {
        if text.len() > self.plane.limits().max_frame_bytes {
            return self.oversized(text.len());
        }
        match serde_json::from_str::<ClientMessage>(text) {
            Ok(msg) => self.on_message(msg),
            Err(e) => self.abuse(format!("malformed message: {e}"), None),
        }
    }

    /// A decoded message.
    pub(crate) fn on_message(&mut self, msg: ClientMessage) -> Vec<Out> {
        if !self.take_token() {
            self.close(Closing::Policy);
            let rate = self.plane.limits().messages_per_second;
            return vec![error(
                None,
                format!("over the limit of {rate} messages per second; closing"),
            )];
        }
        match msg {
            ClientMessage::Unknown => self.abuse("unknown message type".into(), None),
            ClientMessage::Init(init) => {
                if self.client_id.is_some() {
                    return self.abuse("init was already sent".into(), None);
                }
                self.client_id = Some(init.client_id);
                self.engaged = true;
                Vec::new()
            }
            _ if self.client_id.is_none() => {
                self.abuse("send init before anything else".into(), None)
            }
            ClientMessage::Subscribe(sub) => {
                self.engaged = true;
                self.subscribe(sub)
            }
            ClientMessage::Unsubscribe(u) => match self.subs.remove(&u.query_id) {
                Some(active) => {
                    self.by_key.remove(&active.key);
                    vec![Out::End { key: active.key }]
                }
                None => vec![error(
                    Some(u.query_id),
                    format!("no subscription {} to end", u.query_id),
                )],
            },
            _ => self.abuse("unsupported message type".into(), None),
        }
    }

    fn take_token(&mut self) -> bool {
        let limits = self.plane.limits();
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * limits.messages_per_second as f64)
            .min(limits.message_burst as f64);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn subscribe(&mut self, sub: Subscribe) -> Vec<Out> {
        let mut out = Vec::new();
        let qid = sub.query_id;
        if let Some(old) = self.subs.remove(&qid) {
            // Replaced: the old attachment detaches as its guard drops.
            self.by_key.remove(&old.key);
            out.push(Out::End { key: old.key });
        } else if self.subs.len() >= self.plane.limits().max_subscriptions {
            self.close(Closing::Policy);
            let max = self.plane.limits().max_subscriptions;
            out.push(error(
                Some(qid),
                format!("over the limit of {max} subscriptions per connection; closing"),
            ));
            return out;
        }
        let key = next_key();
        let client_id = self.client_id.clone().unwrap_or_default();
        let attached = self.plane.feeds().attach(AttachRequest {
            client_id: &client_id,
            lease_token: &sub.lease_token,
            key,
            sink: self.sink.clone(),
        });
        let attached = match attached {
            Ok(a) => a,
            Err(refusal) => {
                out.push(Out::Sub {
                    key,
                    msg: query_error(qid, refusal),
                    last: true,
                });
                return out;
            }
        };
        let epoch = self.epochs.next(qid);
        let (mut publisher, hello) =
            match Publisher::new(qid, epoch, self.plane.boot_id(), attached.tables) {
                Ok(p) => p,
                Err(e) => {
                    out.push(Out::Sub {
                        key,
                        msg: query_error(
                            qid,
                            Refusal {
                                message: format!("cannot describe the query's tables: {e}"),
                                code: Some("internal".into()),
                                retryable: false,
                                retry_after_ms: None,
                            },
                        ),
                        last: true,
                    });
                    return out;
                }
            };
        out.push(Out::Sub {
            key,
            msg: ServerMessage::NHello(hello),
            last: false,
        });
        match publisher.snapshot(attached.snapshot, attached.cv) {
            Ok(b) => out.push(Out::Sub {
                key,
                msg: ServerMessage::NBatch(b),
                last: false,
            }),
            Err(e) => return self.abuse(e.to_string(), Some(qid)),
        }
        self.subs.insert(
            qid,
            Active {
                key,
                publisher,
                _guard: attached.guard,
            },
        );
        self.by_key.insert(key, qid);
        out
    }

    /// A delivery from the feed.
    pub(crate) fn on_delivery(&mut self, d: Delivery) -> Vec<Out> {
        match d {
            Delivery::Batch { key, ops, cv } => {
                let Some(active) = self.by_key.get(&key).and_then(|q| self.subs.get_mut(q)) else {
                    return Vec::new();
                };
                match active.publisher.batch(ops.to_vec(), cv) {
                    Ok(Some(b)) => vec![Out::Sub {
                        key,
                        msg: ServerMessage::NBatch(b),
                        last: false,
                    }],
                    Ok(None) => Vec::new(),
                    Err(e) => {
                        tracing::error!(key, error = %e, "publisher refused a batch");
                        Vec::new()
                    }
                }
            }
            Delivery::Faulted { key, message } => self.end(
                key,
                Refusal {
                    message,
                    code: Some("faulted".into()),
                    retryable: true,
                    retry_after_ms: None,
                },
            ),
            Delivery::Ended { key, message } => self.end(
                key,
                Refusal {
                    message,
                    code: Some("ended".into()),
                    retryable: false,
                    retry_after_ms: None,
                },
            ),
            Delivery::Progress { cv } => vec![Out::Control(ServerMessage::Progress(Progress {
                frame: ProgressFrame { cv_min: cv },
            }))],
        }
    }

    /// Attachments the feed dropped because this connection fell behind.
    pub(crate) fn on_shed(&mut self, shed: Vec<(SubKey, u64)>) -> Vec<Out> {
        let mut out = Vec::new();
        for (key, retry_after_ms) in shed {
            out.extend(self.end(
                key,
                Refusal {
                    message: "the subscriber fell behind; subscribe again".into(),
                    code: Some("shed".into()),
                    retryable: true,
                    retry_after_ms: Some(retry_after_ms),
                },
            ));
        }
        out
    }

    /// Ends subscription `key` with a `queryError`.
    pub(crate) fn end(&mut self, key: SubKey, why: Refusal) -> Vec<Out> {
        let Some(qid) = self.by_key.remove(&key) else {
            return Vec::new();
        };
        self.subs.remove(&qid);
        vec![Out::Sub {
            key,
            msg: query_error(qid, why),
            last: true,
        }]
    }
}

fn error(query_id: Option<u64>, message: String) -> Out {
    Out::Control(ServerMessage::Error(ErrorMessage { query_id, message }))
}

fn query_error(query_id: u64, r: Refusal) -> ServerMessage {
    ServerMessage::QueryError(QueryErrorMessage {
        query_id,
        message: r.message,
        code: r.code,
        retryable: Some(r.retryable),
        retry_after_ms: r.retry_after_ms,
    })
}
