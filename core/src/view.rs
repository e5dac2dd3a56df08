//! The materialized view: a query's result as a tree of ordered entries, kept
//! current by applying the engine's output changes.
//!
//! Each level is an ordered list of entries (a row and its relationships'
//! levels). A row reached by several paths is held once with a count: an Add of
//! a row already present counts it again, and a Remove drops it with its last
//! path. Listeners fire on [`View::flush`] when anything changed since the last
//! flush, so a host can batch a transaction's changes into one notification.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::build::ViewFormat;
use crate::change::{Change, Node};
use crate::error::ViewError;
use crate::ordering::SortedRow;
use crate::value::Row;

/// One row of a view with its relationships.
#[derive(Clone, Debug)]
pub struct Entry {
    row: Row,
    count: u32,
    relationships: Vec<Level>,
}

#[derive(Clone, Debug, Default)]
struct Level {
    entries: BTreeMap<SortedRow, Entry>,
}

impl Entry {
    /// The row (every column of its table).
    pub fn row(&self) -> &Row {
        &self.row
    }

    /// How many paths reach this row.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The entries of relationship number `index` (as in
    /// [`ViewFormat::relationships`]), in order.
    pub fn relationship(&self, index: usize) -> impl Iterator<Item = &Entry> {
        self.relationships
            .get(index)
            .into_iter()
            .flat_map(|l| l.entries.values())
    }

    fn to_node(&self, format: &ViewFormat) -> Node {
        Node {
            row: self.row.clone(),
            relationships: format
                .relationships()
                .iter()
                .zip(&self.relationships)
                .map(|((alias, f), l)| (alias.clone(), l.to_nodes(f)))
                .collect(),
        }
    }
}

impl Level {
    fn to_nodes(&self, format: &ViewFormat) -> Vec<Node> {
        self.entries.values().map(|e| e.to_node(format)).collect()
    }

    /// Applies `change`, or refuses it with nothing modified. Each change
    /// costs one search of the level (two for an edit, which may move).
    fn apply(&mut self, format: &ViewFormat, change: &Change) -> Result<(), ViewError> {
        use alloc::collections::btree_map::Entry as Slot;
        match change {
            Change::Add(node) => {
                check_node(format, node)?;
                match self
                    .entries
                    .entry(SortedRow::new(node.row.clone(), format.order_arc()))
                {
                    Slot::Occupied(mut e) => e.get_mut().count += 1,
                    Slot::Vacant(v) => {
                        v.insert(entry_of(format, node));
                    }
                }
            }
            Change::Remove(node) => {
                match self
                    .entries
                    .entry(SortedRow::new(node.row.clone(), format.order_arc()))
                {
                    Slot::Occupied(mut e) if e.get().count > 1 => e.get_mut().count -= 1,
                    Slot::Occupied(e) => {
                        e.remove();
                    }
                    Slot::Vacant(_) => return Err(ViewError::MissingRow),
                }
            }
            Change::Edit { old, new } => {
                if !format.schema().same_key(&old.row, &new.row) {
                    return Err(ViewError::KeyChanged);
                }
                let mut e = self
                    .entries
                    .remove(&SortedRow::new(old.row.clone(), format.order_arc()))
                    .ok_or(ViewError::MissingRow)?;
                e.row = new.row.clone();
                self.entries
                    .insert(SortedRow::new(new.row.clone(), format.order_arc()), e);
            }
            Change::Child {
                row,
                relationship,
                change,
            } => {
                let e = self
                    .entries
                    .get_mut(&SortedRow::new(row.clone(), format.order_arc()))
                    .ok_or(ViewError::MissingRow)?;
                let (i, f) = relationship_index(format, relationship)?;
                // The child level refuses with nothing modified; so nothing
                // here is.
                e.relationships[i].apply(f, change)?;
            }
        }
        Ok(())
    }
}

fn relationship_index<'f>(
    format: &'f ViewFormat,
    alias: &str,
) -> Result<(usize, &'f ViewFormat), ViewError> {
    format
        .relationship(alias)
        .ok_or_else(|| ViewError::UnknownRelationship(alias.into()))
}

