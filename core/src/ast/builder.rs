//! A fluent builder producing the same [`Ast`] as the wire JSON.
//!
//! ```
//! use rindle_core::{Direction, Query, col};
//! let ast = Query::table("issue")
//!     .filter(col("open").eq(true))
//!     .order_by("created", Direction::Desc)
//!     .limit(50)
//!     .into_ast();
//! assert_eq!(ast.limit, Some(50));
//! ```

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{
    Aggregate, Ast, Bound, Condition, CorrelatedSubquery, Correlation, Direction, ExistsOp,
    Literal, SimpleOp, ValuePosition,
};
use crate::value::Value;

/// A query under construction. [`Query::into_ast`] yields the [`Ast`].
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Query {
    ast: Ast,
}

impl Query {
    /// A query over `table`.
    pub fn table(table: &str) -> Query {
        Query {
            ast: Ast {
                table: table.to_string(),
                ..Ast::default()
            },
        }
    }

    /// Adds a filter; several calls are ANDed together.
    pub fn filter(mut self, cond: Condition) -> Query {
        self.ast.where_ = Some(match self.ast.where_.take() {
            None => cond,
            Some(Condition::And { mut conditions }) => {
                conditions.push(cond);
                Condition::And { conditions }
            }
            Some(prev) => Condition::And {
                conditions: alloc::vec![prev, cond],
            },
        });
        self
    }

    /// Appends an ordering column.
    pub fn order_by(mut self, column: &str, dir: Direction) -> Query {
        self.ast
            .order_by
            .get_or_insert_with(Vec::new)
            .push((column.to_string(), dir));
        self
    }

    /// Starts the page at (or, when `exclusive`, after) the partial row.
    pub fn start<'a, I, V>(mut self, row: I, exclusive: bool) -> Query
    where
        I: IntoIterator<Item = (&'a str, V)>,
        V: Into<Value>,
    {
        let row = row.into_iter().map(|(k, v)| (k.to_string(), v.into()));
        self.ast.start = Some(Bound::new(row, exclusive));
        self
    }

    /// Caps the number of rows (per parent on a child level).
    pub fn limit(mut self, n: u64) -> Query {
        self.ast.limit = Some(n);
        self
    }

    /// A singular result: the first row or null.
    pub fn one(mut self) -> Query {
        self.ast.one = true;
        self
    }

    /// Keeps only these columns (and the primary key).
    pub fn select<'a, I: IntoIterator<Item = &'a str>>(mut self, columns: I) -> Query {
        self.ast.select = Some(columns.into_iter().map(str::to_string).collect());
        self
    }

    /// Adds a child relationship named `alias`: rows of `child` whose
    /// `child_fields` equal this level's `parent_fields`.
    pub fn related(
        mut self,
        alias: &str,
        parent_fields: &[&str],
        child_fields: &[&str],
        child: Query,
    ) -> Query {
        self.ast
            .related
            .push(correlated(alias, parent_fields, child_fields, child));
        self
    }

    /// Makes this level an aggregate.
    pub fn aggregate(mut self, agg: Aggregate) -> Query {
        self.ast.aggregate = Some(agg);
        self
    }

    /// Groups a root aggregate by these columns.
    pub fn group_by<'a, I: IntoIterator<Item = &'a str>>(mut self, columns: I) -> Query {
        self.ast.group_by = Some(columns.into_iter().map(str::to_string).collect());
        self
    }

    /// Filters a root aggregate's output.
    pub fn having(mut self, cond: Condition) -> Query {
        self.ast.having = Some(cond);
        self
    }

    /// The finished AST.
    pub fn into_ast(self) -> Ast {
        self.ast
    }
}

impl From<Query> for Ast {
    fn from(q: Query) -> Ast {
        q.ast
    }
}

fn correlated(
    alias: &str,
    parent_fields: &[&str],
    child_fields: &[&str],
    child: Query,
) -> CorrelatedSubquery {
    let mut sub = child.ast;
    sub.alias = Some(alias.to_string());
    CorrelatedSubquery {
        correlation: Correlation {
            parent_field: parent_fields.iter().map(|s| s.to_string()).collect(),
            child_field: child_fields.iter().map(|s| s.to_string()).collect(),
        },
        subquery: Box::new(sub),
        system: None,
    }
}

/// A column reference, from which simple conditions are made.
#[derive(Clone, Debug)]
pub struct ColumnRef(String);

/// A column reference for building conditions: `col("open").eq(true)`.
pub fn col(name: &str) -> ColumnRef {
    ColumnRef(name.to_string())
}

impl ColumnRef {
    /// `column OP literal`.
    pub fn cmp(self, op: SimpleOp, value: impl Into<Value>) -> Condition {
        self.with(op, Literal::Scalar(value.into()))
    }

