//! The query AST and its wire JSON (QUERY.md).
//!
//! The serde representation is the exact wire form used by Zero-family clients:
//! camelCase keys, only `table` required, absent fields defaulted, and serializers
//! leaving out empty, false and absent fields. JSON key order never matters. Any
//! unknown key, unknown tag or malformed value is refused by deserialization with
//! an error that names it and its path. Deserialization reads a [`crate::Json`]
//! tree and hands it to one plain reader ([`Ast::from_json`]).
//!
//! The AST is only syntax: whether it names real tables and columns, and whether
//! its shape is supported, is decided by lowering ([`crate::build_pipeline`]).

mod builder;
mod read;

pub use builder::{Query, and, col, exists, not_exists, or};

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use crate::value::Value;

fn is_false(b: &bool) -> bool {
    !*b
}

/// A query: one level of the AST (the root, a `related` child, or an EXISTS child).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ast {
    /// Namespace, passed through untouched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The source table.
    pub table: String,
    /// The relationship name when this AST is a `related` or EXISTS child.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Projection; `None` means every column. The primary key is always kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    /// The filter tree.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<Condition>,
    /// Child relationships materialized under each row.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<CorrelatedSubquery>,
    /// Page start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Bound>,
    /// Row cap (per parent for a child level).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Singular result: the row or null (implies limit 1).
    #[serde(skip_serializing_if = "is_false")]
    pub one: bool,
    /// A relationship or root aggregate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
    /// Root aggregate grouping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    /// Filter over root aggregate output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub having: Option<Condition>,
    /// Ordering, as `[[column, "asc" | "desc"], ...]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_by: Option<Vec<(String, Direction)>>,
}

/// A sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// A page start: rows after (exclusive) or at-or-after the partial row.
///
/// Two bounds are equal when they name the same columns with the same
/// values, in any order (the wire form is a JSON object).
#[derive(Clone, Debug, Serialize)]
pub struct Bound {
    /// Column values of the start position, each column at most once, in
    /// column-name order when read from the wire or built by [`Bound::new`];
    /// columns of the order not named here count as null.
    #[serde(serialize_with = "row_object")]
    pub row: Vec<(String, Value)>,
    /// Whether the start row itself is excluded.
    pub exclusive: bool,
}

impl Bound {
    /// A bound from column values, kept in column-name order (as the wire
    /// reader keeps them, so equal bounds serialize alike); a column named
    /// again takes the later value.
    pub fn new(row: impl IntoIterator<Item = (String, Value)>, exclusive: bool) -> Bound {
        let mut named: Vec<(String, Value)> = Vec::new();
        for (column, value) in row {
            match named.binary_search_by(|(c, _)| c.as_str().cmp(&column)) {
                Ok(i) => named[i].1 = value,
                Err(i) => named.insert(i, (column, value)),
            }
        }
        Bound {
            row: named,
            exclusive,
        }
    }

    /// The value given for `column`, if any.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.row.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }
}

impl PartialEq for Bound {
    fn eq(&self, other: &Bound) -> bool {
        self.exclusive == other.exclusive
            && self.row.len() == other.row.len()
            && self.row.iter().all(|(c, v)| other.get(c) == Some(v))
    }
}

fn row_object<S: Serializer>(row: &[(String, Value)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(row.len()))?;
    for (column, value) in row {
        map.serialize_entry(column, value)?;
    }
    map.end()
}

/// A node of the filter tree, tagged by `type` on the wire.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Condition {
    /// `column OP literal`.
    Simple {
        /// The operator.
        op: SimpleOp,
        /// Must be a column reference.
        left: ValuePosition,
        /// Must be a literal.
        right: ValuePosition,
    },
    /// All of the conditions (true when empty).
    And {
        /// The operands.
        conditions: Vec<Condition>,
    },
    /// Any of the conditions (false when empty).
    Or {
        /// The operands.
        conditions: Vec<Condition>,
    },
    /// EXISTS / NOT EXISTS over a correlated child query.
    CorrelatedSubquery {
        /// EXISTS or NOT EXISTS.
        op: ExistsOp,
        /// The child query and its correlation.
        related: Box<CorrelatedSubquery>,
        /// Ask for the child-driven plan; results never depend on it.
        #[serde(skip_serializing_if = "is_false")]
        flip: bool,
    },
}

/// An operand of a simple condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ValuePosition {
    /// A column of the level's table.
    Column {
        /// The column name.
        name: String,
    },
    /// A literal value.
    Literal {
        /// The value.
        value: Literal,
    },
    /// A parameter the API tier binds before the query reaches the engine
    /// (Zero's `static`); lowering refuses it unbound.
    Static {
        /// What the parameter refers to (`authData`, `preMutationRow`).
        anchor: String,
        /// The field or path inside the anchor.
        field: StaticField,
    },
}

