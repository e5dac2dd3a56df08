//! The normalize fold: a query's result changes turned into table-tagged row
//! operations on the query's footprint, with reference counting.
//!
//! A subscriber receives base rows, keeps copies, and can run the query
//! locally over them. For that to give exactly the server's result, the rows
//! sent must be enough to re-derive it, so the server maintains a *footprint
//! query* ([`footprint`]) rather than the query itself:
//!
//! - every level keeps its table, filter, order, start and limit, and loses
//!   its `select` (copies hold whole rows);
//! - an `EXISTS` gets a hidden relationship holding its first matching child
//!   (the witness that makes the parent pass), rewritten the same way;
//! - a relationship aggregate becomes the relationship of the rows it
//!   aggregates; a root aggregate becomes the rows it groups.
//!
//! Why the copies then re-derive the result exactly: they are a subset of the
//! database holding every row the result shows, every witness and every
//! aggregated row. Filters are row-local, a top-N of a subset that contains
//! the true top-N is the true top-N, and a witness keeps its `EXISTS` true.
//! `NOT EXISTS` is the one non-monotone shape: a row of its level that failed
//! on the server could pass locally if it reached the copies by another path
//! without its blockers. So a level with `NOT EXISTS` must be the only level
//! of its table in the query; otherwise [`footprint`] refuses the query.
//!
//! Delta rule of the fold: the fold mirrors the result tree as the view holds
//! it, and each base row (table, primary key) is held with the number of
//! tree entries holding it. An entry created (with its subtree) adds one to
//! each of its rows; an entry dropped (with the subtree it holds) takes one
//! away; an edit replaces the held row. At the end of a transaction each touched row is compared
//! with what the subscriber holds: absent → present is `add`, present →
//! absent is `remove`, a changed row is `edit`, anything else sends nothing.

use alloc::collections::BTreeMap;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use super::replica::identical;
use super::{Op, TableShape};
use crate::ast::{Ast, Condition, CorrelatedSubquery, ExistsOp};
use crate::build::{LevelKind, ViewFormat};
use crate::change::{Change, Node};
use crate::ordering::SortedRow;
use crate::schema::TableSchema;
use crate::value::{Row, Value};

/// The query a normalized subscription maintains, and the tables it touches.
#[derive(Clone, Debug, PartialEq)]
pub struct Footprint {
    /// The footprint query (see the module docs).
    pub query: Ast,
    /// Every base table the original query reads, sorted by name: the
    /// subscription's `tables`, including tables only a `NOT EXISTS` reads.
    pub tables: Vec<String>,
}

impl Footprint {
    /// The subscription's `tables`: the shapes of [`Footprint::tables`],
    /// looked up in `schemas`.
    pub fn shapes(&self, schemas: &[TableSchema]) -> Result<Vec<TableShape>, FootprintError> {
        self.tables
            .iter()
            .map(|name| {
                schemas
                    .iter()
                    .find(|s| s.name() == name)
                    .map(TableShape::of)
                    .ok_or_else(|| FootprintError::UnknownTable {
                        table: name.clone(),
                    })
            })
            .collect()
    }
}

/// A query whose footprint cannot re-derive it exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FootprintError {
    /// A level with `NOT EXISTS` reads a table another level also reads.
    SharedNotExistsTable {
        /// The table.
        table: String,
    },
    /// A table the query reads is not among the schemas given.
    UnknownTable {
        /// The table.
        table: String,
    },
    /// The given result format has a level that is not rows of a table
    /// (an aggregate): it is not a footprint query's format.
    NotRows {
        /// The relationship alias, or `""` for the root.
        level: String,
    },
}

impl fmt::Display for FootprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FootprintError::SharedNotExistsTable { table } => write!(
                f,
                "unsupported in normalized mode: a NOT EXISTS level over `{table}` while \
                 another level of the query also reads `{table}`; a subscriber's copies \
                 could not re-derive it"
            ),
            FootprintError::UnknownTable { table } => write!(f, "unknown table `{table}`"),
            FootprintError::NotRows { level } => {
                write!(f, "level `{level}` is an aggregate, not rows of a table")
            }
        }
    }
}

impl core::error::Error for FootprintError {}

