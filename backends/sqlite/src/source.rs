//! Tables read with SQL from a pinned snapshot, overlaid with the changes the
//! engine has applied since.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::Path;
use std::rc::Rc;

use rindle_core::{
    Catalog, ColumnType, CompareOp, Direction, FetchRequest, Predicate, Row, SortOrder, Source,
    SourceChange, SourceError, TableId, TableSchema, Value, ValueKind,
};
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, params_from_iter};

use crate::SqliteError;
use crate::convert::{quote, read_row, to_sql};

/// A read-only connection reading one snapshot at a time: every read sees the
/// database as of the moment the snapshot was pinned, until it is released.
///
/// A snapshot held forever would keep SQLite from ever resetting the WAL
/// (a checkpoint cannot move past a reader's snapshot), so the live layer
/// holds one only while a derivation needs it ([`Reader::pin_now`] at the
/// barrier, [`Reader::release`] once derived); other reads pin lazily at the
/// last commit and are released by the next [`Reader::release`].
pub(crate) struct Reader {
    conn: Connection,
    pinned: std::cell::Cell<bool>,
}

impl Reader {
    pub(crate) fn open(path: &Path) -> Result<Reader, SqliteError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // IEEE total order puts -0.0 below 0; the columns this backend reads
        // never hold it (see `convert`), but the tie-break keeps SQL's order
        // exactly the engine's for any value a request carries.
        conn.create_scalar_function(
            "rindle_negzero",
            1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| {
                Ok(match ctx.get_raw(0) {
                    ValueRef::Real(f) => i64::from(f == 0.0 && f.is_sign_negative()),
                    _ => 0,
                })
            },
        )?;
        conn.set_prepared_statement_cache_capacity(256);
        let r = Reader {
            conn,
            pinned: std::cell::Cell::new(false),
        };
        r.pin_now()?;
        Ok(r)
    }

    /// Pins the last committed state now, unless a snapshot is held already.
    pub(crate) fn pin_now(&self) -> Result<(), SqliteError> {
        if self.pinned.get() {
            return Ok(());
        }
        self.conn.execute_batch("BEGIN")?;
        // The snapshot is taken at the first read.
        if let Err(e) = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        self.pinned.set(true);
        Ok(())
    }

    /// Lets go of the snapshot; the next read pins the last committed state.
    pub(crate) fn release(&self) -> Result<(), SqliteError> {
        if !self.pinned.replace(false) {
            return Ok(());
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Moves to the last committed state now.
    pub(crate) fn repin(&self) -> Result<(), SqliteError> {
        self.release()?;
        self.pin_now()
    }

    /// The connection, inside a snapshot (pinned now if none is held).
    pub(crate) fn connection(&self) -> Result<&Connection, SqliteError> {
        self.pin_now()?;
        Ok(&self.conn)
    }
}

/// One registered table.
pub struct SqliteSource {
    schema: TableSchema,
    reader: Rc<Reader>,
    /// Changes applied since the snapshot: key -> the row now (None: deleted).
    overlay: BTreeMap<Vec<Value>, Option<Row>>,
    select: String,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> SourceError {
    SourceError::Backend(Box::new(e))
}

fn kind_of(ty: ColumnType) -> ValueKind {
    match ty {
        ColumnType::Boolean => ValueKind::Bool,
        ColumnType::Integer | ColumnType::Real => ValueKind::Number,
        _ => ValueKind::Text,
    }
}

impl SqliteSource {
    pub(crate) fn new(schema: TableSchema, reader: Rc<Reader>) -> SqliteSource {
        let cols: Vec<String> = schema.columns().iter().map(|c| quote(&c.name)).collect();
        let select = format!("SELECT {} FROM {}", cols.join(", "), quote(schema.name()));
        SqliteSource {
            schema,
            reader,
            overlay: BTreeMap::new(),
            select,
        }
    }

    pub(crate) fn clear_overlay(&mut self) {
        self.overlay.clear();
    }

    /// The SQL and parameters for a request: the constraint, a conservative
    /// range on the first order column (exact bounds are checked per row), and
    /// the order with -0.0 tie-breaks.
    /// The `column = literal` conjuncts of a filter that SQLite decides the
    /// same way the engine does: integer, boolean and text columns, literals
    /// of the column's kind. Rows failing them fail the filter, so leaving
    /// them to SQLite skips no row that passes.
    fn equalities<'p>(&self, p: &'p Predicate, out: &mut Vec<(usize, &'p Value)>) {
        match p {
            Predicate::And(ps) => {
                for q in ps {
                    self.equalities(q, out);
                }
            }
            Predicate::Compare {
                column,
                op: CompareOp::Eq,
                value,
            } => {
                let ty = self.schema.columns()[*column].ty;
                if matches!(
                    ty,
                    ColumnType::Integer | ColumnType::Boolean | ColumnType::Text
                ) && value.kind() == kind_of(ty)
                {
                    out.push((*column, value));
                }
            }
            _ => {}
        }
    }

    fn sql(&self, req: &FetchRequest<'_>) -> (String, Vec<rusqlite::types::Value>) {
        let cols = self.schema.columns();
        let mut sql = self.select.clone();
        let mut params = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        for (c, v) in req.constraint {
            if v.is_null() {
                conds.push(format!("{} IS NULL", quote(&cols[*c].name)));
            } else {
                params.push(to_sql(v));
                conds.push(format!("{} = ?{}", quote(&cols[*c].name), params.len()));
            }
        }
        // The filter's equalities go to SQLite too, so an index on them
        // (`issue(open, created)` for "open issues, newest first") serves
        // the fetch instead of a sort of the whole table.
        let mut equal = Vec::new();
        if let Some(f) = req.filter {
            self.equalities(f, &mut equal);
        }
        for (c, v) in equal {
            params.push(to_sql(v));
            conds.push(format!("{} = ?{}", quote(&cols[c].name), params.len()));
        }
        if let (Some(start), Some(&(c, dir))) = (req.start, req.order.keys().first()) {
            let v = &start.row[c];
            let col = quote(&cols[c].name);
            let ascending = (dir == Direction::Asc) != req.reverse;
            if v.is_null() {
                if !ascending {
                    conds.push(format!("{col} IS NULL"));
                }
            } else if v.kind() == kind_of(cols[c].ty) {
                params.push(to_sql(v));
                let p = params.len();
                conds.push(if ascending {
                    format!("{col} >= ?{p}")
                } else {
                    format!("({col} <= ?{p} OR {col} IS NULL)")
                });
            }
        }
        if !conds.is_empty() {
            write!(sql, " WHERE {}", conds.join(" AND ")).expect("write to a String");
        }
        let mut keys = Vec::new();
        for &(c, dir) in req.order.keys() {
            let asc = (dir == Direction::Asc) != req.reverse;
            let (d, nd) = if asc {
                ("ASC", "DESC")
            } else {
                ("DESC", "ASC")
            };
            let col = quote(&cols[c].name);
            keys.push(format!("{col} {d}"));
            if cols[c].ty == ColumnType::Real {
                keys.push(format!("rindle_negzero({col}) {nd}"));
            }
        }
        write!(sql, " ORDER BY {}", keys.join(", ")).expect("write to a String");
        (sql, params)
    }
}

impl Source for SqliteSource {
    fn schema(&self) -> &TableSchema {
        &self.schema
    }

    /// SQLite picks its own indexes; a request it cannot serve from one is
    /// sorted by SQLite, still correctly.
    fn prepare(&mut self, _order: &SortOrder, _constraint_columns: &[usize]) {}

    fn fetch(
        &self,
        req: &FetchRequest<'_>,
        sink: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let order = req.order;
        let mut extra: Vec<&Row> = self
            .overlay
            .values()
            .flatten()
            .filter(|r| req.admits(r))
            .collect();
        extra.sort_by(|a, b| {
            let o = order.compare(a, b);
            if req.reverse { o.reverse() } else { o }
        });
        let mut extra = extra.into_iter().peekable();
        let (sql, params) = self.sql(req);
        let mut stmt = self
            .reader
            .connection()
            .map_err(backend)?
            .prepare_cached(&sql)
            .map_err(backend)?;
        let mut rows = stmt.query(params_from_iter(params)).map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let row = read_row(&self.schema, r).map_err(backend)?;
            if !self.overlay.is_empty() && self.overlay.contains_key(&self.schema.key_of(&row)) {
                continue;
            }
            if !req.admits(&row) {
                continue;
            }
            while let Some(x) = extra.peek() {
                let o = order.compare(x, &row);
                let before = if req.reverse { o.is_gt() } else { o.is_lt() };
                if !before {
                    break;
                }
                if sink(extra.next().expect("peeked")).is_break() {
                    return Ok(());
                }
            }
            if sink(&row).is_break() {
                return Ok(());
            }
        }
        for x in extra {
            if sink(x).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn get(&self, key: &[Value]) -> Result<Option<Row>, SourceError> {
        let pk = self.schema.primary_key();
        if key.len() != pk.len() {
            return Ok(None);
        }
        if let Some(r) = self.overlay.get(key) {
            return Ok(r.clone());
        }
        let cols = self.schema.columns();
        let conds: Vec<String> = pk
            .iter()
            .enumerate()
            .map(|(n, &c)| format!("{} = ?{}", quote(&cols[c].name), n + 1))
            .collect();
        let sql = format!("{} WHERE {}", self.select, conds.join(" AND "));
        let mut stmt = self
            .reader
            .connection()
            .map_err(backend)?
            .prepare_cached(&sql)
            .map_err(backend)?;
        let mut rows = stmt
            .query(params_from_iter(key.iter().map(to_sql)))
            .map_err(backend)?;
        while let Some(r) = rows.next().map_err(backend)? {
            let row = read_row(&self.schema, r).map_err(backend)?;
            // SQL's `=` is looser than the engine's (affinity, 1 = true).
            if self.schema.key_of(&row) == key
                && pk.iter().zip(key).all(|(&c, v)| row[c].kind() == v.kind())
            {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    fn apply(&mut self, change: &SourceChange) -> Result<(), SourceError> {
        match change {
            SourceChange::Add(r) => {
                self.overlay.insert(self.schema.key_of(r), Some(r.clone()));
            }
            SourceChange::Remove(r) => {
                self.overlay.insert(self.schema.key_of(r), None);
            }
            SourceChange::Edit { old, new } => {
                self.overlay.insert(self.schema.key_of(old), None);
                self.overlay
                    .insert(self.schema.key_of(new), Some(new.clone()));
            }
        }
        Ok(())
    }
}

/// The registered tables of a SQLite database, all read through one pinned
/// reader.
pub struct SqliteCatalog {
    reader: Rc<Reader>,
    sources: Vec<SqliteSource>,
    names: BTreeMap<String, TableId>,
}

impl SqliteCatalog {
    /// A catalog of `tables` read from the committed state of the file at
    /// `path` as it is now (a one-shot read: the snapshot stays pinned).
    pub fn open(path: &Path, tables: &[TableSchema]) -> Result<SqliteCatalog, SqliteError> {
        let mut catalog = SqliteCatalog::new(Reader::open(path)?);
        for t in tables {
            catalog.add(t.clone());
        }
        Ok(catalog)
    }

    pub(crate) fn new(reader: Reader) -> SqliteCatalog {
        SqliteCatalog {
            reader: Rc::new(reader),
            sources: Vec::new(),
            names: BTreeMap::new(),
        }
    }

    pub(crate) fn add(&mut self, schema: TableSchema) -> TableId {
        if let Some(&id) = self.names.get(schema.name()) {
            return id;
        }
        let id = TableId(self.sources.len());
        self.names.insert(schema.name().to_string(), id);
        self.sources
            .push(SqliteSource::new(schema, self.reader.clone()));
        id
    }

    /// Moves every source to the last committed state: the overlays go and
    /// the snapshot is released (the next read pins the last commit).
    pub(crate) fn advance(&mut self) -> Result<(), SqliteError> {
        for s in &mut self.sources {
            s.clear_overlay();
        }
        self.reader.release()
    }

    /// Moves every source to the last committed state and pins it now, so
    /// later commits stay invisible until the next [`SqliteCatalog::advance`].
    pub(crate) fn hold(&mut self) -> Result<(), SqliteError> {
        self.advance()?;
        self.reader.pin_now()
    }

    pub(crate) fn reader(&self) -> &Reader {
        &self.reader
    }
}

impl Catalog for SqliteCatalog {
    fn table_id(&self, name: &str) -> Option<TableId> {
        self.names.get(name).copied()
    }

    fn source(&self, id: TableId) -> &dyn Source {
        &self.sources[id.0]
    }

    fn source_mut(&mut self, id: TableId) -> &mut dyn Source {
        &mut self.sources[id.0]
    }
}

/// A source over one table of an open database file, reading its committed
/// state (for the conformance suite and ad-hoc reads).
pub fn open_source(path: &Path, schema: TableSchema) -> Result<SqliteSource, SqliteError> {
    Ok(SqliteSource::new(schema, Rc::new(Reader::open(path)?)))
}
