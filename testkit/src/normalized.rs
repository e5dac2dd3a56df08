//! The normalized protocol as a subject: a server engine maintains the query's
//! footprint, the fold turns its changes into row operations, the publisher
//! frames them, each frame crosses an encoding (JSON and postcard, in turn),
//! a subscriber validates and applies it to its table copies, and the result
//! reported is the *original* query run from scratch over those copies.
//!
//! The harness compares that with the oracle; the subject also checks it
//! against the server's own live view of the query after every transaction,
//! so "the subscriber re-derives exactly the server's view" is what passes.

use rindle_core::protocol::{
    ClientMessage, Epochs, NormalizeFold, Publisher, ServerMessage, Subscriber, Verdict, footprint,
    from_compact, to_compact,
};
use rindle_core::{Ast, Engine, MemoryCatalog, QueryEvent, QueryId, TableSchema, View};
use serde_json::Value as Json;

use crate::data::{Model, TableData, Write};
use crate::harness::{Subject, SubjectError};
use crate::render::view_json;

const ORIGINAL: QueryId = QueryId(1);
const FOOTPRINT: QueryId = QueryId(2);

struct Live {
    engine: Engine<MemoryCatalog>,
    model: Model,
    server_view: View,
    fold: NormalizeFold,
    publisher: Publisher,
    subscriber: Subscriber,
    schemas: Vec<TableSchema>,
    query: Ast,
    cv: u64,
}

/// See the module docs.
#[derive(Default)]
pub struct NormalizedSubject {
    live: Option<Live>,
    frames: u64,
}

impl NormalizedSubject {
    /// A subject with nothing loaded.
    pub fn new() -> NormalizedSubject {
        NormalizedSubject::default()
    }

    /// Whether the protocol can carry `query` (see
    /// [`rindle_core::protocol::footprint`]).
    pub fn supports(query: &Ast) -> bool {
        footprint(query).is_ok()
    }
}

fn err(e: impl std::fmt::Display) -> SubjectError {
    SubjectError::from_display(e)
}

impl Live {
    /// Sends one server message through an encoding and back, alternating
    /// JSON and postcard, and hands it to the subscriber.
    fn deliver(&mut self, msg: ServerMessage, frames: &mut u64) -> Result<(), SubjectError> {
        *frames += 1;
        let decoded: ServerMessage = if frames.is_multiple_of(2) {
            let text = serde_json::to_string(&msg).map_err(err)?;
            serde_json::from_str(&text).map_err(err)?
        } else {
            from_compact(&to_compact(&msg).map_err(err)?).map_err(err)?
        };
        if decoded != msg {
            return Err(SubjectError(format!(
                "a frame changed crossing its encoding: {msg:?} became {decoded:?}"
            )));
        }
        let verdict = match &decoded {
            ServerMessage::NHello(h) => self.subscriber.on_hello(&h.hello),
            ServerMessage::NBatch(b) => self.subscriber.on_batch(&b.batch),
            other => return Err(SubjectError(format!("unexpected frame {other:?}"))),
        }
        .map_err(err)?;
        match verdict {
            Verdict::Hello | Verdict::Snapshot | Verdict::Applied => Ok(()),
            other => Err(SubjectError(format!("in-order frame judged {other:?}"))),
        }
    }

    /// The original query, hydrated from scratch over the subscriber's copies.
    fn local(&self) -> Result<Json, SubjectError> {
        let mut catalog = self
            .subscriber
            .replica()
            .to_catalog(&self.schemas)
            .map_err(err)?;
        // Tables the subscription does not copy are empty locally.
        for s in &self.schemas {
            if self.subscriber.replica().rows(s.name()).is_none() {
                catalog.add_table(s.clone()).map_err(err)?;
            }
        }
        let mut engine = Engine::new(catalog);
        let nodes = engine.add_query(ORIGINAL, &self.query).map_err(err)?;
        let format = engine.format(ORIGINAL).expect("just added").clone();
        let view = View::hydrated(format, &nodes).map_err(err)?;
        let local = view_json(&view);
        let server = view_json(&self.server_view);
        if local != server {
            return Err(SubjectError(format!(
                "the subscriber's re-derived result differs from the server's view at cv {}\n\
                 local:  {local}\nserver: {server}",
                self.cv
            )));
        }
        Ok(local)
    }
}