/// The footprint query of `ast` and the tables it touches.
pub fn footprint(ast: &Ast) -> Result<Footprint, FootprintError> {
    let mut levels = Vec::new();
    collect_levels(ast, &mut levels);
    let mut per_table: BTreeMap<&str, usize> = BTreeMap::new();
    for (table, _) in &levels {
        *per_table.entry(table).or_insert(0) += 1;
    }
    for (table, has_not_exists) in &levels {
        if *has_not_exists && per_table[table] > 1 {
            return Err(FootprintError::SharedNotExistsTable {
                table: String::from(*table),
            });
        }
    }
    let tables = per_table.keys().map(|t| String::from(*t)).collect();
    let query = if ast.aggregate.is_some() || ast.group_by.is_some() {
        // A root aggregate: the rows it groups, in key order.
        let mut rows = rewrite(ast);
        rows.order_by = None;
        rows.start = None;
        rows.limit = None;
        rows.one = false;
        rows
    } else {
        rewrite(ast)
    };
    Ok(Footprint { query, tables })
}

/// Every level of the query (root, related, EXISTS and aggregate children),
/// with whether its filter holds a `NOT EXISTS`.
fn collect_levels<'a>(ast: &'a Ast, out: &mut Vec<(&'a str, bool)>) {
    let mut subs = Vec::new();
    let mut not_exists = false;
    if let Some(w) = &ast.where_ {
        exists_in(w, &mut subs, &mut not_exists);
    }
    out.push((ast.table.as_str(), not_exists));
    for (csq, _) in subs {
        collect_levels(&csq.subquery, out);
    }
    for r in &ast.related {
        collect_levels(&r.subquery, out);
    }
}

fn exists_in<'a>(
    c: &'a Condition,
    out: &mut Vec<(&'a CorrelatedSubquery, ExistsOp)>,
    not_exists: &mut bool,
) {
    match c {
        Condition::Simple { .. } => {}
        Condition::And { conditions } | Condition::Or { conditions } => {
            for c in conditions {
                exists_in(c, out, not_exists);
            }
        }
        Condition::CorrelatedSubquery { op, related, .. } => {
            *not_exists |= *op == ExistsOp::NotExists;
            out.push((related, *op));
        }
    }
}

fn rewrite(ast: &Ast) -> Ast {
    let mut out = ast.clone();
    out.select = None;
    out.aggregate = None;
    out.group_by = None;
    out.having = None;
    out.related = ast
        .related
        .iter()
        .map(|r| CorrelatedSubquery {
            correlation: r.correlation.clone(),
            subquery: alloc::boxed::Box::new(rewrite(&r.subquery)),
            system: r.system.clone(),
        })
        .collect();
    let mut subs = Vec::new();
    if let Some(w) = &ast.where_ {
        exists_in(w, &mut subs, &mut false);
    }
    let mut taken: BTreeSet<String> = out
        .related
        .iter()
        .filter_map(|r| r.subquery.alias.clone())
        .collect();
    let mut n = 0usize;
    for (csq, op) in subs {
        if op != ExistsOp::Exists {
            continue;
        }
        let alias = loop {
            let candidate = format!("_rindle_witness_{n}");
            n += 1;
            if !taken.contains(&candidate) {
                break candidate;
            }
        };
        taken.insert(alias.clone());
        let mut witness = rewrite(&csq.subquery);
        witness.alias = Some(alias);
        witness.one = false;
        if witness.limit.is_none() {
            witness.limit = Some(1);
        }
        out.related.push(CorrelatedSubquery {
            correlation: csq.correlation.clone(),
            subquery: alloc::boxed::Box::new(witness),
            system: csq.system.clone(),
        });
    }
    out
}

/// A base row the fold holds: each version of it the result's entries hold,
/// with how many entries hold it. Between a transaction's changes an entry
/// can still hold the row as it was; when the transaction ends every entry
/// holds the current row, so one version remains.
#[derive(Clone, Debug, Default)]
struct Held {
    versions: Vec<(Row, u64)>,
}

impl Held {
    fn gain(&mut self, row: &Row) {
        match self.versions.iter_mut().find(|(r, _)| identical(r, row)) {
            Some((_, n)) => *n += 1,
            None => self.versions.push((row.clone(), 1)),
        }
    }

    /// Whether an entry held `row`.
    fn lose(&mut self, row: &Row) -> bool {
        let Some(i) = self.versions.iter().position(|(r, _)| identical(r, row)) else {
            return false;
        };
        self.versions[i].1 -= 1;
        if self.versions[i].1 == 0 {
            self.versions.remove(i);
        }
        true
    }

    /// The row as the result holds it now (the latest version gained).
    fn row(&self) -> Option<&Row> {
        self.versions.last().map(|(r, _)| r)
    }
}

type Key = (Arc<str>, Vec<Value>);

/// One level of the mirrored result tree: entries by their place in the
/// level's order, as [`crate::View`] keeps them.
#[derive(Clone, Debug, Default)]
struct Level {
    entries: BTreeMap<SortedRow, Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    /// How many times the engine added this row at this place (a row reached
    /// twice in one level is one entry).
    count: u32,
    /// The entry's relationship levels, as in `ViewFormat::relationships`.
    children: Vec<Level>,
}

