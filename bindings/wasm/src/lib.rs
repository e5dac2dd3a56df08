//! Rindle's engine in JavaScript (wasm-bindgen): in-memory tables, live
//! views from AST JSON, changes pushed in, views kept current by incremental
//! view maintenance, results read as plain JS objects.
//!
//! ```js
//! const engine = new Engine();
//! engine.addTable({ name: "issue", columns: [...], primaryKey: ["id"] }, rows);
//! const v = engine.view({ table: "issue", orderBy: [["id", "asc"]] });
//! engine.subscribe(v, data => render(data));
//! engine.push("issue", { op: "add", row: { id: 3, title: "new" } });
//! engine.flush();                    // listeners of changed views run here
//! ```
//!
//! Errors are JS `Error`s with a `kind`: `"json"`, `"schema"`, `"row"`,
//! `"query"`, `"view"`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

mod to_js;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Display;

use js_sys::{Array, JSON, Object, Reflect};
use rindle_core::read::{self, ReadError};
use rindle_core::{
    Ast, Catalog, Json, MemoryCatalog, QueryEvent, QueryId, ResultJson, Row, RowSeed, SourceChange,
    TableSchema, View,
};
use wasm_bindgen::prelude::*;

/// A JS `Error` with a `kind`. (The message as `&dyn Display`: one copy of
/// this function, not one per message type.)
fn error(kind: &str, message: &dyn Display) -> JsValue {
    let e = js_sys::Error::new(&message.to_string());
    let _ = Reflect::set(&e, &"kind".into(), &kind.into());
    e.into()
}

/// Nesting deeper than this is refused (the walk below recurses).
const MAX_DEPTH: u32 = 128;

/// A JS value as a JSON tree; a string is taken as JSON text. JS parses the
/// text and Rust walks the objects, so the module carries no JSON parser.
fn json_tree(v: &JsValue) -> Result<Json, JsValue> {
    match v.as_string() {
        Some(text) => {
            let parsed = JSON::parse(&text).map_err(|e| {
                let why = js_sys::Error::from(e).message();
                error(
                    "json",
                    &format_args!("malformed JSON: {}", String::from(why)),
                )
            })?;
            walk(&parsed, 0)
        }
        None => walk(v, 0),
    }
}

fn walk(v: &JsValue, depth: u32) -> Result<Json, JsValue> {
    if depth > MAX_DEPTH {
        return Err(error("json", &"the value is nested too deeply"));
    }
    if v.is_null() {
        return Ok(Json::Null);
    }
    if let Some(b) = v.as_bool() {
        return Ok(Json::Bool(b));
    }
    if let Some(x) = v.as_f64() {
        // JS has one number type: integral values within 2^53 are integers.
        if js_sys::Number::is_safe_integer(v) {
            return Ok(Json::Int(x as i64));
        }
        if !x.is_finite() {
            return Err(error("json", &"NaN and infinities are not JSON"));
        }
        return Ok(Json::Float(x));
    }
    if let Some(s) = v.as_string() {
        return Ok(Json::Text(s));
    }
    if Array::is_array(v) {
        let array: &Array = v.unchecked_ref();
        return array
            .iter()
            .map(|x| walk(&x, depth + 1))
            .collect::<Result<_, _>>()
            .map(Json::Array);
    }
    if v.is_object() && !v.is_function() {
        let object: &Object = v.unchecked_ref();
        let mut pairs = Vec::new();
        for key in Object::keys(object).iter() {
            let value = Reflect::get(object, &key)?;
            if value.is_undefined() {
                continue; // as JSON.stringify leaves such keys out
            }
            let name = key.as_string().unwrap_or_default();
            pairs.push((name, walk(&value, depth + 1)?));
        }
        return Ok(Json::Object(pairs));
    }
    Err(error(
        "json",
        &"not a JSON value (undefined, a function, a symbol or a bigint)",
    ))
}

/// Reads a JS value with a core reader; `what` names it in errors.
fn parse<T>(
    v: &JsValue,
    what: &str,
    read: fn(&Json) -> Result<T, ReadError>,
) -> Result<T, JsValue> {
    let tree = json_tree(v)?;
    read(&tree).map_err(|e| error("json", &format_args!("{what}: {e}")))
}

/// `{name, columns, primaryKey}`.
struct TableDef {
    name: String,
    columns: Vec<rindle_core::Column>,
    primary_key: Vec<String>,
}