impl Subject for NormalizedSubject {
    fn name(&self) -> &str {
        "normalized"
    }

    fn start(&mut self, tables: &[TableData], query: &Ast) -> Result<Json, SubjectError> {
        let model = Model::new(tables).map_err(err)?;
        let mut catalog = MemoryCatalog::new();
        let mut schemas = Vec::new();
        for t in tables {
            let schema = t.schema().map_err(err)?;
            schemas.push(schema.clone());
            catalog.add_table(schema).map_err(err)?;
            for cells in &t.rows {
                catalog
                    .insert(&t.name, t.row(cells).map_err(err)?)
                    .map_err(err)?;
            }
        }
        let fp = footprint(query).map_err(err)?;
        let mut engine = Engine::new(catalog);
        let nodes = engine.add_query(ORIGINAL, query).map_err(err)?;
        let format = engine.format(ORIGINAL).expect("just added").clone();
        let server_view = View::hydrated(format, &nodes).map_err(err)?;
        let fp_nodes = engine.add_query(FOOTPRINT, &fp.query).map_err(err)?;
        let fp_format = engine.format(FOOTPRINT).expect("just added").clone();
        let mut fold = NormalizeFold::new(fp_format).map_err(err)?;
        let snapshot = fold.hydrate(&fp_nodes).map_err(err)?;
        let shapes = fp.shapes(&schemas).map_err(err)?;
        let mut epochs = Epochs::new();
        // The client's subscribe crosses the wire too.
        let subscribe: ClientMessage = serde_json::from_str(
            r#"{"t":"subscribe","queryId":1,"leaseToken":"t","mode":"normalized"}"#,
        )
        .map_err(err)?;
        let ClientMessage::Subscribe(sub) = subscribe else {
            return Err(SubjectError("subscribe did not decode".into()));
        };
        let (mut publisher, hello) =
            Publisher::new(sub.query_id, epochs.next(sub.query_id), "boot", shapes).map_err(err)?;
        let first = publisher.snapshot(snapshot, 0).map_err(err)?;
        let mut live = Live {
            engine,
            model,
            server_view,
            fold,
            publisher,
            subscriber: Subscriber::new(),
            schemas,
            query: query.clone(),
            cv: 0,
        };
        live.deliver(ServerMessage::NHello(hello), &mut self.frames)?;
        live.deliver(ServerMessage::NBatch(first), &mut self.frames)?;
        let out = live.local()?;
        self.live = Some(live);
        Ok(out)
    }

    fn step(&mut self, tx: &[Write]) -> Result<Json, SubjectError> {
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| SubjectError("step before start".into()))?;
        for w in tx {
            let change = live.model.apply(w).map_err(err)?;
            live.engine.push(&w.table, change).map_err(err)?;
        }
        live.cv += 1;
        let mut footprint_changes = Vec::new();
        for event in live.engine.drain() {
            match event {
                QueryEvent::Changed { query, changes } if query == ORIGINAL => {
                    live.server_view.apply_all(&changes).map_err(err)?;
                }
                QueryEvent::Changed { changes, .. } => footprint_changes = changes,
                other => return Err(SubjectError(format!("unexpected event {other:?}"))),
            }
        }
        let ops = live.fold.apply(&footprint_changes).map_err(err)?;
        // An empty transaction sends nothing; the local re-derivation below
        // proves that was right.
        if let Some(batch) = live.publisher.batch(ops, live.cv).map_err(err)? {
            live.deliver(ServerMessage::NBatch(batch), &mut self.frames)?;
        }
        live.local()
    }
}
