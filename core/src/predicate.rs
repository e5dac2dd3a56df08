//! Compiled row predicates: the simple operators and AND/OR trees of them.
//!
//! Semantics (QUERY.md):
//! - `IS` / `IS NOT` compare with null as a value.
//! - Every other operator is false when either side is null, `!=` included.
//! - Comparisons use the comparator-version-2 order, so an integer and a float
//!   compare exactly, and values of different kinds order by kind.
//! - `LIKE`: `%` any run, `_` one character, `\` makes the next character literal
//!   (a trailing `\` is a literal backslash); case-sensitive. `ILIKE` folds ASCII
//!   case only. Both match text values only: any other kind never matches `LIKE`
//!   (and so always matches `NOT LIKE`, nulls aside).
//! - `IN` / `NOT IN` take an array of scalars; null elements match nothing, so
//!   `x NOT IN [1, null]` is true for every non-null `x` other than 1.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::ast::{Condition, Direction, Literal, SimpleOp, ValuePosition};
use crate::error::BuildError;
use crate::ordering::SortOrder;
use crate::schema::TableSchema;
use crate::value::{Row, Value};

/// A comparison operator of [`Predicate::Compare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A compiled LIKE pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LikePattern {
    tokens: Vec<LikeToken>,
    fold_case: bool,
    source: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LikeToken {
    Char(char),
    One,
    Any,
}

impl LikePattern {
    /// Compiles a pattern; `fold_case` gives ILIKE (ASCII case folding).
    pub fn new(pattern: &str, fold_case: bool) -> LikePattern {
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '%' => {
                    // Collapse runs of `%`: they match the same strings.
                    if tokens.last() == Some(&LikeToken::Any) {
                        continue;
                    }
                    LikeToken::Any
                }
                '_' => LikeToken::One,
                '\\' => LikeToken::Char(chars.next().unwrap_or('\\')),
                c => LikeToken::Char(c),
            });
        }
        if fold_case {
            for t in &mut tokens {
                if let LikeToken::Char(c) = t {
                    *c = c.to_ascii_lowercase();
                }
            }
        }
        LikePattern {
            tokens,
            fold_case,
            source: pattern.to_string(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern folds ASCII case (ILIKE).
    pub fn folds_case(&self) -> bool {
        self.fold_case
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let fold = |c: char| {
            if self.fold_case {
                c.to_ascii_lowercase()
            } else {
                c
            }
        };
        let p = &self.tokens;
        let (mut pi, mut si) = (0usize, 0usize);
        // Where to resume after the last `%`: (pattern index after it, text index).
        let mut star: Option<(usize, usize)> = None;
        loop {
            // (`get`, not indexing: the indices are always char boundaries,
            // and this keeps the panic path for bad ones out of the build)
            if let Some(c) = text.get(si..).and_then(|t| t.chars().next()) {
                match p.get(pi) {
                    Some(LikeToken::One) => {
                        pi += 1;
                        si += c.len_utf8();
                        continue;
                    }
                    Some(LikeToken::Char(x)) if *x == fold(c) => {
                        pi += 1;
                        si += c.len_utf8();
                        continue;
                    }
                    Some(LikeToken::Any) => {
                        pi += 1;
                        star = Some((pi, si));
                        continue;
                    }
                    _ => {}
                }
                // Mismatch: let the last `%` swallow one more character.
                let Some((sp, ss)) = star else { return false };
                let Some(skipped) = text.get(ss..).and_then(|t| t.chars().next()) else {
                    return false;
                };
                let ss = ss + skipped.len_utf8();
                star = Some((sp, ss));
                pi = sp;
                si = ss;
            } else {
                return p[pi..].iter().all(|t| *t == LikeToken::Any);
            }
        }
    }
}

/// A filter over one table's rows, compiled from simple conditions.
///
/// Column references are positions in the table's rows. Sources may use a
/// predicate as a hint to narrow their scans (see [`crate::Source::fetch`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Predicate {
    /// Always true or always false.
    Const(bool),
    /// Every operand holds (true when empty).
    And(Vec<Predicate>),
    /// Some operand holds (false when empty).
    Or(Vec<Predicate>),
    /// `column OP value` with a non-null value; false when the cell is null.
    Compare {
        /// Column position.
        column: usize,
        /// The operator.
        op: CompareOp,
        /// The literal (never null).
        value: Value,
    },
    /// `column IS value` (or `IS NOT` when `negated`); null is a value.
    Is {
        /// Column position.
        column: usize,
        /// The literal.
        value: Value,
        /// `IS NOT`.
        negated: bool,
    },
    /// `column LIKE pattern` (or `NOT LIKE` when `negated`); false on null.
    Like {
        /// Column position.
        column: usize,
        /// The pattern.
        pattern: LikePattern,
        /// `NOT LIKE` / `NOT ILIKE`.
        negated: bool,
    },
    /// `column IN values` (or `NOT IN`); false on null.
    In {
        /// Column position.
        column: usize,
        /// The non-null list values, sorted and deduplicated.
        values: Vec<Value>,
        /// `NOT IN`.
        negated: bool,
    },
}

