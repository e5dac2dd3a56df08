//! The C entry points: every unsafe operation of the crate is here.
//!
//! Rules every function keeps: no panic crosses the boundary (each body runs
//! under `catch_unwind` and a panic becomes `RINDLE_ERR_INTERNAL`); null
//! pointers and non-UTF-8 strings are refused with `RINDLE_ERR_ARGUMENT`; a
//! handle is used only on the thread that opened its database
//! (`RINDLE_ERR_THREAD` otherwise), because the engine is single-threaded.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::ThreadId;

use crate::{Database, Error, LiveQuery, RindleStatus};

/// An open database (opaque).
pub struct RindleDb {
    thread: ThreadId,
    inner: Database,
}

/// A live query (opaque).
pub struct RindleQuery {
    thread: ThreadId,
    inner: LiveQuery,
}

/// Receives each update of a subscription as UTF-8 JSON (`len` bytes, also
/// NUL-terminated), valid only during the call.
pub type RindleUpdateCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, json: *const c_char, len: usize)>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Runs `f`, turning an error or a panic into a status and the last error.
fn guard(f: impl FnOnce() -> Result<(), Error>) -> RindleStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_last_error("");
            RindleStatus::RindleOk
        }
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(_) => {
            set_last_error("internal error: Rindle panicked; close this database");
            RindleStatus::RindleErrInternal
        }
    }
}

fn argument(what: &str) -> Error {
    Error::new(RindleStatus::RindleErrArgument, what)
}

/// A borrowed C string as `&str`.
///
/// # Safety
/// `s` is null or points to a NUL-terminated string that outlives the call.
unsafe fn text<'a>(s: *const c_char, what: &str) -> Result<&'a str, Error> {
    if s.is_null() {
        return Err(argument(&format!("{what} is null")));
    }
    // SAFETY: non-null, and the caller promises a NUL-terminated string that
    // lives for the call.
    let c = unsafe { CStr::from_ptr(s) };
    c.to_str()
        .map_err(|_| argument(&format!("{what} is not UTF-8")))
}

/// Refuses a handle owned by another thread.
fn owner(thread: ThreadId, what: &str) -> Result<(), Error> {
    if thread == std::thread::current().id() {
        Ok(())
    } else {
        Err(Error::new(
            RindleStatus::RindleErrThread,
            format!("this {what} belongs to another thread"),
        ))
    }
}

/// # Safety
/// `db` is null or a pointer returned by a `rindle_open_*` function and not yet
/// closed.
unsafe fn db_ref<'a>(db: *const RindleDb) -> Result<&'a Database, Error> {
    // SAFETY: the caller promises a live handle or null; `as_ref` maps null to None.
    let db = unsafe { db.as_ref() }.ok_or_else(|| argument("db is null"))?;
    owner(db.thread, "database")?;
    Ok(&db.inner)
}

/// # Safety
/// `q` is null or a pointer returned by `rindle_query` and not yet freed.
unsafe fn query_ref<'a>(q: *const RindleQuery) -> Result<&'a LiveQuery, Error> {
    // SAFETY: the caller promises a live handle or null.
    let q = unsafe { q.as_ref() }.ok_or_else(|| argument("query is null"))?;
    owner(q.thread, "query")?;
    Ok(&q.inner)
}

/// Stores a new handle in `*out`.
///
/// # Safety
/// `out` is null or valid for a pointer write.
unsafe fn put<T>(out: *mut *mut T, value: T) -> Result<(), Error> {
    if out.is_null() {
        return Err(argument("out is null"));
    }
    // SAFETY: non-null and, by the caller's promise, writable.
    unsafe { out.write(Box::into_raw(Box::new(value))) };
    Ok(())
}

/// Stores a value in an optional out-parameter.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
unsafe fn put_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null and, by the caller's promise, writable.
        unsafe { out.write(value) };
    }
}

fn open(out: *mut *mut RindleDb, f: impl FnOnce() -> Result<Database, Error>) -> RindleStatus {
    guard(|| {
        let inner = f()?;
        let db = RindleDb {
            thread: std::thread::current().id(),
            inner,
        };
        // SAFETY: `out` comes straight from the caller of the entry point,
        // whose contract is `put`'s.
        unsafe { put(out, db) }
    })
}

/// Opens a database held in memory. On success `*out` is the handle, to be
/// closed with `rindle_close`.
///
/// # Safety
/// `out` must be valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_open_memory(out: *mut *mut RindleDb) -> RindleStatus {
    open(out, Database::open_memory)
}

/// Opens (or creates) the SQLite database at `path`.
///
/// # Safety
/// `path` must be a NUL-terminated string; `out` valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_open_sqlite(
    path: *const c_char,
    out: *mut *mut RindleDb,
) -> RindleStatus {
    open(out, || {
        // SAFETY: the caller's contract.
        let path = unsafe { text(path, "path") }?;
        Database::open_sqlite(path)
    })
}

/// Opens (or creates) the redb database at `path`.
///
/// # Safety
/// `path` must be a NUL-terminated string; `out` valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_open_redb(
    path: *const c_char,
    out: *mut *mut RindleDb,
) -> RindleStatus {
    open(out, || {
        // SAFETY: the caller's contract.
        let path = unsafe { text(path, "path") }?;
        Database::open_redb(path)
    })
}

/// Closes a database. Queries opened from it stay valid to free, and report
/// `RINDLE_ERR_BUSY` for anything else. Null is ignored.
///
/// Called on another thread than the one that opened it, it frees nothing
/// (the message is in `rindle_last_error()`).
///
/// # Safety
/// `db` must be null or a handle from `rindle_open_*`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_close(db: *mut RindleDb) {
    if db.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller promises a live handle.
        if let Err(e) = owner(unsafe { &*db }.thread, "database") {
            // Freeing it here would race its thread: leak it instead.
            set_last_error(&format!("rindle_close: {}; not closed", e.message));
            return;
        }
        // SAFETY: the handle came from `Box::into_raw` in `open` and the
        // caller gives it up.
        drop(unsafe { Box::from_raw(db) });
    }));
}

