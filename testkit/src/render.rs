//! Query results as JSON trees, the form the scenario runner prints and the
//! harness compares: an array of row objects `{column: value, ..., alias:
//! children}`, or for a singular (`one`) level the object or null; a
//! relationship aggregate shows as its number (or null), and `select` limits
//! the columns shown.

use rindle_core::{LevelKind, Node, View, ViewFormat};
use serde_json::{Map, Value as Json};

use crate::data::value_to_json;

/// One node as a row object.
pub fn node_json(format: &ViewFormat, node: &Node) -> Json {
    let schema = format.schema();
    let mut obj = Map::new();
    for &i in format.visible_columns() {
        let c = &schema.columns()[i];
        obj.insert(c.name.clone(), value_to_json(c.ty, &node.row[i]));
    }
    for (alias, child_format) in format.relationships() {
        let children: &[Node] = node
            .relationships
            .iter()
            .find(|(a, _)| a == alias)
            .map_or(&[], |(_, c)| c);
        obj.insert(alias.to_string(), level_json(child_format, children));
    }
    Json::Object(obj)
}

/// A level's nodes as an array, or for a singular level the first or null.
pub fn level_json(format: &ViewFormat, nodes: &[Node]) -> Json {
    if format.kind() == LevelKind::Aggregate {
        // A relationship aggregate shows as its value.
        let schema = format.schema();
        return nodes.first().map_or(Json::Null, |n| {
            let i = format.visible_columns()[0];
            value_to_json(schema.columns()[i].ty, &n.row[i])
        });
    }
    if format.singular() {
        nodes.first().map_or(Json::Null, |n| node_json(format, n))
    } else {
        Json::Array(nodes.iter().map(|n| node_json(format, n)).collect())
    }
}

/// A materialized view's whole result.
pub fn view_json(view: &View) -> Json {
    level_json(view.format(), &view.to_nodes())
}