/// Result changes of a footprint query in, row operations out.
///
/// The fold mirrors the result's tree the way [`crate::View`] holds it (a
/// `Remove` drops the entry with the subtree it holds, whatever the change
/// carries) and counts, per base row, the entries holding it.
#[derive(Clone, Debug)]
pub struct NormalizeFold {
    format: Arc<ViewFormat>,
    root: Level,
    held: BTreeMap<Key, Held>,
}

/// The fold was given changes its state cannot follow (a bug upstream).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FoldError {
    /// A change names a row the result does not hold at that place.
    NotHeld {
        /// The row's table.
        table: String,
    },
    /// A change names a relationship the format does not have.
    UnknownRelationship {
        /// The alias.
        relationship: String,
    },
    /// An edit changes the primary key.
    KeyChanged {
        /// The row's table.
        table: String,
    },
}

impl fmt::Display for FoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FoldError::NotHeld { table } => {
                write!(
                    f,
                    "a change names a row of `{table}` the result does not hold"
                )
            }
            FoldError::UnknownRelationship { relationship } => {
                write!(f, "a change names unknown relationship `{relationship}`")
            }
            FoldError::KeyChanged { table } => {
                write!(f, "an edit changes the primary key of a row of `{table}`")
            }
        }
    }
}

impl core::error::Error for FoldError {}

impl NormalizeFold {
    /// A fold over results of `format`, which must be a footprint query's
    /// (rows at every level).
    pub fn new(format: Arc<ViewFormat>) -> Result<NormalizeFold, FootprintError> {
        check_rows(&format, "")?;
        Ok(NormalizeFold {
            format,
            root: Level::default(),
            held: BTreeMap::new(),
        })
    }

    /// Distinct base rows held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Takes the hydrated result; returns the snapshot's operations (adds).
    pub fn hydrate(&mut self, nodes: &[Node]) -> Result<Vec<Op>, FoldError> {
        self.root = Level::default();
        self.held.clear();
        let changes: Vec<Change> = nodes.iter().cloned().map(Change::Add).collect();
        self.apply(&changes)
    }

    /// Every held row as an add, in (table, key) order: the snapshot for a
    /// subscriber that joins now.
    pub fn snapshot(&self) -> Vec<Op> {
        self.held
            .iter()
            .filter_map(|((table, _), h)| {
                h.row().map(|row| Op::Add {
                    table: table.clone(),
                    row: row.clone(),
                })
            })
            .collect()
    }

    /// Takes one transaction's result changes; returns its operations, at
    /// most one per row (empty when the footprint did not change). On an
    /// error the fold must be rebuilt ([`NormalizeFold::hydrate`]).
    pub fn apply(&mut self, changes: &[Change]) -> Result<Vec<Op>, FoldError> {
        let format = self.format.clone();
        let mut touched = Touched::default();
        let mut root = core::mem::take(&mut self.root);
        let result = changes
            .iter()
            .try_for_each(|c| self.change(&format, &mut root, c, &mut touched));
        self.root = root;
        result?;
        Ok(self.settle(touched))
    }

    fn change(
        &mut self,
        format: &ViewFormat,
        level: &mut Level,
        change: &Change,
        touched: &mut Touched,
    ) -> Result<(), FoldError> {
        let not_held = || FoldError::NotHeld {
            table: String::from(format.schema().name()),
        };
        match change {
            Change::Add(node) => {
                let place = SortedRow::new(node.row.clone(), format.order_arc());
                if let Some(e) = level.entries.get_mut(&place) {
                    e.count += 1;
                } else {
                    let entry = self.enter(format, node, touched)?;
                    level.entries.insert(place, entry);
                }
                Ok(())
            }
            Change::Remove(node) => {
                let place = SortedRow::new(node.row.clone(), format.order_arc());
                let e = level.entries.get_mut(&place).ok_or_else(not_held)?;
                if e.count > 1 {
                    e.count -= 1;
                } else if let Some((place, e)) = level.entries.remove_entry(&place) {
                    self.leave(format, &place.row, e, touched)?;
                }
                Ok(())
            }
            Change::Edit { old, new } => {
                if !format.schema().same_key(&old.row, &new.row) {
                    return Err(FoldError::KeyChanged {
                        table: String::from(format.schema().name()),
                    });
                }
                let old_place = SortedRow::new(old.row.clone(), format.order_arc());
                let e = level.entries.remove(&old_place).ok_or_else(not_held)?;
                let key = self.key(format, &new.row);
                self.touch(&key, touched);
                let h = self.held.get_mut(&key).ok_or_else(not_held)?;
                if !h.lose(&old_place.row) {
                    return Err(not_held());
                }
                h.gain(&new.row);
                level
                    .entries
                    .insert(SortedRow::new(new.row.clone(), format.order_arc()), e);
                Ok(())
            }
            Change::Child {
                row,
                relationship,
                change,
            } => {
                let place = SortedRow::new(row.clone(), format.order_arc());
                let (i, child) = child_format(format, relationship)?;
                let e = level.entries.get_mut(&place).ok_or_else(not_held)?;
                let mut sub = core::mem::take(&mut e.children[i]);
                let result = self.change(child, &mut sub, change, touched);
                if let Some(e) = level.entries.get_mut(&place) {
                    e.children[i] = sub;
                }
                result
            }
        }
    }

