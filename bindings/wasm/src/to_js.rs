//! Results straight into JavaScript values: a serde serializer that builds
//! objects, arrays, numbers and strings with the JS built-ins, for the shapes
//! core's result writer uses (sequences, maps, scalars). No JSON text is made
//! and parsed again, and the module carries no number formatting.

use alloc::string::{String, ToString};
use core::fmt;

use js_sys::{Array, Object, Reflect};
use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeSeq};
use wasm_bindgen::JsValue;

/// Why a value could not be made: a shape results never have.
#[derive(Debug)]
pub(crate) struct Unsupported(String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

/// Serializes into a `JsValue`. Holds the string `"__proto__"`: a key that
/// plain assignment would take as the object's prototype, so it is defined
/// as an own property instead, as `JSON.parse` makes it.
#[derive(Clone, Copy)]
pub(crate) struct JsSerializer<'a> {
    proto: &'a JsValue,
}

impl JsSerializer<'_> {
    /// Serializes `v`.
    pub(crate) fn to_js<T: ?Sized + Serialize>(v: &T) -> Result<JsValue, Unsupported> {
        let proto = JsValue::from_str("__proto__");
        v.serialize(JsSerializer { proto: &proto })
    }
}

fn unsupported<T>(what: &str) -> Result<T, Unsupported> {
    Err(Unsupported(alloc::format!(
        "{what} cannot be a result value"
    )))
}

impl<'a> ser::Serializer for JsSerializer<'a> {
    type Ok = JsValue;
    type Error = Unsupported;
    type SerializeSeq = Elements<'a>;
    type SerializeTuple = Impossible<JsValue, Unsupported>;
    type SerializeTupleStruct = Impossible<JsValue, Unsupported>;
    type SerializeTupleVariant = Impossible<JsValue, Unsupported>;
    type SerializeMap = Entries<'a>;
    type SerializeStruct = Impossible<JsValue, Unsupported>;
    type SerializeStructVariant = Impossible<JsValue, Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<JsValue, Unsupported> {
        Ok(JsValue::from_bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<JsValue, Unsupported> {
        self.serialize_f64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<JsValue, Unsupported> {
        self.serialize_f64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<JsValue, Unsupported> {
        self.serialize_f64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<JsValue, Unsupported> {
        // As JSON.parse would read the integer: the nearest JS number.
        self.serialize_f64(v as f64)
    }
    fn serialize_u8(self, v: u8) -> Result<JsValue, Unsupported> {
        self.serialize_f64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<JsValue, Unsupported> {
        self.serialize_f64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<JsValue, Unsupported> {
        self.serialize_f64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<JsValue, Unsupported> {
        self.serialize_f64(v as f64)
    }
    fn serialize_f32(self, v: f32) -> Result<JsValue, Unsupported> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<JsValue, Unsupported> {
        // JSON has no NaN or infinities: null, as serde_json writes them.
        Ok(if v.is_finite() {
            JsValue::from_f64(v)
        } else {
            JsValue::NULL
        })
    }
    fn serialize_char(self, v: char) -> Result<JsValue, Unsupported> {
        let mut buf = [0; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }
    fn serialize_str(self, v: &str) -> Result<JsValue, Unsupported> {
        Ok(JsValue::from_str(v))
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<JsValue, Unsupported> {
        unsupported("bytes")
    }
    fn serialize_none(self) -> Result<JsValue, Unsupported> {
        Ok(JsValue::NULL)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<JsValue, Unsupported> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<JsValue, Unsupported> {
        Ok(JsValue::NULL)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<JsValue, Unsupported> {
        Ok(JsValue::NULL)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<JsValue, Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<JsValue, Unsupported> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<JsValue, Unsupported> {
        unsupported("an enum variant")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Elements<'a>, Unsupported> {
        Ok(Elements {
            array: Array::new(),
            to: self,
        })
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        unsupported("a tuple")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        unsupported("a tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        unsupported("an enum variant")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Entries<'a>, Unsupported> {
        Ok(Entries {
            object: Object::new(),
            key: JsValue::UNDEFINED,
            to: self,
        })
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        unsupported("a struct")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        unsupported("an enum variant")
    }
}

/// An array being filled.
pub(crate) struct Elements<'a> {
    array: Array,
    to: JsSerializer<'a>,
}

impl SerializeSeq for Elements<'_> {
    type Ok = JsValue;
    type Error = Unsupported;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Unsupported> {
        self.array.push(&v.serialize(self.to)?);
        Ok(())
    }
    fn end(self) -> Result<JsValue, Unsupported> {
        Ok(self.array.into())
    }
}

/// An object being filled; `key` waits for its value.
pub(crate) struct Entries<'a> {
    object: Object,
    key: JsValue,
    to: JsSerializer<'a>,
}

impl SerializeMap for Entries<'_> {
    type Ok = JsValue;
    type Error = Unsupported;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> Result<(), Unsupported> {
        self.key = k.serialize(self.to)?;
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), Unsupported> {
        let value = v.serialize(self.to)?;
        let set = if self.key == *self.to.proto {
            let own = Object::new();
            let _ = Reflect::set(&own, &"value".into(), &value);
            let _ = Reflect::set(&own, &"writable".into(), &JsValue::TRUE);
            let _ = Reflect::set(&own, &"enumerable".into(), &JsValue::TRUE);
            let _ = Reflect::set(&own, &"configurable".into(), &JsValue::TRUE);
            Reflect::define_property(&self.object, &self.key, &own)
        } else {
            Reflect::set(&self.object, &self.key, &value)
        };
        match set {
            Ok(true) => Ok(()),
            _ => Err(Unsupported("an object key could not be set".into())),
        }
    }
    fn end(self) -> Result<JsValue, Unsupported> {
        Ok(self.object.into())
    }
}