    fn with(self, op: SimpleOp, lit: Literal) -> Condition {
        Condition::Simple {
            op,
            left: ValuePosition::Column { name: self.0 },
            right: ValuePosition::Literal { value: lit },
        }
    }

    /// `=`
    pub fn eq(self, v: impl Into<Value>) -> Condition {
        self.cmp(SimpleOp::Eq, v)
    }
    /// `!=`
    pub fn ne(self, v: impl Into<Value>) -> Condition {
        self.cmp(SimpleOp::Ne, v)
    }
    /// `<`
    pub fn lt(self, v: impl Into<Value>) -> Condition {
        self.cmp(SimpleOp::Lt, v)
    }
    /// `<=`
    pub fn le(self, v: impl Into<Value>) -> Condition {
        self.cmp(SimpleOp::Le, v)
    }
    /// `>`
    pub fn gt(self, v: impl Into<Value>) -> Condition {
        self.cmp(SimpleOp::Gt, v)
    }
    /// `>=`
    pub fn ge(self, v: impl Into<Value>) -> Condition {
        self.cmp(SimpleOp::Ge, v)
    }
    /// `IS`
    pub fn is(&self, v: impl Into<Value>) -> Condition {
        self.clone().cmp(SimpleOp::Is, v)
    }
    /// `IS NOT`
    pub fn is_not(&self, v: impl Into<Value>) -> Condition {
        self.clone().cmp(SimpleOp::IsNot, v)
    }
    /// `IS null`
    pub fn is_null(&self) -> Condition {
        self.clone().cmp(SimpleOp::Is, Value::Null)
    }
    /// `IS NOT null`
    pub fn is_not_null(&self) -> Condition {
        self.clone().cmp(SimpleOp::IsNot, Value::Null)
    }
    /// `LIKE`
    pub fn like(self, pattern: &str) -> Condition {
        self.cmp(SimpleOp::Like, pattern)
    }
    /// `NOT LIKE`
    pub fn not_like(self, pattern: &str) -> Condition {
        self.cmp(SimpleOp::NotLike, pattern)
    }
    /// `ILIKE`
    pub fn ilike(self, pattern: &str) -> Condition {
        self.cmp(SimpleOp::ILike, pattern)
    }
    /// `NOT ILIKE`
    pub fn not_ilike(self, pattern: &str) -> Condition {
        self.cmp(SimpleOp::NotILike, pattern)
    }
    /// `IN [values]`
    pub fn in_list<I: IntoIterator<Item = V>, V: Into<Value>>(self, values: I) -> Condition {
        self.with(
            SimpleOp::In,
            Literal::List(values.into_iter().map(Into::into).collect()),
        )
    }
    /// `NOT IN [values]`
    pub fn not_in_list<I: IntoIterator<Item = V>, V: Into<Value>>(self, values: I) -> Condition {
        self.with(
            SimpleOp::NotIn,
            Literal::List(values.into_iter().map(Into::into).collect()),
        )
    }
}

/// All of the conditions.
pub fn and<I: IntoIterator<Item = Condition>>(conditions: I) -> Condition {
    Condition::And {
        conditions: conditions.into_iter().collect(),
    }
}

/// Any of the conditions.
pub fn or<I: IntoIterator<Item = Condition>>(conditions: I) -> Condition {
    Condition::Or {
        conditions: conditions.into_iter().collect(),
    }
}

/// EXISTS: at least one row of `child` correlates with the row.
pub fn exists(
    alias: &str,
    parent_fields: &[&str],
    child_fields: &[&str],
    child: Query,
) -> Condition {
    Condition::CorrelatedSubquery {
        op: ExistsOp::Exists,
        related: Box::new(correlated(alias, parent_fields, child_fields, child)),
        flip: false,
    }
}

/// NOT EXISTS: no row of `child` correlates with the row.
pub fn not_exists(
    alias: &str,
    parent_fields: &[&str],
    child_fields: &[&str],
    child: Query,
) -> Condition {
    Condition::CorrelatedSubquery {
        op: ExistsOp::NotExists,
        related: Box::new(correlated(alias, parent_fields, child_fields, child)),
        flip: false,
    }
}