/// The field of a [`ValuePosition::Static`] parameter.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StaticField {
    /// One field name.
    Name(String),
    /// A path of field names.
    Path(Vec<String>),
}

/// A literal: a scalar, or an array of scalars (only for IN / NOT IN).
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// null, a boolean, a number or a string.
    Scalar(Value),
    /// An array of scalars.
    List(Vec<Value>),
}

impl Serialize for Literal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Literal::Scalar(v) => v.serialize(s),
            Literal::List(vs) => {
                let mut seq = s.serialize_seq(Some(vs.len()))?;
                for v in vs {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
        }
    }
}

impl From<Value> for Literal {
    fn from(v: Value) -> Self {
        Literal::Scalar(v)
    }
}

/// The fourteen simple operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SimpleOp {
    /// `=`
    #[serde(rename = "=")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `IS` (null is a value)
    #[serde(rename = "IS")]
    Is,
    /// `IS NOT`
    #[serde(rename = "IS NOT")]
    IsNot,
    /// `LIKE` (case-sensitive)
    #[serde(rename = "LIKE")]
    Like,
    /// `NOT LIKE`
    #[serde(rename = "NOT LIKE")]
    NotLike,
    /// `ILIKE` (ASCII case folded)
    #[serde(rename = "ILIKE")]
    ILike,
    /// `NOT ILIKE`
    #[serde(rename = "NOT ILIKE")]
    NotILike,
    /// `IN` (array literal)
    #[serde(rename = "IN")]
    In,
    /// `NOT IN` (array literal)
    #[serde(rename = "NOT IN")]
    NotIn,
}

impl SimpleOp {
    /// Every operator, in the order QUERY.md lists them.
    pub const ALL: [SimpleOp; 14] = [
        SimpleOp::Eq,
        SimpleOp::Ne,
        SimpleOp::Lt,
        SimpleOp::Le,
        SimpleOp::Gt,
        SimpleOp::Ge,
        SimpleOp::Is,
        SimpleOp::IsNot,
        SimpleOp::Like,
        SimpleOp::NotLike,
        SimpleOp::ILike,
        SimpleOp::NotILike,
        SimpleOp::In,
        SimpleOp::NotIn,
    ];

    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            SimpleOp::Eq => "=",
            SimpleOp::Ne => "!=",
            SimpleOp::Lt => "<",
            SimpleOp::Le => "<=",
            SimpleOp::Gt => ">",
            SimpleOp::Ge => ">=",
            SimpleOp::Is => "IS",
            SimpleOp::IsNot => "IS NOT",
            SimpleOp::Like => "LIKE",
            SimpleOp::NotLike => "NOT LIKE",
            SimpleOp::ILike => "ILIKE",
            SimpleOp::NotILike => "NOT ILIKE",
            SimpleOp::In => "IN",
            SimpleOp::NotIn => "NOT IN",
        }
    }
}

impl fmt::Display for SimpleOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// EXISTS or NOT EXISTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ExistsOp {
    /// At least one correlated child row.
    #[serde(rename = "EXISTS")]
    Exists,
    /// No correlated child row.
    #[serde(rename = "NOT EXISTS")]
    NotExists,
}

/// A child query with its correlation to the parent.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorrelatedSubquery {
    /// Which parent columns equal which child columns.
    pub correlation: Correlation,
    /// The child query (its `alias` names the relationship).
    pub subquery: Box<Ast>,
    /// Passed through untouched (`permissions`, `client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// Parent and child key columns, paired by position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Correlation {
    /// Columns of the parent level's table.
    pub parent_field: Vec<String>,
    /// Columns of the child level's table.
    pub child_field: Vec<String>,
}

/// An aggregate: `"count"`, `{"sum": column}` or `{"avg": column}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// Number of rows.
    Count,
    /// Sum of a column (null when there are no non-null values).
    Sum(String),
    /// Average of a column (null when there are no non-null values).
    Avg(String),
}

impl Serialize for Aggregate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Aggregate::Count => s.serialize_str("count"),
            Aggregate::Sum(c) | Aggregate::Avg(c) => {
                let mut m = s.serialize_map(Some(1))?;
                let key = if matches!(self, Aggregate::Sum(_)) {
                    "sum"
                } else {
                    "avg"
                };
                m.serialize_entry(key, c)?;
                m.end()
            }
        }
    }
}
