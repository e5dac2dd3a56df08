//! Values, rows, and the comparator-version-2 total order.
//!
//! One order serves sorting, start bounds, equality in joins and predicates, and
//! protocol compatibility: null first; then `false < true`; then numbers by exact
//! numeric value (an integer and a float compare exactly, floats by IEEE-754
//! total order); then text by its UTF-8 bytes. Values of different kinds order by
//! kind: null < bool < number < text.
//!
//! `Eq` and `Hash` agree with that order: `Int(1)` and `Float(1.0)` are the same
//! value and hash alike, while `Float(-0.0)` sorts just below `Int(0)` and
//! `Float(0.0)` (IEEE total order puts negative zero first).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::Deref;

/// The comparator version this crate implements (PROTOCOL.md `comparatorVersion`).
pub const COMPARATOR_VERSION: u32 = 2;

/// One cell of a row.
#[derive(Clone)]
pub enum Value {
    /// SQL null.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit IEEE-754 float.
    Float(f64),
    /// UTF-8 text (also the storage of JSON columns).
    Text(Arc<str>),
}

/// The kind of a [`Value`], in comparator order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueKind {
    /// [`Value::Null`].
    Null,
    /// [`Value::Bool`].
    Bool,
    /// [`Value::Int`] or [`Value::Float`].
    Number,
    /// [`Value::Text`].
    Text,
}

impl Value {
    /// Text value from a string slice.
    pub fn text(s: &str) -> Value {
        Value::Text(Arc::from(s))
    }

    /// The kind of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Bool,
            Value::Int(_) | Value::Float(_) => ValueKind::Number,
            Value::Text(_) => ValueKind::Text,
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text, if this is a text value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => crate::float::write(f, *x),
            Value::Text(s) => quoted(f, s),
        }
    }
}

/// A string in double quotes with `"`, `\` and control characters escaped
/// (what `{:?}` prints for most strings, without the Unicode tables).
fn quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("\"")
}

/// Cells as `[1, "a", null]`, for messages.
pub(crate) struct Cells<'a>(pub(crate) &'a [Value]);

