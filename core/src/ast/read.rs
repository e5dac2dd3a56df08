//! The AST read from its wire JSON (QUERY.md): one plain reader per node over
//! a [`Json`] tree, so the whole AST reader exists once in a binary whatever
//! the serde formats using it, and every refusal names the key and the path.
//!
//! Wire rules: camelCase keys, only `table` required, key order irrelevant,
//! any unknown key or tag refused. For the optional fields of a query an
//! explicit `null` means absent; inside filter nodes a present key is read as
//! given (a `null` literal is a value, a `null` flip is an error).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{
    Aggregate, Ast, Bound, Condition, CorrelatedSubquery, Correlation, Direction, ExistsOp,
    Literal, SimpleOp, StaticField, ValuePosition,
};
use crate::ordering::SortOrder;
use crate::read::{
    Json, Object, Read, ReadError, boolean, boxed, count, deserialize_via_tree, list, one_of,
    string, strings, value,
};
use crate::value::{Row, Value};

const QUERY_FIELDS: &[&str] = &[
    "schema",
    "table",
    "alias",
    "select",
    "where",
    "related",
    "start",
    "limit",
    "one",
    "aggregate",
    "groupBy",
    "having",
    "orderBy",
];

/// A query (any level).
pub(crate) fn ast(v: &Json) -> Read<Ast> {
    let f = Object::new(v, "a query object", QUERY_FIELDS)?;
    Ok(Ast {
        schema: f.optional("schema", string)?,
        table: f.need("table", string)?,
        alias: f.optional("alias", string)?,
        select: f.optional("select", strings)?,
        where_: f.optional("where", condition)?,
        related: f
            .field("related", |v| list(v, subquery))?
            .unwrap_or_default(),
        start: f.optional("start", bound)?,
        limit: f.optional("limit", count)?,
        one: f.field("one", boolean)?.unwrap_or(false),
        aggregate: f.optional("aggregate", aggregate)?,
        group_by: f.optional("groupBy", strings)?,
        having: f.optional("having", condition)?,
        order_by: f.optional("orderBy", |v| list(v, ordering))?,
    })
}

/// `[column, "asc" | "desc"]`.
fn ordering(v: &Json) -> Read<(String, Direction)> {
    match v {
        Json::Array(pair) if pair.len() == 2 => Ok((
            string(&pair[0]).map_err(|e| e.in_element(0))?,
            direction(&pair[1]).map_err(|e| e.in_element(1))?,
        )),
        Json::Array(pair) => Err(ReadError::new(format!(
            "invalid length {}, expected a pair [column, direction]",
            pair.len()
        ))),
        other => Err(ReadError::invalid(other, "a pair [column, direction]")),
    }
}

fn direction(v: &Json) -> Read<Direction> {
    Ok(match one_of(v, "direction", &["asc", "desc"])? {
        0 => Direction::Asc,
        _ => Direction::Desc,
    })
}

fn bound(v: &Json) -> Read<Bound> {
    let f = Object::new(v, "a start object", &["row", "exclusive"])?;
    Ok(Bound {
        row: f.need("row", start_row)?,
        exclusive: f.field("exclusive", boolean)?.unwrap_or(false),
    })
}

/// The start row: column name to scalar, each column once, in column-name
/// order (the order a map would give, so the AST serializes canonically).
fn start_row(v: &Json) -> Read<Vec<(String, Value)>> {
    let Json::Object(pairs) = v else {
        return Err(ReadError::invalid(v, "an object of column values"));
    };
    // Sorted, and repeats found, through the engine's one row sort: rows of
    // [name, position].
    let mut names: Vec<Row> = pairs
        .iter()
        .enumerate()
        .map(|(i, (name, _))| Row::from([Value::text(name), Value::Int(i as i64)]))
        .collect();
    SortOrder::new(vec![(0, Direction::Asc)]).sort_rows(&mut names, false);
    if let Some(twice) = names.windows(2).find(|w| w[0][0] == w[1][0]) {
        return Err(ReadError::new(format!(
            "duplicate field `{}`",
            twice[0][0].as_str().unwrap_or_default()
        )));
    }
    names
        .iter()
        .filter_map(|r| match r[1] {
            Value::Int(i) => usize::try_from(i).ok().and_then(|i| pairs.get(i)),
            _ => None,
        })
        .map(|(name, cell)| Ok((name.clone(), value(cell).map_err(|e| e.in_field(name))?)))
        .collect()
}

fn aggregate(v: &Json) -> Read<Aggregate> {
    const EXPECTED: &str = r#""count", {"sum": column} or {"avg": column}"#;
    match v {
        Json::Text(_) => one_of(v, "aggregate", &["count"]).map(|_| Aggregate::Count),
        Json::Object(_) => {
            let f = Object::new(v, EXPECTED, &["sum", "avg"])?;
            match (f.field("sum", string)?, f.field("avg", string)?) {
                (Some(column), None) => Ok(Aggregate::Sum(column)),
                (None, Some(column)) => Ok(Aggregate::Avg(column)),
                (Some(_), Some(_)) => Err(ReadError::new("aggregate has an extra key `avg`")),
                (None, None) => Err(ReadError::invalid(v, EXPECTED)),
            }
        }
        other => Err(ReadError::invalid(other, EXPECTED)),
    }
}

fn subquery(v: &Json) -> Read<CorrelatedSubquery> {
    let f = Object::new(
        v,
        "a related query object",
        &["correlation", "subquery", "system"],
    )?;
    Ok(CorrelatedSubquery {
        correlation: f.need("correlation", correlation)?,
        subquery: f.need("subquery", |v| boxed(ast(v)))?,
        system: f.optional("system", string)?,
    })
}

