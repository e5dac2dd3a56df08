//! Query results and result changes in their JSON shape, as serde values,
//! and rows read from JSON objects or arrays.
//!
//! A result level is an array of row objects — each visible column by name,
//! each relationship by its alias — or, for a singular (`one`) level, the
//! object or null; a relationship aggregate shows as its value. Any serde
//! format renders them; with a JSON serializer they are the `/query` body of
//! the daemon and what the bindings hand to C and JavaScript. JSON-typed
//! columns show as their text; a non-finite float is whatever the format makes
//! of one (null, in serde_json).

use alloc::vec::Vec;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::build::{LevelKind, ViewFormat};
use crate::change::{Change, Node};
use crate::read::{self, Json, ReadError};
use crate::schema::TableSchema;
use crate::value::{Row, Value};

/// A result level (a whole query result, or one relationship's rows) as a
/// serde value.
#[derive(Clone, Copy)]
pub struct ResultJson<'a> {
    format: &'a ViewFormat,
    nodes: &'a [Node],
}

impl<'a> ResultJson<'a> {
    /// The level of `format` holding `nodes` (in result order).
    pub fn new(format: &'a ViewFormat, nodes: &'a [Node]) -> ResultJson<'a> {
        ResultJson { format, nodes }
    }
}

impl Serialize for ResultJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let format = self.format;
        if format.kind() == LevelKind::Aggregate {
            let value = self.nodes.first().and_then(|n| {
                let i = *format.visible_columns().first()?;
                n.row.get(i)
            });
            return match value {
                Some(v) => v.serialize(s),
                None => s.serialize_none(),
            };
        }
        if format.singular() {
            return match self.nodes.first() {
                Some(node) => NodeJson { format, node }.serialize(s),
                None => s.serialize_none(),
            };
        }
        let mut seq = s.serialize_seq(Some(self.nodes.len()))?;
        for node in self.nodes {
            seq.serialize_element(&NodeJson { format, node })?;
        }
        seq.end()
    }
}

/// One row object with its relationships.
struct NodeJson<'a> {
    format: &'a ViewFormat,
    node: &'a Node,
}

impl Serialize for NodeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let relationships = self.format.relationships();
        let mut map = s.serialize_map(Some(
            self.format.visible_columns().len() + relationships.len(),
        ))?;
        columns(&mut map, self.format, &self.node.row)?;
        for (alias, sub) in relationships {
            let children = self
                .node
                .relationships
                .iter()
                .find(|(a, _)| a == alias)
                .map_or(&[][..], |(_, c)| c.as_slice());
            map.serialize_entry(&**alias, &ResultJson::new(sub, children))?;
        }
        map.end()
    }
}

fn columns<M: SerializeMap>(map: &mut M, format: &ViewFormat, row: &Row) -> Result<(), M::Error> {
    let schema = format.schema().columns();
    for &i in format.visible_columns() {
        if let (Some(c), Some(v)) = (schema.get(i), row.get(i)) {
            map.serialize_entry(c.name.as_str(), v)?;
        }
    }
    Ok(())
}

/// A row's visible columns only (the parent of a `child` change).
struct RowJson<'a> {
    format: &'a ViewFormat,
    row: &'a Row,
}

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.format.visible_columns().len()))?;
        columns(&mut map, self.format, self.row)?;
        map.end()
    }
}

/// A change to a query's result as a serde value:
/// `{"op":"add","row":{…}}`, `{"op":"remove","row":{…}}`,
/// `{"op":"edit","old":{…},"new":{…}}`, or
/// `{"op":"child","row":{…columns},"relationship":"alias","change":{…}}`
/// (the nested change in the relationship's own format).
#[derive(Clone, Copy)]
pub struct ChangeJson<'a> {
    format: &'a ViewFormat,
    change: &'a Change,
}

impl<'a> ChangeJson<'a> {
    /// `change`, a change to a level of `format`.
    pub fn new(format: &'a ViewFormat, change: &'a Change) -> ChangeJson<'a> {
        ChangeJson { format, change }
    }
}

impl Serialize for ChangeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let format = self.format;
        match self.change {
            Change::Add(node) | Change::Remove(node) => {
                let op = if matches!(self.change, Change::Add(_)) {
                    "add"
                } else {
                    "remove"
                };
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("op", op)?;
                map.serialize_entry("row", &NodeJson { format, node })?;
                map.end()
            }
            Change::Edit { old, new } => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("op", "edit")?;
                map.serialize_entry("old", &NodeJson { format, node: old })?;
                map.serialize_entry("new", &NodeJson { format, node: new })?;
                map.end()
            }
            Change::Child {
                row,
                relationship,
                change,
            } => {
                let mut map = s.serialize_map(Some(4))?;
                map.serialize_entry("op", "child")?;
                map.serialize_entry("row", &RowJson { format, row })?;
                map.serialize_entry("relationship", &**relationship)?;
                match format.relationship(relationship) {
                    Some((_, sub)) => {
                        map.serialize_entry("change", &ChangeJson::new(sub, change))?
                    }
                    None => map.serialize_entry("change", &())?,
                }
                map.end()
            }
        }
    }
}

/// Reads one row of a table from a serde value: an object keyed by column
/// name (a missing column is null; an unknown one is an error) or an array of
/// cells in column order. Cells are scalars ([`Value`]'s own form); a JSON
/// column's value is its text. Types, nullability and width are not checked
/// here: [`TableSchema::check_row`] does that where the row is used. The value
/// is read as a [`Json`] tree and then by [`RowSeed::read`].
///
/// ```
/// use rindle_core::{Column, ColumnType, RowSeed, TableSchema, Value, row};
/// use serde::de::DeserializeSeed;
///
/// let t = TableSchema::new(
///     "t",
///     vec![Column::new("id", ColumnType::Integer), Column::new("v", ColumnType::Text)],
///     &["id"],
/// )?;
/// let mut de = serde_json::Deserializer::from_str(r#"{"id": 7}"#);
/// assert_eq!(RowSeed::new(&t).deserialize(&mut de)?, row![7, Value::Null]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct RowSeed<'a> {
    schema: &'a TableSchema,
}

impl<'a> RowSeed<'a> {
    /// A reader of rows of `schema`.
    pub fn new(schema: &'a TableSchema) -> RowSeed<'a> {
        RowSeed { schema }
    }

    /// Reads a row from a JSON tree.
    pub fn read(self, v: &Json) -> Result<Row, ReadError> {
        let columns = self.schema.columns();
        match v {
            Json::Array(_) => read::list(v, read::value).map(Row::new),
            Json::Object(pairs) => {
                let mut cells: Vec<Option<Value>> = alloc::vec![None; columns.len()];
                for (name, cell) in pairs {
                    let Some(i) = columns.iter().position(|c| c.name == *name) else {
                        return Err(ReadError::new(format_args!(
                            "unknown column `{name}` in table `{}`",
                            self.schema.name()
                        )));
                    };
                    if cells[i].is_some() {
                        return Err(ReadError::new(format_args!("column `{name}` given twice")));
                    }
                    cells[i] = Some(read::value(cell).map_err(|e| e.in_field(name))?);
                }
                Ok(Row::new(
                    cells
                        .into_iter()
                        .map(|c| c.unwrap_or(Value::Null))
                        .collect(),
                ))
            }
            other => Err(ReadError::invalid(
                other,
                "a row: an object keyed by column name or an array of cells",
            )),
        }
    }
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Row, D::Error> {
        let tree = Json::deserialize(d)?;
        self.read(&tree).map_err(de::Error::custom)
    }
}