fn check_node(format: &ViewFormat, node: &Node) -> Result<(), ViewError> {
    for (alias, children) in &node.relationships {
        let (_, f) = relationship_index(format, alias)?;
        for c in children {
            check_node(f, c)?;
        }
    }
    Ok(())
}

fn entry_of(format: &ViewFormat, node: &Node) -> Entry {
    let mut relationships: Vec<Level> = format
        .relationships()
        .iter()
        .map(|_| Level::default())
        .collect();
    for (alias, children) in &node.relationships {
        if let Ok((i, f)) = relationship_index(format, alias) {
            for c in children {
                // Checked with the whole node by the caller.
                let _ = relationships[i].apply(f, &Change::Add(c.clone()));
            }
        }
    }
    Entry {
        row: node.row.clone(),
        count: 1,
        relationships,
    }
}

/// Identifies a listener registered with [`View::subscribe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

type Listener = Box<dyn FnMut(&View)>;

/// A query's materialized result.
pub struct View {
    format: Arc<ViewFormat>,
    root: Level,
    listeners: Vec<(ListenerId, Listener)>,
    next_listener: u64,
    dirty: bool,
}

impl View {
    /// An empty view of the given format.
    pub fn new(format: Arc<ViewFormat>) -> View {
        View {
            format,
            root: Level::default(),
            listeners: Vec::new(),
            next_listener: 0,
            dirty: false,
        }
    }

    /// A view holding a query's hydration.
    pub fn hydrated(format: Arc<ViewFormat>, nodes: &[Node]) -> Result<View, ViewError> {
        let mut v = View::new(format);
        for n in nodes {
            v.apply(&Change::Add(n.clone()))?;
        }
        Ok(v)
    }

    /// The result format.
    pub fn format(&self) -> &Arc<ViewFormat> {
        &self.format
    }

    /// Applies one output change. A change that does not fit (a Remove of a
    /// row the view does not hold, an unknown relationship) is refused and the
    /// view is left as it was.
    pub fn apply(&mut self, change: &Change) -> Result<(), ViewError> {
        self.root.apply(&self.format, change)?;
        self.dirty = true;
        Ok(())
    }

    /// Applies changes in order, stopping at the first that does not fit.
    pub fn apply_all<'c, I: IntoIterator<Item = &'c Change>>(
        &mut self,
        changes: I,
    ) -> Result<(), ViewError> {
        for c in changes {
            self.apply(c)?;
        }
        Ok(())
    }

    /// Number of top-level entries.
    pub fn len(&self) -> usize {
        self.root.entries.len()
    }

    /// True when the result is empty.
    pub fn is_empty(&self) -> bool {
        self.root.entries.is_empty()
    }

    /// Top-level entries in order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.root.entries.values()
    }

    /// Top-level rows in order.
    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.entries().map(|e| &e.row)
    }

    /// The single entry of a singular (`one`) view, or the first entry.
    pub fn first(&self) -> Option<&Entry> {
        self.root.entries.values().next()
    }

    /// The whole result as plain nodes, in order.
    pub fn to_nodes(&self) -> Vec<Node> {
        self.root.to_nodes(&self.format)
    }

    /// Registers a listener, called on each [`View::flush`] that follows a
    /// change.
    pub fn subscribe(&mut self, listener: impl FnMut(&View) + 'static) -> ListenerId {
        let id = ListenerId(self.next_listener);
        self.next_listener += 1;
        self.listeners.push((id, Box::new(listener)));
        id
    }

    /// Removes a listener; false if it was not registered.
    pub fn unsubscribe(&mut self, id: ListenerId) -> bool {
        let before = self.listeners.len();
        self.listeners.retain(|(l, _)| *l != id);
        self.listeners.len() != before
    }

    /// Fires the listeners if anything changed since the last flush; returns
    /// whether they fired.
    pub fn flush(&mut self) -> bool {
        if !self.dirty {
            return false;
        }
        self.dirty = false;
        let mut listeners = core::mem::take(&mut self.listeners);
        for (_, l) in &mut listeners {
            l(self);
        }
        self.listeners = listeners;
        true
    }
}

impl core::fmt::Debug for View {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("View")
            .field("rows", &self.root.entries.values().collect::<Vec<_>>())
            .field("listeners", &self.listeners.len())
            .finish()
    }
}
