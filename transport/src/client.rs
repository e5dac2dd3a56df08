//! A Rust client for either plane: it validates every frame with core's
//! [`Subscriber`], keeps each subscription's table copies current, and
//! re-subscribes by itself when it sees a gap.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::{SinkExt, StreamExt};
use quinn::crypto::rustls::QuicClientConfig;
use rindle_core::protocol::{
    ClientMessage, ErrorMessage, Init, Op, ProtocolError, QueryErrorMessage, Replica,
    ServerMessage, Subscribe, SubscribeMode, Subscriber, Unsubscribe, Verdict, from_compact,
    to_frame,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::error::TransportError;
use crate::quic::{ALPN, FrameReader, install_crypto};
use crate::tls::cert_sha256_hex;

/// What a client reports, in the order frames arrive.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A subscription's snapshot replaced its table copies.
    Snapshot {
        /// The subscription.
        query_id: u64,
        /// The commit version of the snapshot.
        cv: u64,
    },
    /// A transaction's operations were applied to the copies.
    Batch {
        /// The subscription.
        query_id: u64,
        /// The operations applied.
        ops: Vec<Op>,
        /// The transaction's commit version.
        cv: u64,
    },
    /// Frames were lost or did not fit: the client subscribed again and
    /// awaits a fresh snapshot.
    Resubscribing {
        /// The subscription.
        query_id: u64,
        /// What was wrong.
        reason: String,
    },
    /// The server ended or refused a subscription.
    QueryError(QueryErrorMessage),
    /// A subscription's hello could not be accepted (wrong comparator
    /// version or fingerprint); the subscription is dropped.
    Rejected {
        /// The subscription.
        query_id: u64,
        /// Why.
        error: ProtocolError,
    },
    /// The server has sent every data frame up to `cv_min`. On WebSocket
    /// they have arrived before this; on QUIC progress travels on the control
    /// stream and can overtake a subscription's stream.
    Progress {
        /// The commit version.
        cv_min: u64,
    },
    /// The server reported a protocol error.
    Error(ErrorMessage),
    /// The connection closed.
    Closed,
}

struct Sub {
    lease: String,
    subscriber: Subscriber,
}

#[derive(Default)]
struct State {
    subs: HashMap<u64, Sub>,
}