fn table_def(v: &Json) -> Result<TableDef, ReadError> {
    let f = read::Object::new(v, "a table object", &["name", "columns", "primaryKey"])?;
    Ok(TableDef {
        name: f.need("name", read::string)?,
        columns: f.need("columns", |v| read::list(v, rindle_core::Column::from_json))?,
        primary_key: f.need("primaryKey", read::strings)?,
    })
}

/// `{op: "add" | "remove" | "edit", row}`.
struct Push {
    op: usize,
    row: Json,
}

const ADD: usize = 0;
const REMOVE: usize = 1;

fn push_def(v: &Json) -> Result<Push, ReadError> {
    let f = read::Object::new(v, "a change object", &["op", "row"])?;
    Ok(Push {
        op: f.need("op", |v| read::one_of(v, "op", &["add", "remove", "edit"]))?,
        row: f.need("row", |v| Ok(v.clone()))?,
    })
}

/// An engine over in-memory tables, with its views.
#[wasm_bindgen]
pub struct Engine {
    engine: rindle_core::Engine<MemoryCatalog>,
    /// Slot `id - 1` holds view `id`; ids are never reused.
    views: Vec<Slot>,
}

/// What became of a view.
enum Slot {
    Live(View),
    /// Its query failed; the reason is reported on use.
    Faulted(String),
    Removed,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    fn schema(&self, table: &str) -> Result<TableSchema, JsValue> {
        self.engine
            .catalog()
            .table(table)
            .map(|t| rindle_core::Source::schema(t).clone())
            .ok_or_else(|| error("schema", &format_args!("no table `{table}`")))
    }

    fn row(schema: &TableSchema, json: &Json) -> Result<Row, JsValue> {
        let row = RowSeed::new(schema)
            .read(json)
            .map_err(|e| error("row", &e))?;
        schema.check_row(&row).map_err(|e| error("row", &e))?;
        Ok(schema.normalize(row))
    }

    fn stored(&self, schema: &TableSchema, row: &Row) -> Result<Row, JsValue> {
        let source = self
            .engine
            .catalog()
            .table_id(schema.name())
            .map(|id| self.engine.catalog().source(id));
        source
            .and_then(|s| s.get(&schema.key_of(row)).ok().flatten())
            .ok_or_else(|| {
                error(
                    "row",
                    &format_args!("no row with this key in `{}`", schema.name()),
                )
            })
    }

    fn view_mut(&mut self, id: u32) -> Result<&mut View, JsValue> {
        match self.slot(u64::from(id)) {
            Some(Slot::Live(view)) => Ok(view),
            Some(Slot::Faulted(why)) => {
                Err(error("view", &format_args!("view {id} failed: {why}")))
            }
            _ => Err(error("view", &format_args!("no view {id}"))),
        }
    }

    fn slot(&mut self, id: u64) -> Option<&mut Slot> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.views.get_mut(index)
    }
}