    fn key(&self, format: &ViewFormat, row: &Row) -> Key {
        (
            format.schema().name_arc().clone(),
            format.schema().key_of(row),
        )
    }

    /// A new entry for `node` and its subtree; each of their rows gains an
    /// entry.
    fn enter(
        &mut self,
        format: &ViewFormat,
        node: &Node,
        touched: &mut Touched,
    ) -> Result<Entry, FoldError> {
        let key = self.key(format, &node.row);
        self.touch(&key, touched);
        self.held.entry(key).or_default().gain(&node.row);
        let mut children: Vec<Level> = format
            .relationships()
            .iter()
            .map(|_| Level::default())
            .collect();
        for (alias, nodes) in &node.relationships {
            let (i, child) = child_format(format, alias)?;
            for n in nodes {
                self.change(child, &mut children[i], &Change::Add(n.clone()), touched)?;
            }
        }
        Ok(Entry { count: 1, children })
    }

    /// An entry goes with the subtree it holds; each of their rows loses an
    /// entry.
    fn leave(
        &mut self,
        format: &ViewFormat,
        row: &Row,
        entry: Entry,
        touched: &mut Touched,
    ) -> Result<(), FoldError> {
        let key = self.key(format, row);
        self.touch(&key, touched);
        let lost = self.held.get_mut(&key).is_some_and(|h| h.lose(row));
        if !lost {
            return Err(FoldError::NotHeld {
                table: String::from(format.schema().name()),
            });
        }
        if self.held.get(&key).is_some_and(|h| h.versions.is_empty()) {
            self.held.remove(&key);
        }
        for ((_, child), level) in format.relationships().iter().zip(entry.children) {
            for (place, e) in level.entries {
                self.leave(child, &place.row, e, touched)?;
            }
        }
        Ok(())
    }

    /// Remembers what the subscriber held for `key` before this transaction.
    fn touch(&self, key: &Key, touched: &mut Touched) {
        if !touched.before.contains_key(key) {
            let before = self.held.get(key).and_then(|h| h.row().cloned());
            touched.before.insert(key.clone(), before);
            touched.order.push(key.clone());
        }
    }

    fn settle(&self, touched: Touched) -> Vec<Op> {
        let mut ops = Vec::new();
        let Touched { mut before, order } = touched;
        for key in order {
            let was = before.remove(&key).flatten();
            let now = self.held.get(&key).and_then(Held::row);
            let table = key.0;
            match (was, now) {
                (None, Some(row)) => ops.push(Op::Add {
                    table,
                    row: row.clone(),
                }),
                (Some(row), None) => ops.push(Op::Remove { table, row }),
                (Some(old), Some(new)) if !identical(&old, new) => ops.push(Op::Edit {
                    table,
                    old,
                    new: new.clone(),
                }),
                _ => {}
            }
        }
        ops
    }
}

/// Keys touched in one transaction, in first-touch order, with what the
/// subscriber held for each before it.
#[derive(Default)]
struct Touched {
    before: BTreeMap<Key, Option<Row>>,
    order: Vec<Key>,
}

fn child_format<'f>(
    format: &'f ViewFormat,
    alias: &str,
) -> Result<(usize, &'f ViewFormat), FoldError> {
    format
        .relationship(alias)
        .ok_or_else(|| FoldError::UnknownRelationship {
            relationship: String::from(alias),
        })
}

fn check_rows(format: &ViewFormat, level: &str) -> Result<(), FootprintError> {
    if format.kind() != LevelKind::Rows {
        return Err(FootprintError::NotRows {
            level: String::from(level),
        });
    }
    for (alias, child) in format.relationships() {
        check_rows(child, alias)?;
    }
    Ok(())
}