/// Registers a table from its JSON definition: memory and redb take
/// `{"name", "columns": [{"name", "type", "nullable"}], "primaryKey"}`;
/// SQLite takes `{"name", "createSql"?}` and reads the table's columns.
///
/// # Safety
/// `db` a live handle; `table_json` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_register_table(
    db: *const RindleDb,
    table_json: *const c_char,
) -> RindleStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let (db, json) = unsafe { (db_ref(db)?, text(table_json, "table_json")?) };
        db.register_table(json)
    })
}

/// Runs SQL in one committed transaction (SQLite databases only).
/// `params_json` is null (then `sql` may hold several `;`-separated
/// statements) or a JSON array of parameters for one statement. The
/// transaction id is stored in `*tx_id` when it is not null.
///
/// # Safety
/// `db` a live handle; `sql` a NUL-terminated string; `params_json` null or a
/// NUL-terminated string; `tx_id` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_execute_sql(
    db: *const RindleDb,
    sql: *const c_char,
    params_json: *const c_char,
    tx_id: *mut u64,
) -> RindleStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let (db, sql) = unsafe { (db_ref(db)?, text(sql, "sql")?) };
        let params = if params_json.is_null() {
            None
        } else {
            // SAFETY: non-null, and the caller's contract.
            Some(unsafe { text(params_json, "params_json") }?)
        };
        let id = db.execute_sql(sql, params)?;
        // SAFETY: the caller's contract.
        unsafe { put_opt(tx_id, id) };
        Ok(())
    })
}

/// Applies a JSON array of row writes in one transaction, all or none:
/// `[{"op": "insert" | "update" | "delete", "table": "...", "row": {...}}]`
/// (a row is an object by column name or an array in column order; a delete
/// needs only the key columns).
///
/// # Safety
/// `db` a live handle; `ops_json` a NUL-terminated string; `tx_id` null or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_write(
    db: *const RindleDb,
    ops_json: *const c_char,
    tx_id: *mut u64,
) -> RindleStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let (db, ops) = unsafe { (db_ref(db)?, text(ops_json, "ops_json")?) };
        let id = db.write(ops)?;
        // SAFETY: the caller's contract.
        unsafe { put_opt(tx_id, id) };
        Ok(())
    })
}

/// Registers and hydrates a live query from its AST JSON. On success `*out`
/// is the handle, to be freed with `rindle_query_free`.
///
/// # Safety
/// `db` a live handle; `ast_json` a NUL-terminated string; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_query(
    db: *const RindleDb,
    ast_json: *const c_char,
    out: *mut *mut RindleQuery,
) -> RindleStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let (db, ast) = unsafe { (db_ref(db)?, text(ast_json, "ast_json")?) };
        let inner = db.query(ast)?;
        let q = RindleQuery {
            thread: std::thread::current().id(),
            inner,
        };
        // SAFETY: the caller's contract.
        unsafe { put(out, q) }
    })
}

/// Subscribes to a query: `callback` is called at once with
/// `{"type":"hydrated",...}` and then, during each `rindle_write` or
/// `rindle_execute_sql` that changes the result, with
/// `{"type":"changed",...}`, until the query is freed. `user_data` is passed
/// back unchanged.
///
/// # Safety
/// `query` a live handle; `callback` a function safe to call with `user_data`
/// until the query is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_subscribe(
    query: *const RindleQuery,
    callback: RindleUpdateCallback,
    user_data: *mut c_void,
) -> RindleStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let q = unsafe { query_ref(query) }?;
        let callback = callback.ok_or_else(|| argument("callback is null"))?;
        q.subscribe(move |json: &str| {
            let Ok(c) = CString::new(json) else { return };
            // SAFETY: the caller promised the callback may be called with
            // `user_data`; the string lives until it returns.
            unsafe { callback(user_data, c.as_ptr(), json.len()) };
        })
    })
}

/// Reads a query's current result as JSON into `*out` (NUL-terminated, to be
/// freed with `rindle_string_free`).
///
/// # Safety
/// `query` a live handle; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_read(
    query: *const RindleQuery,
    out: *mut *mut c_char,
) -> RindleStatus {
    guard(|| {
        // SAFETY: the caller's contract.
        let q = unsafe { query_ref(query) }?;
        if out.is_null() {
            return Err(argument("out is null"));
        }
        let json = q.read()?;
        let c = CString::new(json).map_err(|_| argument("result holds a NUL"))?;
        // SAFETY: non-null and writable by the caller's contract.
        unsafe { out.write(c.into_raw()) };
        Ok(())
    })
}

/// Frees a string returned by Rindle. Null is ignored.
///
/// # Safety
/// `s` null or a string from `rindle_read`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: `s` came from `CString::into_raw` in `rindle_read`.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Unregisters and frees a query; its subscriptions end. Null is ignored.
///
/// Called on another thread than its database's, it frees nothing.
///
/// # Safety
/// `query` null or a handle from `rindle_query`, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rindle_query_free(query: *mut RindleQuery) {
    if query.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller promises a live handle.
        if let Err(e) = owner(unsafe { &*query }.thread, "query") {
            set_last_error(&format!("rindle_query_free: {}; not freed", e.message));
            return;
        }
        // SAFETY: the handle came from `Box::into_raw` in `rindle_query`.
        drop(unsafe { Box::from_raw(query) });
    }));
}

/// The message of the last failed call on this thread ("" after a success),
/// valid until the next call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn rindle_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}
