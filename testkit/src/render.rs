//! Query results as JSON trees, the form the scenario runner prints and the
//! harness compares: an array of row objects `{column: value, ..., alias:
//! children}`, or for a singular (`one`) level the object or null.

use rindle_core::{Node, View, ViewFormat};
use serde_json::{Map, Value as Json};

use crate::data::value_to_json;

/// One node as a row object.
pub fn node_json(format: &ViewFormat, node: &Node) -> Json {
    let schema = format.schema();
    let mut obj = Map::new();
    for (c, v) in schema.columns().iter().zip(node.row.iter()) {
        obj.insert(c.name.clone(), value_to_json(c.ty, v));
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