impl Predicate {
    /// Evaluates the predicate on a row of its table.
    pub fn eval(&self, row: &[Value]) -> bool {
        match self {
            Predicate::Const(b) => *b,
            Predicate::And(ps) => ps.iter().all(|p| p.eval(row)),
            Predicate::Or(ps) => ps.iter().any(|p| p.eval(row)),
            Predicate::Compare { column, op, value } => {
                let cell = &row[*column];
                if cell.is_null() {
                    return false;
                }
                let o = cell.cmp(value);
                match op {
                    CompareOp::Eq => o == Ordering::Equal,
                    CompareOp::Ne => o != Ordering::Equal,
                    CompareOp::Lt => o == Ordering::Less,
                    CompareOp::Le => o != Ordering::Greater,
                    CompareOp::Gt => o == Ordering::Greater,
                    CompareOp::Ge => o != Ordering::Less,
                }
            }
            Predicate::Is {
                column,
                value,
                negated,
            } => (row[*column] == *value) != *negated,
            Predicate::Like {
                column,
                pattern,
                negated,
            } => match &row[*column] {
                Value::Null => false,
                Value::Text(s) => pattern.matches(s) != *negated,
                _ => *negated,
            },
            Predicate::In {
                column,
                values,
                negated,
            } => {
                let cell = &row[*column];
                if cell.is_null() {
                    return false;
                }
                values.binary_search(cell).is_ok() != *negated
            }
        }
    }

