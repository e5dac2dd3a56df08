//! Deserialization of the `type`-tagged filter nodes and the static field.
//!
//! serde's derive for internally tagged and untagged enums buffers the whole
//! object in a generic `Content` tree first, which instantiates the entire AST
//! deserializer a second time (the browser build paid over 100 kB for it).
//! Here each tagged node is read in one pass into a flat record of every field
//! any variant has, then checked against its variant: a missing field, a
//! field of another variant or an unknown key is refused by name, exactly as
//! the derive did.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, de::Error as _};

use super::{
    Condition, CorrelatedSubquery, ExistsOp, Literal, SimpleOp, StaticField, ValuePosition,
};

/// `Some(T)` for a present field, so that an explicit `null` reaches `T`
/// (a null literal is a value, a null `flip` is an error) instead of meaning
/// "absent".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A field the variant needs.
fn need<T, E: de::Error>(v: Option<T>, name: &'static str) -> Result<T, E> {
    v.ok_or_else(|| E::missing_field(name))
}

/// Refuses the first present field the variant does not have.
fn only<E: de::Error>(
    extra: &[(&'static str, bool)],
    allowed: &'static [&'static str],
) -> Result<(), E> {
    match extra.iter().find(|(_, present)| *present) {
        Some((name, _)) => Err(E::unknown_field(name, allowed)),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum ConditionTag {
    Simple,
    And,
    Or,
    CorrelatedSubquery,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionRecord {
    #[serde(rename = "type")]
    tag: ConditionTag,
    #[serde(default, deserialize_with = "present")]
    op: Option<String>,
    #[serde(default, deserialize_with = "present")]
    left: Option<ValuePosition>,
    #[serde(default, deserialize_with = "present")]
    right: Option<ValuePosition>,
    #[serde(default, deserialize_with = "present")]
    conditions: Option<Vec<Condition>>,
    #[serde(default, deserialize_with = "present")]
    related: Option<Box<CorrelatedSubquery>>,
    #[serde(default, deserialize_with = "present")]
    flip: Option<bool>,
}

const SIMPLE_FIELDS: &[&str] = &["type", "op", "left", "right"];
const JUNCTION_FIELDS: &[&str] = &["type", "conditions"];
const EXISTS_FIELDS: &[&str] = &["type", "op", "related", "flip"];

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Condition, D::Error> {
        let r = ConditionRecord::deserialize(d)?;
        match r.tag {
            ConditionTag::Simple => {
                only(
                    &[
                        ("conditions", r.conditions.is_some()),
                        ("related", r.related.is_some()),
                        ("flip", r.flip.is_some()),
                    ],
                    SIMPLE_FIELDS,
                )?;
                let op = need(r.op, "op")?;
                let op = SimpleOp::ALL
                    .into_iter()
                    .find(|o| o.as_str() == op)
                    .ok_or_else(|| D::Error::unknown_variant(&op, SIMPLE_OPS))?;
                Ok(Condition::Simple {
                    op,
                    left: need(r.left, "left")?,
                    right: need(r.right, "right")?,
                })
            }
            ConditionTag::And | ConditionTag::Or => {
                only(
                    &[
                        ("op", r.op.is_some()),
                        ("left", r.left.is_some()),
                        ("right", r.right.is_some()),
                        ("related", r.related.is_some()),
                        ("flip", r.flip.is_some()),
                    ],
                    JUNCTION_FIELDS,
                )?;
                let conditions = need(r.conditions, "conditions")?;
                Ok(if matches!(r.tag, ConditionTag::And) {
                    Condition::And { conditions }
                } else {
                    Condition::Or { conditions }
                })
            }
            ConditionTag::CorrelatedSubquery => {
                only(
                    &[
                        ("left", r.left.is_some()),
                        ("right", r.right.is_some()),
                        ("conditions", r.conditions.is_some()),
                    ],
                    EXISTS_FIELDS,
                )?;
                let op = match need(r.op, "op")?.as_str() {
                    "EXISTS" => ExistsOp::Exists,
                    "NOT EXISTS" => ExistsOp::NotExists,
                    other => return Err(D::Error::unknown_variant(other, EXISTS_OPS)),
                };
                Ok(Condition::CorrelatedSubquery {
                    op,
                    related: need(r.related, "related")?,
                    flip: r.flip.unwrap_or(false),
                })
            }
        }
    }
}

/// Every operator's wire spelling, for "expected one of" errors.
const SIMPLE_OPS: &[&str] = &{
    let mut names = [""; SimpleOp::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = SimpleOp::ALL[i].as_str();
        i += 1;
    }
    names
};
const EXISTS_OPS: &[&str] = &["EXISTS", "NOT EXISTS"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum PositionTag {
    Column,
    Literal,
    Static,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PositionRecord {
    #[serde(rename = "type")]
    tag: PositionTag,
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Literal>,
    #[serde(default, deserialize_with = "present")]
    anchor: Option<String>,
    #[serde(default, deserialize_with = "present")]
    field: Option<StaticField>,
}

impl<'de> Deserialize<'de> for ValuePosition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ValuePosition, D::Error> {
        let r = PositionRecord::deserialize(d)?;
        match r.tag {
            PositionTag::Column => {
                only(
                    &[
                        ("value", r.value.is_some()),
                        ("anchor", r.anchor.is_some()),
                        ("field", r.field.is_some()),
                    ],
                    &["type", "name"],
                )?;
                Ok(ValuePosition::Column {
                    name: need(r.name, "name")?,
                })
            }
            PositionTag::Literal => {
                only(
                    &[
                        ("name", r.name.is_some()),
                        ("anchor", r.anchor.is_some()),
                        ("field", r.field.is_some()),
                    ],
                    &["type", "value"],
                )?;
                Ok(ValuePosition::Literal {
                    value: need(r.value, "value")?,
                })
            }
            PositionTag::Static => {
                only(
                    &[("name", r.name.is_some()), ("value", r.value.is_some())],
                    &["type", "anchor", "field"],
                )?;
                Ok(ValuePosition::Static {
                    anchor: need(r.anchor, "anchor")?,
                    field: need(r.field, "field")?,
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for StaticField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StaticField, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = StaticField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name or an array of field names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StaticField, E> {
                Ok(StaticField::Name(v.into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<StaticField, A::Error> {
                let mut path = Vec::new();
                while let Some(name) = s.next_element::<String>()? {
                    path.push(name);
                }
                Ok(StaticField::Path(path))
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}