fn correlation(v: &Json) -> Read<Correlation> {
    let f = Object::new(v, "a correlation object", &["parentField", "childField"])?;
    Ok(Correlation {
        parent_field: f.need("parentField", strings)?,
        child_field: f.need("childField", strings)?,
    })
}

const CONDITION_FIELDS: &[&str] = &[
    "type",
    "op",
    "left",
    "right",
    "conditions",
    "related",
    "flip",
];

/// A filter node, tagged by `type`.
pub(crate) fn condition(v: &Json) -> Read<Condition> {
    let f = Object::new(v, "a condition object", CONDITION_FIELDS)?;
    let tag = f.need("type", |v| {
        one_of(
            v,
            "condition type",
            &["simple", "and", "or", "correlatedSubquery"],
        )
    })?;
    match tag {
        0 => {
            f.only(
                &["conditions", "related", "flip"],
                &["type", "op", "left", "right"],
            )?;
            Ok(Condition::Simple {
                op: f.need("op", simple_op)?,
                left: f.need("left", position)?,
                right: f.need("right", position)?,
            })
        }
        1 | 2 => {
            f.only(
                &["op", "left", "right", "related", "flip"],
                &["type", "conditions"],
            )?;
            let conditions = f.need("conditions", |v| list(v, condition))?;
            Ok(if tag == 1 {
                Condition::And { conditions }
            } else {
                Condition::Or { conditions }
            })
        }
        _ => {
            f.only(
                &["left", "right", "conditions"],
                &["type", "op", "related", "flip"],
            )?;
            Ok(Condition::CorrelatedSubquery {
                op: f.need("op", exists_op)?,
                related: f.need("related", |v| boxed(subquery(v)))?,
                flip: f.field("flip", boolean)?.unwrap_or(false),
            })
        }
    }
}

/// Every operator's wire spelling.
const SIMPLE_OPS: &[&str] = &{
    let mut names = [""; SimpleOp::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = SimpleOp::ALL[i].as_str();
        i += 1;
    }
    names
};

fn simple_op(v: &Json) -> Read<SimpleOp> {
    one_of(v, "operator", SIMPLE_OPS).map(|i| SimpleOp::ALL[i])
}

fn exists_op(v: &Json) -> Read<ExistsOp> {
    Ok(match one_of(v, "operator", &["EXISTS", "NOT EXISTS"])? {
        0 => ExistsOp::Exists,
        _ => ExistsOp::NotExists,
    })
}

/// An operand, tagged by `type`.
fn position(v: &Json) -> Read<ValuePosition> {
    let f = Object::new(
        v,
        "an operand object",
        &["type", "name", "value", "anchor", "field"],
    )?;
    match f.need("type", |v| {
        one_of(v, "operand type", &["column", "literal", "static"])
    })? {
        0 => {
            f.only(&["value", "anchor", "field"], &["type", "name"])?;
            Ok(ValuePosition::Column {
                name: f.need("name", string)?,
            })
        }
        1 => {
            f.only(&["name", "anchor", "field"], &["type", "value"])?;
            Ok(ValuePosition::Literal {
                value: f.need("value", literal)?,
            })
        }
        _ => {
            f.only(&["name", "value"], &["type", "anchor", "field"])?;
            Ok(ValuePosition::Static {
                anchor: f.need("anchor", string)?,
                field: f.need("field", static_field)?,
            })
        }
    }
}

fn static_field(v: &Json) -> Read<StaticField> {
    match v {
        Json::Text(name) => Ok(StaticField::Name(name.clone())),
        Json::Array(_) => strings(v).map(StaticField::Path),
        other => Err(ReadError::invalid(
            other,
            "a field name or an array of field names",
        )),
    }
}

fn literal(v: &Json) -> Read<Literal> {
    match v {
        Json::Array(_) => list(v, value).map(Literal::List),
        _ => value(v).map(Literal::Scalar).map_err(|_| {
            ReadError::invalid(
                v,
                "a literal: null, a boolean, a number, a string or an array of those",
            )
        }),
    }
}

deserialize_via_tree!(Ast, ast);
deserialize_via_tree!(Condition, condition);
deserialize_via_tree!(ValuePosition, position);
deserialize_via_tree!(StaticField, static_field);
deserialize_via_tree!(Literal, literal);
deserialize_via_tree!(Bound, bound);
deserialize_via_tree!(CorrelatedSubquery, subquery);
deserialize_via_tree!(Correlation, correlation);
deserialize_via_tree!(Aggregate, aggregate);
deserialize_via_tree!(Direction, direction);
deserialize_via_tree!(SimpleOp, simple_op);
deserialize_via_tree!(ExistsOp, exists_op);

impl Ast {
    /// Reads a query from its wire JSON.
    ///
    /// ```
    /// use rindle_core::{Ast, Json};
    ///
    /// let tree: Json = serde_json::from_str(r#"{"table":"issue","limit":3}"#)?;
    /// assert_eq!(Ast::from_json(&tree)?.limit, Some(3));
    /// let bad: Json = serde_json::from_str(r#"{"table":"issue","limt":3}"#)?;
    /// assert!(Ast::from_json(&bad).unwrap_err().to_string().contains("unknown field `limt`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_json(v: &Json) -> Result<Ast, ReadError> {
        ast(v)
    }
}
