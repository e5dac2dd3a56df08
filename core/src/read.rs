//! Typed values read from a JSON tree.
//!
//! Every JSON input of the engine — query ASTs, column definitions, rows — is
//! read in two steps: any serde format (or a host, like the browser binding
//! walking JavaScript objects) builds a [`Json`] tree, and one plain,
//! non-generic reader per type turns the tree into the typed value. The
//! readers exist once in a binary whatever the number of serde formats, and a
//! refusal names what is wrong and where (`at where.conditions[1].op`).
//!
//! The [`Object`] and scalar helpers here are what those readers are built
//! from; hosts use them for their own small request shapes.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::value::Value;

/// A JSON value. Objects keep their keys in the given order, repeated keys
/// included (the readers refuse those); integers that fit `i64` are [`Json::Int`], every other number
/// is [`Json::Float`].
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer within `i64`.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    Text(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, as its key/value pairs.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// What the value is, for messages: `null`, `boolean true`,
    /// `integer 3`, `string "x"`, `an array`, `an object`.
    fn describe(&self) -> String {
        match self {
            Json::Null => "null".into(),
            Json::Bool(b) => format!("boolean `{b}`"),
            Json::Int(i) => format!("integer `{i}`"),
            Json::Float(x) => format!("number `{:?}`", Value::Float(*x)),
            Json::Text(s) => format!("string {:?}", Value::text(s)),
            Json::Array(_) => "an array".into(),
            Json::Object(_) => "an object".into(),
        }
    }
}

/// Why a JSON value is not what a reader expects, and where in the value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadError {
    // Boxed: readers pass results up every level, so the error stays one
    // pointer wide.
    inner: Box<Inner>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Inner {
    message: String,
    at: String,
}

impl ReadError {
    /// An error about the value being read.
    pub fn new(message: impl ToString) -> ReadError {
        ReadError {
            inner: Box::new(Inner {
                message: message.to_string(),
                at: String::new(),
            }),
        }
    }

    /// `expected …, got …`.
    pub fn invalid(got: &Json, expected: &str) -> ReadError {
        ReadError::new(format!("expected {expected}, got {}", got.describe()))
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The path to the offending value (`where.conditions[1].op`); empty for
    /// the value itself.
    pub fn at(&self) -> &str {
        &self.inner.at
    }

    /// The same error, one level further out: inside the field `name`.
    pub fn in_field(mut self, name: &str) -> ReadError {
        let at = &mut self.inner.at;
        *at = match (at.is_empty(), at.starts_with('[')) {
            (true, _) => name.into(),
            (false, true) => format!("{name}{at}"),
            (false, false) => format!("{name}.{at}"),
        };
        self
    }

    /// The same error, one level further out: inside element `index`.
    pub fn in_element(mut self, index: usize) -> ReadError {
        let at = &mut self.inner.at;
        *at = match (at.is_empty(), at.starts_with('[')) {
            (true, _) => format!("[{index}]"),
            (false, true) => format!("[{index}]{at}"),
            (false, false) => format!("[{index}].{at}"),
        };
        self
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())?;
        if !self.at().is_empty() {
            write!(f, " (at `{}`)", self.at())?;
        }
        Ok(())
    }
}

impl core::error::Error for ReadError {}

/// A reader's result.
pub type Read<T> = Result<T, ReadError>;

/// The fields of a JSON object whose every key is known.
#[derive(Clone, Copy)]
pub struct Object<'a> {
    pairs: &'a [(String, Json)],
}

impl<'a> Object<'a> {
    /// Reads `v` as an object (`expected` names it in errors) whose keys are
    /// all among `known`; an unknown key is refused by name.
    pub fn new(v: &'a Json, expected: &str, known: &[&str]) -> Read<Object<'a>> {
        let Json::Object(pairs) = v else {
            return Err(ReadError::invalid(v, expected));
        };
        let mut seen = alloc::vec![false; known.len()];
        for (key, _) in pairs {
            let Some(i) = known.iter().position(|k| k == key) else {
                return Err(ReadError::new(format!(
                    "unknown field `{key}`, expected one of {}",
                    Names(known)
                )));
            };
            if core::mem::replace(&mut seen[i], true) {
                return Err(ReadError::new(format!("duplicate field `{key}`")));
            }
        }
        Ok(Object { pairs })
    }

    /// The field's value, if the key is present (an explicit null included).
    pub fn get(&self, name: &str) -> Option<&'a Json> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Reads a present field (an explicit null included) with `read`.
    pub fn field<T>(&self, name: &str, read: fn(&Json) -> Read<T>) -> Read<Option<T>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => located(read(v), name).map(Some),
        }
    }

    /// Reads a field that must be present.
    pub fn need<T>(&self, name: &str, read: fn(&Json) -> Read<T>) -> Read<T> {
        located(read(self.required(name)?), name)
    }

    /// Reads a field where absent and null both mean `None`.
    pub fn optional<T>(&self, name: &str, read: fn(&Json) -> Read<T>) -> Read<Option<T>> {
        match self.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => located(read(v), name).map(Some),
        }
    }

    fn required(&self, name: &str) -> Read<&'a Json> {
        self.get(name)
            .ok_or_else(|| ReadError::new(format!("missing field `{name}`")))
    }

    /// Refuses the first present key of `other` (fields of another variant of a
    /// tagged object), naming the keys this variant has.
    pub fn only(&self, other: &[&str], allowed: &[&str]) -> Read<()> {
        match other.iter().find(|k| self.get(k).is_some()) {
            Some(key) => Err(ReadError::new(format!(
                "unknown field `{key}`, expected one of {}",
                Names(allowed)
            ))),
            None => Ok(()),
        }
    }
}

