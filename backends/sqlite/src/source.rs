//! Tables read with SQL from a pinned snapshot, overlaid with the changes the
//! engine has applied since.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::{Bound, ControlFlow};
use std::path::Path;
use std::rc::Rc;

use rindle_core::{
    Catalog, ColumnType, CompareOp, Direction, FetchRequest, Predicate, Row, SortOrder, Source,
    SourceChange, SourceError, Start, StartBasis, TableId, TableSchema, Value, ValueKind,
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
///
/// The changes applied since the snapshot are held in an overlay that fetches
/// merge with SQL's rows. A write transaction can put any number of rows
/// there (one `INSERT ... SELECT` of 100,000 rows, each pushed through the
/// live queries before the next is applied), so the overlay is kept the way
/// fetches read it: for every (order, constraint columns) shape announced by
/// [`Source::prepare`], its present rows per partition in that order. A
/// fetch then range-scans the one partition from its start bound, lazily,
/// and stops with the caller: its cost does not grow with the number of
/// changes already applied. (The indexes are filled once the overlay holds
/// more than a few rows; below that, fetches sort the few.) Likewise the
/// snapshot's rows that the overlay shadows: fetches remember the runs of
/// them they read (per SQL stream) and resume SQL past a known run, so each
/// is read about once per transaction rather than once per fetch.
pub struct SqliteSource {
    schema: TableSchema,
    reader: Rc<Reader>,
    /// Changes applied since the snapshot: key -> the row now (None: deleted).
    overlay: BTreeMap<Vec<Value>, Option<Row>>,
    /// The overlay's present rows, per prepared shape; filled once the
    /// overlay holds more than [`INDEX_AFTER`] keys.
    indexes: Vec<OverlayIndex>,
    /// Whether `indexes` hold the overlay's rows.
    indexed: bool,
    /// Runs of the snapshot's rows that fetches found shadowed by the
    /// overlay, per SQL stream (see [`Gaps`]); cleared with the overlay.
    gaps: RefCell<BTreeMap<StreamKey, Gaps>>,
    select: String,
}

/// A SQL stream: the statement without its start condition, and its
/// parameters. Fetches of one stream read the same rows in the same order,
/// from different starts.
type StreamKey = (String, Vec<Value>);

/// The overlay size from which its rows are kept in the prepared orders.
const INDEX_AFTER: usize = 32;

/// The shortest run of undeliverable rows worth remembering.
const GAP_MIN: usize = 4;

/// What fetches of one SQL stream learnt while the overlay is non-empty:
/// runs of consecutive rows none of which a fetch of the stream can deliver
/// (each is shadowed by the overlay or outside the constraint).
///
/// The snapshot does not change while the overlay grows, and a key once in
/// the overlay stays there until both are cleared, so a run stays
/// undeliverable until then. A fetch whose start lies in a run, or whose
/// scan reaches one, resumes the SQL after it instead of reading it again:
/// a transaction that deletes many rows and writes into the space they left
/// (`DELETE FROM t` then an insert of as many rows) reads each deleted row
/// about once per stream instead of once per fetch.
#[derive(Debug)]
struct Gaps {
    /// The stream's order: the request's, flipped when it reads backwards.
    order: Rc<SortOrder>,
    /// First row -> last row (inclusive) of each run; runs are disjoint.
    runs: BTreeMap<Ranked, Row>,
}

impl Gaps {
    /// The run holding the position of `row`, as (first, last).
    fn around(&self, row: &Row) -> Option<(Row, Row)> {
        let probe = Ranked {
            row: row.clone(),
            order: self.order.clone(),
        };
        let (first, last) = self.runs.range(..=probe).next_back()?;
        self.order
            .compare(row, last)
            .is_le()
            .then(|| (first.row.clone(), last.clone()))
    }

    /// Records that the rows from `first` through `last` are a run, merged
    /// with the runs it touches.
    fn record(&mut self, first: Row, mut last: Row) {
        let mut first = Ranked {
            row: first,
            order: self.order.clone(),
        };
        if let Some((lo, hi)) = self.runs.range(..=first.clone()).next_back()
            && self.order.compare(&first.row, hi).is_le()
        {
            if self.order.compare(hi, &last).is_gt() {
                last = hi.clone();
            }
            first = lo.clone();
        }
        let inside: Vec<Ranked> = self
            .runs
            .range(first.clone()..)
            .take_while(|(lo, _)| self.order.compare(&lo.row, &last).is_le())
            .map(|(lo, _)| lo.clone())
            .collect();
        for lo in inside {
            if let Some(hi) = self.runs.remove(&lo)
                && self.order.compare(&hi, &last).is_gt()
            {
                last = hi;
            }
        }
        self.runs.insert(first, last);
    }
}

/// A run of undeliverable rows being read.
struct Run {
    first: Row,
    last: Row,
    len: usize,
}

/// A row ordered by a shared order, so overlay rows live in ordered sets.
#[derive(Clone, Debug)]
struct Ranked {
    row: Row,
    order: Rc<SortOrder>,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order.compare(&self.row, &other.row)
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked {}

/// The overlay's present rows for one prepared shape: for each value of the
/// constraint columns, the rows with those values in `order` (a total order,
/// so a row's place identifies it).
#[derive(Debug)]
struct OverlayIndex {
    order: Rc<SortOrder>,
    /// Sorted ascending, without repeats.
    constraint: Vec<usize>,
    partitions: BTreeMap<Vec<Value>, BTreeSet<Ranked>>,
}

impl OverlayIndex {
    /// Adds every present row of `overlay`.
    fn fill(&mut self, overlay: &BTreeMap<Vec<Value>, Option<Row>>) {
        for row in overlay.values().flatten() {
            self.insert(row);
        }
    }

    fn partition_of(&self, row: &[Value]) -> Vec<Value> {
        self.constraint.iter().map(|&c| row[c].clone()).collect()
    }

    fn insert(&mut self, row: &Row) {
        let entry = Ranked {
            row: row.clone(),
            order: self.order.clone(),
        };
        self.partitions
            .entry(self.partition_of(row))
            .or_default()
            .insert(entry);
    }

    fn remove(&mut self, row: &Row) {
        let key = self.partition_of(row);
        if let Some(set) = self.partitions.get_mut(&key) {
            set.remove(&Ranked {
                row: row.clone(),
                order: self.order.clone(),
            });
            if set.is_empty() {
                self.partitions.remove(&key);
            }
        }
    }

    /// The partition's rows inside `req`'s start bound, in `req`'s direction,
    /// read lazily. `req.constraint` names this index's columns (and maybe
    /// more: those are checked by the caller); `None` when no row can match
    /// (an empty partition, or a column named twice with different values).
    fn scan<'s>(
        &'s self,
        req: &FetchRequest<'_>,
    ) -> Option<Box<dyn Iterator<Item = &'s Row> + 's>> {
        let mut key = Vec::with_capacity(self.constraint.len());
        for &c in &self.constraint {
            let mut vals = req
                .constraint
                .iter()
                .filter(|(k, _)| *k == c)
                .map(|(_, v)| v);
            let v = vals.next()?;
            if vals.any(|w| w != v) {
                return None;
            }
            key.push(v.clone());
        }
        let set = self.partitions.get(&key)?;
        let bound = req.start.map(|s| {
            let probe = Ranked {
                row: s.row.clone(),
                order: self.order.clone(),
            };
            match s.basis {
                StartBasis::At => Bound::Included(probe),
                StartBasis::After => Bound::Excluded(probe),
            }
        });
        Some(match (bound, req.reverse) {
            (None, false) => Box::new(set.iter().map(|r| &r.row)),
            (None, true) => Box::new(set.iter().rev().map(|r| &r.row)),
            (Some(b), false) => Box::new(set.range((b, Bound::Unbounded)).map(|r| &r.row)),
            (Some(b), true) => Box::new(set.range((Bound::Unbounded, b)).rev().map(|r| &r.row)),
        })
    }
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
            indexes: Vec::new(),
            indexed: false,
            gaps: RefCell::new(BTreeMap::new()),
            select,
        }
    }

    pub(crate) fn clear_overlay(&mut self) {
        self.overlay.clear();
        for ix in &mut self.indexes {
            ix.partitions.clear();
        }
        self.indexed = false;
        self.gaps.get_mut().clear();
    }

    /// The stream a request reads, and its order (flipped when reversed).
    fn stream(&self, req: &FetchRequest<'_>) -> (StreamKey, Rc<SortOrder>) {
        let order = if req.reverse {
            SortOrder::new(
                req.order
                    .keys()
                    .iter()
                    .map(|&(c, d)| {
                        let d = match d {
                            Direction::Asc => Direction::Desc,
                            Direction::Desc => Direction::Asc,
                        };
                        (c, d)
                    })
                    .collect(),
            )
        } else {
            req.order.clone()
        };
        (self.sql(req, None), Rc::new(order))
    }

    /// `sql` prepared (from the cache) on the reader, inside its snapshot.
    fn statement(&self, sql: &str) -> Result<rusqlite::CachedStatement<'_>, SourceError> {
        self.reader
            .connection()
            .map_err(backend)?
            .prepare_cached(sql)
            .map_err(backend)
    }

    /// Records a finished run of undeliverable rows, if long enough.
    fn close_run(
        &self,
        run: &mut Option<Run>,
        stream: &mut Option<(StreamKey, Rc<SortOrder>)>,
        req: &FetchRequest<'_>,
    ) {
        let Some(r) = run.take() else {
            return;
        };
        if r.len < GAP_MIN {
            return;
        }
        let (key, order) = stream.get_or_insert_with(|| self.stream(req));
        self.gaps
            .borrow_mut()
            .entry(key.clone())
            .or_insert_with(|| Gaps {
                order: order.clone(),
                runs: BTreeMap::new(),
            })
            .record(r.first, r.last);
    }

    /// Records that the row under `key` is now `now` (None: deleted), in the
    /// overlay and in every overlay index.
    fn set(&mut self, key: Vec<Value>, now: Option<Row>) {
        let before = self.overlay.insert(key, now.clone());
        if !self.indexed {
            if self.overlay.len() > INDEX_AFTER {
                for ix in &mut self.indexes {
                    ix.fill(&self.overlay);
                }
                self.indexed = true;
            }
            return;
        }
        if let Some(Some(before)) = before {
            for ix in &mut self.indexes {
                ix.remove(&before);
            }
        }
        if let Some(row) = now {
            for ix in &mut self.indexes {
                ix.insert(&row);
            }
        }
    }

    /// True when `columns` include every primary-key column.
    fn covers_key(&self, columns: &[usize]) -> bool {
        self.schema
            .primary_key()
            .iter()
            .all(|k| columns.contains(k))
    }

    /// The overlay's present rows that `req` admits, in its order (reversed
    /// when `req.reverse`), read lazily where an index serves the request.
    fn overlay_rows<'s>(
        &'s self,
        req: &'s FetchRequest<'_>,
    ) -> Box<dyn Iterator<Item = &'s Row> + 's> {
        if self.overlay.is_empty() {
            return Box::new(std::iter::empty());
        }
        let cols = sorted_columns(req.constraint.iter().map(|(c, _)| *c));
        if self.covers_key(&cols) {
            // The constraint fixes the whole key: at most one row.
            let key: Option<Vec<Value>> = self
                .schema
                .primary_key()
                .iter()
                .map(|k| {
                    req.constraint
                        .iter()
                        .find(|(c, _)| c == k)
                        .map(|(_, v)| v.clone())
                })
                .collect();
            let row = key
                .and_then(|k| self.overlay.get(&k))
                .and_then(Option::as_ref)
                .filter(|r| req.admits(r));
            return Box::new(row.into_iter());
        }
        // The index of the request's order partitioned on the most of its
        // constraint columns; the rest are checked per row.
        let best = self
            .indexes
            .iter()
            .filter(|ix| *ix.order == *req.order)
            .filter(|ix| ix.constraint.iter().all(|c| cols.contains(c)))
            .max_by_key(|ix| ix.constraint.len());
        if self.indexed
            && let Some(ix) = best
        {
            let Some(rows) = ix.scan(req) else {
                return Box::new(std::iter::empty());
            };
            if ix.constraint.len() == cols.len() {
                return rows;
            }
            let inside = move |r: &&Row| req.constraint.iter().all(|(c, v)| r[*c] == *v);
            return Box::new(rows.filter(inside));
        }
        // A few rows, or a shape never prepared: sort the matching rows.
        let mut rows: Vec<&Row> = self
            .overlay
            .values()
            .flatten()
            .filter(|r| req.admits(r))
            .collect();
        rows.sort_by(|a, b| {
            let o = req.order.compare(a, b);
            if req.reverse { o.reverse() } else { o }
        });
        Box::new(rows.into_iter())
    }

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

    /// The SQL and parameters for a request read from `start` (the request's
    /// own, or where a skipped run ends): the constraint, a conservative
    /// range on the first order column (exact bounds are checked per row),
    /// and the order with -0.0 tie-breaks.
    fn sql(&self, req: &FetchRequest<'_>, start: Option<&Start>) -> (String, Vec<Value>) {
        let cols = self.schema.columns();
        let mut sql = self.select.clone();
        let mut params = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        for (c, v) in req.constraint {
            if v.is_null() {
                conds.push(format!("{} IS NULL", quote(&cols[*c].name)));
            } else {
                params.push(v.clone());
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
            params.push(v.clone());
            conds.push(format!("{} = ?{}", quote(&cols[c].name), params.len()));
        }
        if let (Some(start), Some(&(c, dir))) = (start, req.order.keys().first()) {
            let v = &start.row[c];
            let col = quote(&cols[c].name);
            let ascending = (dir == Direction::Asc) != req.reverse;
            if v.is_null() {
                if !ascending {
                    conds.push(format!("{col} IS NULL"));
                }
            } else if v.kind() == kind_of(cols[c].ty) {
                params.push(v.clone());
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

    /// SQLite picks its own indexes for the snapshot's rows (a request it
    /// cannot serve from one is sorted by SQLite, still correctly); the
    /// overlay keeps its rows in every prepared shape.
    fn prepare(&mut self, order: &SortOrder, constraint_columns: &[usize]) {
        let order = order.clone().completed(&self.schema);
        let constraint = sorted_columns(constraint_columns.iter().copied());
        if self.covers_key(&constraint)
            || self
                .indexes
                .iter()
                .any(|ix| *ix.order == order && ix.constraint == constraint)
        {
            return;
        }
        let mut ix = OverlayIndex {
            order: Rc::new(order),
            constraint,
            partitions: BTreeMap::new(),
        };
        if self.indexed {
            ix.fill(&self.overlay);
        }
        self.indexes.push(ix);
    }

    fn fetch(
        &self,
        req: &FetchRequest<'_>,
        sink: &mut dyn FnMut(&Row) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let order = req.order;
        // Stream order: `a` comes before `b` in the fetch's direction.
        let ahead = |a: &[Value], b: &[Value]| {
            let o = order.compare(a, b);
            if req.reverse { o.reverse() } else { o }
        };
        let mut extra = self.overlay_rows(req).peekable();
        // Only an overlay shadows rows: without one, SQL's rows are the table's.
        let shadowing = !self.overlay.is_empty();
        let mut stream = None;
        let mut run: Option<Run> = None;
        // SQL resumes after this row: the rows up to it are known undeliverable.
        let mut resume: Option<Row> = None;
        if shadowing
            && let Some(s) = req.start
            && !self.gaps.borrow().is_empty()
        {
            let (key, _) = stream.get_or_insert_with(|| self.stream(req));
            if let Some((first, last)) = self.gaps.borrow().get(key).and_then(|g| g.around(&s.row))
            {
                resume = Some(last.clone());
                run = Some(Run {
                    first,
                    last,
                    len: GAP_MIN,
                });
            }
        }
        'query: loop {
            let start = match &resume {
                Some(r) => Some(Start {
                    row: r.clone(),
                    basis: StartBasis::After,
                }),
                None => req.start.cloned(),
            };
            let (sql, params) = self.sql(req, start.as_ref());
            let mut stmt = self.statement(&sql)?;
            let mut rows = stmt
                .query(params_from_iter(params.iter().map(to_sql)))
                .map_err(backend)?;
            while let Some(r) = rows.next().map_err(backend)? {
                let row = read_row(&self.schema, r).map_err(backend)?;
                // SQL's start bound is conservative: skip what lies before the
                // start, or inside the run just skipped.
                if let Some(s) = req.start {
                    let o = ahead(&row, &s.row);
                    let before = match s.basis {
                        StartBasis::At => o.is_lt(),
                        StartBasis::After => o.is_le(),
                    };
                    if before {
                        continue;
                    }
                }
                if resume.as_ref().is_some_and(|r| ahead(&row, r).is_le()) {
                    continue;
                }
                let deliverable = !(shadowing
                    && self.overlay.contains_key(&self.schema.key_of(&row)))
                    && req.constraint.iter().all(|(c, v)| row[*c] == *v);
                if !deliverable {
                    if !shadowing {
                        continue;
                    }
                    // A run already known from here on: resume after it.
                    let known = if self.gaps.borrow().is_empty() {
                        None
                    } else {
                        let (key, _) = stream.get_or_insert_with(|| self.stream(req));
                        self.gaps.borrow().get(key).and_then(|g| g.around(&row))
                    };
                    let jump = known.is_some();
                    let (last, len) = match known {
                        Some((_, last)) => (last, GAP_MIN),
                        None => (row.clone(), 1),
                    };
                    match &mut run {
                        Some(r) => {
                            r.last = last.clone();
                            r.len += len;
                        }
                        None => {
                            run = Some(Run {
                                first: row,
                                last: last.clone(),
                                len,
                            });
                        }
                    }
                    if jump {
                        resume = Some(last);
                        continue 'query;
                    }
                    continue;
                }
                self.close_run(&mut run, &mut stream, req);
                while let Some(x) = extra.peek() {
                    let before = ahead(x, &row).is_lt();
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
            break;
        }
        self.close_run(&mut run, &mut stream, req);
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
        let mut stmt = self.statement(&sql)?;
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
            SourceChange::Add(r) => self.set(self.schema.key_of(r), Some(r.clone())),
            SourceChange::Remove(r) => self.set(self.schema.key_of(r), None),
            SourceChange::Edit { old, new } => {
                self.set(self.schema.key_of(old), None);
                self.set(self.schema.key_of(new), Some(new.clone()));
            }
        }
        Ok(())
    }
}

/// Columns sorted ascending, without repeats.
fn sorted_columns(cols: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut cols: Vec<usize> = cols.into_iter().collect();
    cols.sort_unstable();
    cols.dedup();
    cols
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