    /// Compiles a condition tree of simple conditions against a table.
    ///
    /// A correlated subquery in the tree is refused; callers that support them
    /// split them off first.
    pub fn compile(cond: &Condition, schema: &TableSchema) -> Result<Predicate, BuildError> {
        Ok(match cond {
            Condition::And { conditions } => Predicate::And(
                conditions
                    .iter()
                    .map(|c| Predicate::compile(c, schema))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Or { conditions } => Predicate::Or(
                conditions
                    .iter()
                    .map(|c| Predicate::compile(c, schema))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Simple { op, left, right } => compile_simple(*op, left, right, schema)?,
            Condition::CorrelatedSubquery { .. } => {
                return Err(BuildError::Unsupported {
                    table: schema.name().into(),
                    reason: "EXISTS / NOT EXISTS conditions are not supported in this position"
                        .into(),
                });
            }
        })
    }
}

fn invalid(schema: &TableSchema, reason: String) -> BuildError {
    BuildError::InvalidCondition {
        table: schema.name().into(),
        reason,
    }
}

fn compile_simple(
    op: SimpleOp,
    left: &ValuePosition,
    right: &ValuePosition,
    schema: &TableSchema,
) -> Result<Predicate, BuildError> {
    let name = match left {
        ValuePosition::Column { name } => name,
        ValuePosition::Literal { .. } => {
            return Err(invalid(
                schema,
                format!("the left side of `{op}` must be a column, not a literal"),
            ));
        }
        ValuePosition::Static { anchor, .. } => {
            return Err(invalid(
                schema,
                format!("unbound `{anchor}` parameter on the left of `{op}`"),
            ));
        }
    };
    let column = schema
        .column_index(name)
        .ok_or_else(|| BuildError::UnknownColumn {
            table: schema.name().into(),
            column: name.clone(),
            place: "where",
        })?;
    let lit = match right {
        ValuePosition::Literal { value } => value,
        ValuePosition::Column { name: other } => {
            return Err(invalid(
                schema,
                format!("the right side of `{name} {op}` must be a literal, not column `{other}`"),
            ));
        }
        ValuePosition::Static { anchor, .. } => {
            return Err(invalid(
                schema,
                format!("unbound `{anchor}` parameter on the right of `{name} {op}`"),
            ));
        }
    };
    let scalar = |lit: &Literal| -> Result<Value, BuildError> {
        match lit {
            Literal::Scalar(v) => Ok(v.clone()),
            Literal::List(_) => Err(invalid(
                schema,
                format!("`{name} {op}` takes a single value, not an array"),
            )),
        }
    };
    let compare = |cop: CompareOp| -> Result<Predicate, BuildError> {
        let value = scalar(lit)?;
        Ok(if value.is_null() {
            // Null on either side of a comparison is never true.
            Predicate::Const(false)
        } else {
            Predicate::Compare {
                column,
                op: cop,
                value,
            }
        })
    };
    let like = |fold: bool, negated: bool| -> Result<Predicate, BuildError> {
        match scalar(lit)? {
            Value::Text(p) => Ok(Predicate::Like {
                column,
                pattern: LikePattern::new(&p, fold),
                negated,
            }),
            Value::Null => Ok(Predicate::Const(false)),
            other => Err(invalid(
                schema,
                format!("`{name} {op}` needs a string pattern, got {other:?}"),
            )),
        }
    };
    let list = |negated: bool| -> Result<Predicate, BuildError> {
        match lit {
            Literal::List(vs) => {
                // Sorted through the engine's one row sort (as one-cell rows).
                let mut rows: Vec<Row> = vs
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(|v| Row::from([v.clone()]))
                    .collect();
                SortOrder::new(alloc::vec![(0, Direction::Asc)]).sort_rows(&mut rows, false);
                let mut values: Vec<Value> = rows.iter().map(|r| r[0].clone()).collect();
                values.dedup();
                Ok(Predicate::In {
                    column,
                    values,
                    negated,
                })
            }
            Literal::Scalar(v) => Err(invalid(
                schema,
                format!("`{name} {op}` needs an array, got {v:?}"),
            )),
        }
    };
    match op {
        SimpleOp::Eq => compare(CompareOp::Eq),
        SimpleOp::Ne => compare(CompareOp::Ne),
        SimpleOp::Lt => compare(CompareOp::Lt),
        SimpleOp::Le => compare(CompareOp::Le),
        SimpleOp::Gt => compare(CompareOp::Gt),
        SimpleOp::Ge => compare(CompareOp::Ge),
        SimpleOp::Is | SimpleOp::IsNot => Ok(Predicate::Is {
            column,
            value: scalar(lit)?,
            negated: op == SimpleOp::IsNot,
        }),
        SimpleOp::Like => like(false, false),
        SimpleOp::NotLike => like(false, true),
        SimpleOp::ILike => like(true, false),
        SimpleOp::NotILike => like(true, true),
        SimpleOp::In => list(false),
        SimpleOp::NotIn => list(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(p: &str, s: &str) -> bool {
        LikePattern::new(p, false).matches(s)
    }

    #[test]
    fn like_wildcards() {
        assert!(like("abc", "abc"));
        assert!(!like("abc", "abcd"));
        assert!(like("a%", "abcd"));
        assert!(like("%d", "abcd"));
        assert!(like("%b%", "abcd"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "ac"));
        assert!(like("%", ""));
        assert!(!like("_", ""));
        assert!(like("a%b%c", "aXbYbZc"));
        assert!(!like("a%b%c", "aXbYbZ"));
        assert!(like("_é_", "xéy"), "_ matches one character, not one byte");
        assert!(like("%%a", "ba"));
    }

    #[test]
    fn like_escapes() {
        assert!(like(r"100\%", "100%"));
        assert!(!like(r"100\%", "1000"));
        assert!(like(r"a\_b", "a_b"));
        assert!(!like(r"a\_b", "axb"));
        assert!(like(r"a\\b", r"a\b"));
        assert!(like(r"a\", r"a\"), "a trailing backslash is literal");
        assert!(like(r"\a", "a"));
    }

    #[test]
    fn like_case() {
        assert!(!like("ABC", "abc"));
        let p = LikePattern::new("AbC%", true);
        assert!(p.matches("abcdef"));
        assert!(p.matches("ABCDEF"));
        // Only ASCII folds.
        assert!(!LikePattern::new("É", true).matches("é"));
    }
}
