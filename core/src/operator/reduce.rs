//! Reduce: the accumulator behind `count`, `sum` and `avg`, for relationship
//! aggregates ([`super::join`]) and root aggregates ([`super::group`]).
//!
//! Delta rule: an accumulator over a multiset of values takes `add(v)` for a
//! row entering and `remove(v)` for a row leaving; its value is a function of
//! the multiset alone:
//!
//! ```text
//! count    = number of rows
//! sum(c)   = null if no non-null c; the exact integer sum if every c is an
//!            integer; else the float sum
//! avg(c)   = null if no non-null c; else sum(c) / (number of non-null c)
//! ```
//!
//! Integers are summed exactly (128-bit); float sums are recomputed by the
//! owner from the rows when a float leaves ([`Accumulator::needs_rebuild`]), so
//! rounding never drifts over a long stream.

use crate::value::Value;

/// Which aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggKind {
    Count,
    Sum,
    Avg,
}

/// A running aggregate over one group of rows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Accumulator {
    rows: i64,
    non_null: i64,
    int_sum: i128,
    floats: i64,
    float_sum: f64,
    /// Compensation term of the Neumaier sum.
    float_comp: f64,
    stale: bool,
}

impl Accumulator {
    /// Adds a row whose aggregated cell is `v` (ignored for count).
    pub(crate) fn add(&mut self, v: &Value) {
        self.rows += 1;
        match v {
            Value::Int(i) => {
                self.non_null += 1;
                self.int_sum += i128::from(*i);
            }
            Value::Float(f) => {
                self.non_null += 1;
                self.floats += 1;
                let t = self.float_sum + f;
                if self.float_sum.abs() >= f.abs() {
                    self.float_comp += (self.float_sum - t) + f;
                } else {
                    self.float_comp += (f - t) + self.float_sum;
                }
                self.float_sum = t;
            }
            _ => {}
        }
    }

    /// Removes a row whose aggregated cell is `v`.
    pub(crate) fn remove(&mut self, v: &Value) {
        self.rows -= 1;
        match v {
            Value::Int(i) => {
                self.non_null -= 1;
                self.int_sum -= i128::from(*i);
            }
            Value::Float(_) => {
                self.non_null -= 1;
                self.floats -= 1;
                // Subtracting floats loses exactness: the owner rebuilds.
                self.stale = true;
            }
            _ => {}
        }
    }

    /// Whether the float sum must be rebuilt from the rows.
    pub(crate) fn needs_rebuild(&self) -> bool {
        self.stale
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> i64 {
        self.rows
    }

    /// The aggregate's value.
    pub(crate) fn value(&self, kind: AggKind) -> Value {
        let sum = || -> Value {
            if self.floats == 0 {
                match i64::try_from(self.int_sum) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::Float(self.int_sum as f64),
                }
            } else {
                Value::Float(self.int_sum as f64 + (self.float_sum + self.float_comp))
            }
        };
        match kind {
            AggKind::Count => Value::Int(self.rows),
            AggKind::Sum if self.non_null == 0 => Value::Null,
            AggKind::Sum => sum(),
            AggKind::Avg if self.non_null == 0 => Value::Null,
            AggKind::Avg => {
                let total = match sum() {
                    Value::Int(i) => i as f64,
                    Value::Float(f) => f,
                    _ => 0.0,
                };
                Value::Float(total / self.non_null as f64)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_sum_avg() {
        let mut a = Accumulator::default();
        assert_eq!(a.value(AggKind::Count), Value::Int(0));
        assert_eq!(a.value(AggKind::Sum), Value::Null);
        assert_eq!(a.value(AggKind::Avg), Value::Null);
        a.add(&Value::Int(2));
        a.add(&Value::Null);
        a.add(&Value::Int(i64::MAX));
        assert_eq!(a.value(AggKind::Count), Value::Int(3));
        assert_eq!(a.value(AggKind::Sum), Value::Float(i64::MAX as f64 + 2.0));
        a.remove(&Value::Int(i64::MAX));
        assert_eq!(a.value(AggKind::Sum), Value::Int(2));
        assert_eq!(a.value(AggKind::Avg), Value::Float(2.0));
        a.add(&Value::Float(0.5));
        assert_eq!(a.value(AggKind::Sum), Value::Float(2.5));
        assert!(!a.needs_rebuild());
        a.remove(&Value::Float(0.5));
        assert!(a.needs_rebuild());
    }
}