#[wasm_bindgen]
impl Engine {
    /// An engine with no tables.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Engine {
        Engine {
            engine: rindle_core::Engine::new(MemoryCatalog::new()),
            views: Vec::new(),
        }
    }

    /// Adds a table (`{name, columns: [{name, type, nullable}], primaryKey}`)
    /// with its initial rows (objects by column name or arrays).
    #[wasm_bindgen(js_name = addTable)]
    pub fn add_table(&mut self, schema: JsValue, rows: JsValue) -> Result<(), JsValue> {
        let def = parse(&schema, "table", table_def)?;
        let pk: Vec<&str> = def.primary_key.iter().map(String::as_str).collect();
        let schema =
            TableSchema::new(&def.name, def.columns, &pk).map_err(|e| error("schema", &e))?;
        let rows = if rows.is_undefined() || rows.is_null() {
            Vec::new()
        } else {
            match json_tree(&rows)? {
                Json::Array(rows) => rows,
                _ => return Err(error("json", &"rows: expected an array of rows")),
            }
        };
        let mut source = rindle_core::MemorySource::new(schema.clone());
        for r in &rows {
            source
                .insert(Engine::row(&schema, r)?)
                .map_err(|e| error("row", &e))?;
        }
        let catalog = self.engine.catalog_mut();
        if catalog.table(schema.name()).is_some() {
            return Err(error(
                "schema",
                &format_args!("table `{}` exists", schema.name()),
            ));
        }
        catalog.add_table(schema).map_err(|e| error("schema", &e))?;
        for row in source.rows() {
            // Initial rows go in before any view reads the table.
            self.engine
                .catalog_mut()
                .insert(&def.name, row)
                .map_err(|e| error("row", &e))?;
        }
        Ok(())
    }

    /// Builds and hydrates a view from AST JSON; returns its id.
    pub fn view(&mut self, ast: JsValue) -> Result<u32, JsValue> {
        let ast = parse(&ast, "query", Ast::from_json)?;
        let id =
            u32::try_from(self.views.len() + 1).map_err(|_| error("view", &"too many views"))?;
        let nodes = self
            .engine
            .add_query(QueryId(id.into()), &ast)
            .map_err(|e| error("query", &e))?;
        let format = self
            .engine
            .format(QueryId(id.into()))
            .cloned()
            .ok_or_else(|| error("query", &"the query vanished"))?;
        let view = View::hydrated(format, &nodes).map_err(|e| error("query", &e))?;
        self.views.push(Slot::Live(view));
        Ok(id)
    }

    /// Drops a view.
    #[wasm_bindgen(js_name = removeView)]
    pub fn remove_view(&mut self, id: u32) -> bool {
        self.engine.remove_query(QueryId(u64::from(id)));
        match self.slot(u64::from(id)) {
            Some(slot @ (Slot::Live(_) | Slot::Faulted(_))) => {
                *slot = Slot::Removed;
                true
            }
            _ => false,
        }
    }

    /// Pushes one change: `{op: "add", row}`, `{op: "remove", row}` (the key
    /// columns suffice) or `{op: "edit", row}` (the new row; the old one is
    /// found by key). Views are updated now; listeners run at `flush`.
    pub fn push(&mut self, table: &str, change: JsValue) -> Result<(), JsValue> {
        let push = parse(&change, "change", push_def)?;
        let schema = self.schema(table)?;
        let change = match push.op {
            ADD => SourceChange::Add(Engine::row(&schema, &push.row)?),
            REMOVE => {
                let probe = RowSeed::new(&schema)
                    .read(&push.row)
                    .map_err(|e| error("row", &e))?;
                SourceChange::Remove(self.stored(&schema, &probe)?)
            }
            _ => {
                let new = Engine::row(&schema, &push.row)?;
                SourceChange::Edit {
                    old: self.stored(&schema, &new)?,
                    new,
                }
            }
        };
        self.engine
            .push(table, change)
            .map_err(|e| error("row", &e))?;
        for event in self.engine.drain() {
            match event {
                QueryEvent::Changed { query, changes } => {
                    if let Some(Slot::Live(view)) = self.slot(query.0) {
                        view.apply_all(&changes).map_err(|e| error("view", &e))?;
                    }
                }
                QueryEvent::Faulted { query, error: e } => {
                    // The other views go on; this one reports why on use.
                    if let Some(slot) = self.slot(query.0) {
                        *slot = Slot::Faulted(e.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Notifies the listeners of every view that changed since the last
    /// flush; returns how many views did.
    pub fn flush(&mut self) -> u32 {
        let mut n = 0;
        for slot in &mut self.views {
            if let Slot::Live(view) = slot
                && view.flush()
            {
                n += 1;
            }
        }
        n
    }

    /// A view's current result as plain JS objects.
    pub fn data(&mut self, id: u32) -> Result<JsValue, JsValue> {
        let view = self.view_mut(id)?;
        to_js(view)
    }

    /// Calls `listener(data)` after each flush that changed the view, until
    /// the view is removed.
    pub fn subscribe(&mut self, id: u32, listener: js_sys::Function) -> Result<(), JsValue> {
        let view = self.view_mut(id)?;
        view.subscribe(move |v: &View| {
            if let Ok(data) = to_js(v) {
                let _ = listener.call1(&JsValue::NULL, &data);
            }
        });
        Ok(())
    }
}

fn to_js(view: &View) -> Result<JsValue, JsValue> {
    let nodes = view.to_nodes();
    to_js::JsSerializer::to_js(&ResultJson::new(view.format(), &nodes))
        .map_err(|e| error("json", &e))
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic is a bug; in the browser build it traps (the JS caller sees a
/// `RuntimeError: unreachable`) without carrying std's panic machinery.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}