impl fmt::Display for Cells<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            fmt::Debug::fmt(v, f)?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// 2^63 as an f64 (exactly representable).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Exact comparison of an integer with a float.
fn cmp_int_float(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        // Positive NaN sorts above every number, negative NaN below.
        return if f.is_sign_negative() {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    if f >= TWO_POW_63 {
        return Ordering::Less;
    }
    if f < -TWO_POW_63 {
        return Ordering::Greater;
    }
    // In range: the saturating cast truncates toward zero exactly.
    let t = f as i64;
    match i.cmp(&t) {
        Ordering::Equal => {}
        other => return other,
    }
    // Same integer part: the fraction decides. `t as f64` is exact whenever `f` has
    // a fraction (|f| < 2^53), and equals `f` otherwise.
    let frac = f - t as f64;
    if frac > 0.0 {
        Ordering::Less
    } else if frac < 0.0 {
        Ordering::Greater
    } else if f == 0.0 && f.is_sign_negative() {
        // IEEE total order: -0.0 sorts below 0.
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

impl Ord for Value {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Bool(a), Bool(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(a), Float(b)) => a.total_cmp(b),
            (Int(a), Float(b)) => cmp_int_float(*a, *b),
            (Float(a), Int(b)) => cmp_int_float(*b, *a).reverse(),
            (Text(a), Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => self.kind().cmp(&other.kind()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A kind tag and 64 payload bits (one pair of writes for every kind
        // but text: each write is inlined hasher code).
        let (tag, bits) = match self {
            Value::Null => (0, 0),
            Value::Bool(b) => (1, u64::from(*b)),
            Value::Int(i) => (2, *i as u64),
            Value::Float(f) => {
                // A float equal to an integer must hash like that integer.
                let f = *f;
                if (-TWO_POW_63..TWO_POW_63).contains(&f)
                    && !(f == 0.0 && f.is_sign_negative())
                    && (f as i64) as f64 == f
                {
                    (2, (f as i64) as u64)
                } else {
                    (3, f.to_bits())
                }
            }
            Value::Text(s) => {
                state.write(s.as_bytes());
                (4, s.len() as u64)
            }
        };
        state.write_u8(tag);
        state.write_u64(bits);
    }
}

/// A row: the cells of one table row, in the table's column order.
///
/// Rows are immutable and cheap to clone (one reference count).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Row(Arc<[Value]>);

impl Row {
    /// A row from its cells.
    pub fn new(cells: Vec<Value>) -> Row {
        Row(cells.into())
    }

    /// The cells.
    pub fn cells(&self) -> &[Value] {
        &self.0
    }

    /// True when both handles share one allocation.
    pub fn ptr_eq(a: &Row, b: &Row) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Deref for Row {
    type Target = [Value];
    fn deref(&self) -> &[Value] {
        &self.0
    }
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Self {
        Row::new(cells)
    }
}

impl<const N: usize> From<[Value; N]> for Row {
    /// A row from a fixed number of cells, in one allocation.
    fn from(cells: [Value; N]) -> Self {
        Row(Arc::from(cells))
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// Builds a [`Row`] from expressions convertible into [`Value`]:
/// `row![1, "title", true, Value::Null]`.
#[macro_export]
macro_rules! row {
    ($($cell:expr),* $(,)?) => {
        $crate::Row::new($crate::__private::vec![$($crate::Value::from($cell)),*])
    };
}

mod serde_impl {
    use super::{Row, Value};
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use core::fmt;
    use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
    use serde::ser::{Serialize, SerializeSeq, Serializer};

    /// The compact (non-human-readable, e.g. postcard) form: an enum with one
    /// variant per kind, since such formats cannot describe a bare scalar's kind.
    #[derive(serde::Serialize)]
    enum CompactRef<'a> {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        Text(&'a str),
    }

    #[derive(serde::Deserialize)]
    enum CompactOwned<'a> {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        #[serde(borrow)]
        Text(alloc::borrow::Cow<'a, str>),
    }

    impl Serialize for Value {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if !s.is_human_readable() {
                return match self {
                    Value::Null => CompactRef::Null,
                    Value::Bool(b) => CompactRef::Bool(*b),
                    Value::Int(i) => CompactRef::Int(*i),
                    Value::Float(f) => CompactRef::Float(*f),
                    Value::Text(t) => CompactRef::Text(t),
                }
                .serialize(s);
            }
            match self {
                Value::Null => s.serialize_unit(),
                Value::Bool(b) => s.serialize_bool(*b),
                Value::Int(i) => s.serialize_i64(*i),
                Value::Float(f) => s.serialize_f64(*f),
                Value::Text(t) => s.serialize_str(t),
            }
        }
    }

    /// Accepts any scalar; refuses arrays and objects.
    struct ValueVisitor;

    impl<'de> Visitor<'de> for ValueVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("null, a boolean, a number or a string")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(ValueVisitor)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
            Ok(Value::Int(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
            // An integer token outside i64 is a float (QUERY.md literal rules).
            Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            Ok(Value::Float(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
            Ok(Value::Text(Arc::from(v)))
        }
    }

    impl<'de> Deserialize<'de> for Value {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
            if !d.is_human_readable() {
                return Ok(match CompactOwned::deserialize(d)? {
                    CompactOwned::Null => Value::Null,
                    CompactOwned::Bool(b) => Value::Bool(b),
                    CompactOwned::Int(i) => Value::Int(i),
                    CompactOwned::Float(f) => Value::Float(f),
                    CompactOwned::Text(t) => Value::Text(Arc::from(&*t)),
                });
            }
            d.deserialize_any(ValueVisitor)
        }
    }

    impl Serialize for Row {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.len()))?;
            for v in self.iter() {
                seq.serialize_element(v)?;
            }
            seq.end()
        }
    }

    impl<'de> Deserialize<'de> for Row {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
            struct RowVisitor;
            impl<'de> Visitor<'de> for RowVisitor {
                type Value = Row;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an array of cells")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Row, A::Error> {
                    let mut cells = Vec::with_capacity(a.size_hint().unwrap_or(0).min(256));
                    while let Some(v) = a.next_element::<Value>()? {
                        cells.push(v);
                    }
                    Ok(Row::new(cells))
                }
            }
            d.deserialize_seq(RowVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn h(v: &Value) -> u64 {
        // FNV-1a as a simple deterministic hasher for the test.
        struct Fnv(u64);
        impl Hasher for Fnv {
            fn finish(&self) -> u64 {
                self.0
            }
            fn write(&mut self, bytes: &[u8]) {
                for b in bytes {
                    self.0 ^= u64::from(*b);
                    self.0 = self.0.wrapping_mul(0x100000001b3);
                }
            }
        }
        let mut s = Fnv(0xcbf29ce484222325);
        v.hash(&mut s);
        s.finish()
    }

    #[test]
    fn kinds_order_null_bool_number_text() {
        let ordered = vec![
            Value::Null,
            Value::Bool(false),
            Value::Bool(true),
            Value::Float(f64::NEG_INFINITY),
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Float(-0.5),
            Value::Float(-0.0),
            Value::Int(0),
            Value::Float(0.5),
            Value::Int(1),
            Value::Float(1.5),
            Value::Int(i64::MAX),
            Value::Float(TWO_POW_63),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NAN),
            Value::text(""),
            Value::text("A"),
            Value::text("a"),
            Value::text("ab"),
            Value::text("é"),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn integers_and_floats_compare_exactly() {
        // 2^53 + 1 is not representable as f64; the nearest float is 2^53.
        let big = (1i64 << 53) + 1;
        assert!(Value::Int(big) > Value::Float((1i64 << 53) as f64));
        assert_eq!(Value::Int(1 << 53), Value::Float((1i64 << 53) as f64));
        assert!(Value::Int(i64::MAX) < Value::Float(TWO_POW_63));
        assert_eq!(Value::Int(i64::MIN), Value::Float(-TWO_POW_63));
        assert!(Value::Int(i64::MIN) > Value::Float(-TWO_POW_63 * 2.0));
        assert!(Value::Int(-3) < Value::Float(-2.5));
        assert!(Value::Int(-2) > Value::Float(-2.5));
        assert!(Value::Int(2) < Value::Float(2.5));
        assert!(Value::Int(3) > Value::Float(2.5));
        assert!(Value::Int(0) > Value::Float(-f64::NAN));
    }

    #[test]
    fn equal_values_hash_alike() {
        assert_eq!(Value::Int(7), Value::Float(7.0));
        assert_eq!(h(&Value::Int(7)), h(&Value::Float(7.0)));
        assert_eq!(h(&Value::Int(0)), h(&Value::Float(0.0)));
        assert_ne!(Value::Int(0), Value::Float(-0.0));
        assert_eq!(h(&Value::Int(i64::MIN)), h(&Value::Float(-TWO_POW_63)));
        assert_ne!(Value::Bool(true), Value::Int(1));
        assert_ne!(Value::text("1"), Value::Int(1));
    }

    #[test]
    fn text_orders_by_utf8_bytes() {
        // U+FFFD (EF BF BD) sorts below U+1F600 (F0 9F 98 80) by bytes, although
        // UTF-16 code units would order them the other way.
        assert!(Value::text("\u{FFFD}") < Value::text("\u{1F600}"));
        assert!(Value::text("Z") < Value::text("a"));
    }

    #[test]
    fn row_macro() {
        let r = row![1, "x", true, Value::Null, 2.5];
        assert_eq!(r.len(), 5);
        assert_eq!(r[1], Value::text("x"));
    }
}