/// A field reader's result, its error placed inside the field.
fn located<T>(r: Read<T>, name: &str) -> Read<T> {
    r.map_err(|e| e.in_field(name))
}

/// `` `a`, `b`, `c` `` for messages.
struct Names<'a>(&'a [&'a str]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

/// Which of `names` the string `v` is, as its index; anything else is refused
/// naming the choices (`what` says what the string is).
pub fn one_of(v: &Json, what: &str, names: &[&str]) -> Read<usize> {
    let s = text(v)?;
    names.iter().position(|n| *n == s).ok_or_else(|| {
        ReadError::new(format!(
            "unknown {what} `{s}`, expected one of {}",
            Names(names)
        ))
    })
}

/// A string, borrowed.
pub fn text(v: &Json) -> Read<&str> {
    match v {
        Json::Text(s) => Ok(s),
        other => Err(ReadError::invalid(other, "a string")),
    }
}

/// A string.
pub fn string(v: &Json) -> Read<String> {
    text(v).map(String::from)
}

/// A boolean.
pub fn boolean(v: &Json) -> Read<bool> {
    match v {
        Json::Bool(b) => Ok(*b),
        other => Err(ReadError::invalid(other, "a boolean")),
    }
}

/// A non-negative integer.
pub fn count(v: &Json) -> Read<u64> {
    match v {
        Json::Int(i) if *i >= 0 => Ok(i.unsigned_abs()),
        other => Err(ReadError::invalid(other, "a non-negative integer")),
    }
}

/// An array's elements.
pub fn array(v: &Json) -> Read<&[Json]> {
    match v {
        Json::Array(items) => Ok(items),
        other => Err(ReadError::invalid(other, "an array")),
    }
}

/// An array read element by element with `read`.
pub fn list<T>(v: &Json, read: fn(&Json) -> Read<T>) -> Read<Vec<T>> {
    array(v)?
        .iter()
        .enumerate()
        .map(|(i, x)| read(x).map_err(|e| e.in_element(i)))
        .collect()
}

/// An array of strings.
pub fn strings(v: &Json) -> Read<Vec<String>> {
    list(v, string)
}

/// A scalar cell value: null, a boolean, a number or a string.
pub fn value(v: &Json) -> Read<Value> {
    Ok(match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Int(i) => Value::Int(*i),
        Json::Float(x) => Value::Float(*x),
        Json::Text(s) => Value::text(s),
        other => {
            return Err(ReadError::invalid(
                other,
                "null, a boolean, a number or a string",
            ));
        }
    })
}

/// Implements `Deserialize` for a type by reading a [`Json`] tree first, so
/// the type's reader is one plain function whatever the format.
macro_rules! deserialize_via_tree {
    ($ty:ty, $read:expr) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let tree = <$crate::read::Json as serde::Deserialize>::deserialize(d)?;
                $read(&tree).map_err(<D::Error as serde::de::Error>::custom)
            }
        }
    };
}
pub(crate) use deserialize_via_tree;

/// Deepest nesting a tree may have when built by deserialization.
pub const MAX_DEPTH: usize = 128;

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(TreeVisitor { depth: 0 })
    }
}

/// Builds the tree; refuses nesting past [`MAX_DEPTH`].
struct TreeVisitor {
    depth: usize,
}

impl TreeVisitor {
    fn inner<E: de::Error>(&self) -> Result<TreeSeed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("the value is nested too deeply"));
        }
        Ok(TreeSeed {
            depth: self.depth + 1,
        })
    }
}

struct TreeSeed {
    depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for TreeSeed {
    type Value = Json;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(TreeVisitor { depth: self.depth })
    }
}

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        // An integer token outside i64 is a float (QUERY.md literal rules).
        Ok(i64::try_from(v).map_or(Json::Float(v as f64), Json::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Text(v.into()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::Text(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = a.next_element_seed(self.inner()?)? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
        // Duplicate keys stay: the readers refuse them by name.
        let mut pairs: Vec<(String, Json)> = Vec::new();
        while let Some(key) = a.next_key::<String>()? {
            let v = a.next_value_seed(self.inner()?)?;
            pairs.push((key, v));
        }
        Ok(Json::Object(pairs))
    }
}

/// A boxed reader result, for recursive types.
pub(crate) fn boxed<T>(r: Read<T>) -> Read<Box<T>> {
    r.map(Box::new)
}