/// A connection to a Rindle server's public plane.
pub struct Client {
    out: mpsc::Sender<ClientMessage>,
    events: mpsc::Receiver<ClientEvent>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Connects to a WebSocket plane (`ws://host:port/`).
    pub async fn connect_ws(url: &str) -> Result<Client, TransportError> {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        let (mut write, mut read) = socket.split();
        let (out_tx, mut out_rx) = mpsc::channel::<ClientMessage>(256);
        let (in_tx, in_rx) = mpsc::channel::<ServerMessage>(1024);
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let Ok(text) = serde_json::to_string(&msg) else {
                    continue;
                };
                if write.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            let _ = write.close().await;
        });
        tokio::spawn(async move {
            while let Some(Ok(frame)) = read.next().await {
                let Message::Text(text) = frame else {
                    if frame.is_close() {
                        break;
                    }
                    continue;
                };
                match serde_json::from_str::<ServerMessage>(text.as_str()) {
                    Ok(msg) => {
                        if in_tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable frame from the server"),
                }
            }
        });
        Ok(Client::start(out_tx, in_rx))
    }

    /// Connects to a QUIC plane, accepting only a certificate whose SHA-256
    /// is `pin_sha256` (64 hex digits, as the readiness line prints it).
    pub async fn connect_quic(
        addr: SocketAddr,
        pin_sha256: &str,
    ) -> Result<Client, TransportError> {
        let conn = connect_quic_raw(addr, pin_sha256).await?;
        let (mut control, control_rx) = conn
            .open_bi()
            .await
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        let (out_tx, mut out_rx) = mpsc::channel::<ClientMessage>(256);
        let (in_tx, in_rx) = mpsc::channel::<ServerMessage>(1024);
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let Ok(bytes) = to_frame(&msg) else { continue };
                if control.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = control.finish();
        });
        tokio::spawn(read_quic_stream(control_rx, in_tx.clone()));
        let accept = conn.clone();
        tokio::spawn(async move {
            while let Ok(stream) = accept.accept_uni().await {
                tokio::spawn(read_quic_stream(stream, in_tx.clone()));
            }
        });
        Ok(Client::start(out_tx, in_rx))
    }

    fn start(
        out: mpsc::Sender<ClientMessage>,
        mut incoming: mpsc::Receiver<ServerMessage>,
    ) -> Client {
        let state = Arc::new(Mutex::new(State::default()));
        let (ev_tx, events) = mpsc::channel(4096);
        let st = state.clone();
        let resend = out.clone();
        tokio::spawn(async move {
            while let Some(msg) = incoming.recv().await {
                let (evs, again) = handle(&st, msg);
                for (query_id, lease) in again {
                    let _ = resend
                        .send(ClientMessage::Subscribe(Subscribe {
                            query_id,
                            lease_token: lease,
                            mode: SubscribeMode::Normalized,
                        }))
                        .await;
                }
                for ev in evs {
                    if ev_tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
            let _ = ev_tx.send(ClientEvent::Closed).await;
        });
        Client { out, events, state }
    }

    async fn send(&self, msg: ClientMessage) -> Result<(), TransportError> {
        self.out.send(msg).await.map_err(|_| TransportError::Closed)
    }

    /// Sends `init`; must come before anything else.
    pub async fn init(&self, client_id: &str) -> Result<(), TransportError> {
        self.send(ClientMessage::Init(Init {
            client_id: client_id.into(),
        }))
        .await
    }

    /// Subscribes `query_id` with a lease token; subscribing a query id again
    /// replaces its subscription (the server moves to a new epoch).
    pub async fn subscribe(&self, query_id: u64, lease_token: &str) -> Result<(), TransportError> {
        {
            let mut st = lock(&self.state);
            let sub = st.subs.entry(query_id).or_insert_with(|| Sub {
                lease: String::new(),
                subscriber: Subscriber::new(),
            });
            sub.lease = lease_token.into();
            sub.subscriber.resubscribe();
        }
        self.send(ClientMessage::Subscribe(Subscribe {
            query_id,
            lease_token: lease_token.into(),
            mode: SubscribeMode::Normalized,
        }))
        .await
    }

    /// Ends a subscription; its copies are dropped.
    pub async fn unsubscribe(&self, query_id: u64) -> Result<(), TransportError> {
        lock(&self.state).subs.remove(&query_id);
        self.send(ClientMessage::Unsubscribe(Unsubscribe { query_id }))
            .await
    }

    /// The next event; `None` after [`ClientEvent::Closed`].
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// A copy of a subscription's table copies.
    pub fn replica(&self, query_id: u64) -> Option<Replica> {
        lock(&self.state)
            .subs
            .get(&query_id)
            .map(|s| s.subscriber.replica().clone())
    }

    /// The epoch of a subscription's current (or awaited) hello.
    pub fn epoch(&self, query_id: u64) -> Option<u64> {
        lock(&self.state)
            .subs
            .get(&query_id)
            .and_then(|s| s.subscriber.epoch())
    }

    /// The commit version a subscription's copies reflect.
    pub fn cv(&self, query_id: u64) -> Option<u64> {
        lock(&self.state)
            .subs
            .get(&query_id)
            .and_then(|s| s.subscriber.cv())
    }
}

/// Applies one server message; returns the events and the subscriptions to
/// send `subscribe` for again.
fn handle(state: &Mutex<State>, msg: ServerMessage) -> (Vec<ClientEvent>, Vec<(u64, String)>) {
    let mut st = lock(state);
    let mut events = Vec::new();
    let mut again = Vec::new();
    match msg {
        ServerMessage::NHello(h) => {
            let qid = h.query_id;
            if let Some(sub) = st.subs.get_mut(&qid)
                && let Err(error) = sub.subscriber.on_hello(&h.hello)
            {
                st.subs.remove(&qid);
                events.push(ClientEvent::Rejected {
                    query_id: qid,
                    error,
                });
            }
        }
        ServerMessage::NBatch(b) => {
            let qid = b.query_id;
            if let Some(sub) = st.subs.get_mut(&qid) {
                let reason = match sub.subscriber.on_batch(&b.batch) {
                    Ok(Verdict::Snapshot) => {
                        events.push(ClientEvent::Snapshot {
                            query_id: qid,
                            cv: b.batch.cv,
                        });
                        None
                    }
                    Ok(Verdict::Applied) => {
                        events.push(ClientEvent::Batch {
                            query_id: qid,
                            ops: b.batch.ops,
                            cv: b.batch.cv,
                        });
                        None
                    }
                    Ok(Verdict::Gap { expected, got }) => {
                        Some(format!("expected seq {expected}, got {got}"))
                    }
                    Ok(_) => None,
                    Err(e) => Some(e.to_string()),
                };
                if let Some(reason) = reason {
                    sub.subscriber.resubscribe();
                    again.push((qid, sub.lease.clone()));
                    events.push(ClientEvent::Resubscribing {
                        query_id: qid,
                        reason,
                    });
                }
            }
        }
        ServerMessage::QueryError(q) => {
            st.subs.remove(&q.query_id);
            events.push(ClientEvent::QueryError(q));
        }
        ServerMessage::Progress(p) => events.push(ClientEvent::Progress {
            cv_min: p.frame.cv_min,
        }),
        ServerMessage::Error(e) => events.push(ClientEvent::Error(e)),
        // Clients ignore message types they do not know.
        _ => {}
    }
    (events, again)
}

async fn read_quic_stream(mut rx: quinn::RecvStream, out: mpsc::Sender<ServerMessage>) {
    let mut reader = FrameReader::new(u64::MAX >> 1);
    while let Ok(Some(bytes)) = reader.next(&mut rx).await {
        match from_compact::<ServerMessage>(&bytes) {
            Ok(msg) => {
                if out.send(msg).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "undecodable frame from the server"),
        }
    }
}

/// A QUIC connection to `addr` that accepts only a certificate whose
/// SHA-256 is `pin_sha256`, speaking ALPN `rindle/1` — for clients that
/// speak the framing themselves.
pub async fn connect_quic_raw(
    addr: SocketAddr,
    pin_sha256: &str,
) -> Result<quinn::Connection, TransportError> {
    install_crypto();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            sha256: pin_sha256.to_ascii_lowercase(),
            provider,
        }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TransportError::Tls(e.to_string()))?;
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().map_err(|_| TransportError::Closed)?
    } else {
        "0.0.0.0:0".parse().map_err(|_| TransportError::Closed)?
    };
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| TransportError::Bind {
        addr: bind,
        message: e.to_string(),
    })?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = endpoint
        .connect(addr, "rindle")
        .map_err(|e| TransportError::Connect(e.to_string()))?;
    connecting.await.map_err(|e| {
        let text = e.to_string();
        if text.contains("pinned") {
            TransportError::Tls(text)
        } else {
            TransportError::Connect(text)
        }
    })
}

/// Accepts exactly one certificate, by the SHA-256 of its DER bytes; the
/// handshake signatures are still verified with that certificate's key.
#[derive(Debug)]
struct Pinned {
    sha256: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = cert_sha256_hex(end_entity);
        if got == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server certificate's SHA-256 {got} is not the pinned {}",
                self.sha256
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
