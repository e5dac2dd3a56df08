//! The on-disk format, version 1. Stable: a test pins its bytes.
//!
//! Varints are unsigned LEB128; signed integers are zigzag-mapped first.
//!
//! **Cell**: one tag byte, then the payload:
//!
//! | tag | value | payload |
//! |---|---|---|
//! | 0 | null | — |
//! | 1 | false | — |
//! | 2 | true | — |
//! | 3 | integer | zigzag varint |
//! | 4 | float | 8 bytes, IEEE-754 bits, little-endian |
//! | 5 | text | varint byte length, UTF-8 bytes |
//!
//! **Row** (a value of a rows table): the version byte `1`, then every cell in
//! column order.
//!
//! **Key** (a key of a rows table): the primary-key cells in key order, each
//! encoded as a cell, except that a float equal to an integer is encoded as
//! that integer, so values the comparator holds equal (1 and 1.0) are one key.
//!
//! **Schema** (a value of the `_rindle_schema` table, keyed by table name):
//! the version byte `1`, varint column count, per column its name (varint
//! length, UTF-8), a type byte (0 integer, 1 real, 2 text, 3 boolean, 4 json)
//! and a nullable byte (0 / 1), then varint key column count and each key
//! column's position as a varint.

use rindle_core::{Column, ColumnType, Row, TableSchema, Value};

use crate::RedbError;

/// The format version written by this crate.
pub const FORMAT_VERSION: u8 = 1;

fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl Reader<'_> {
    fn bad(&self) -> RedbError {
        RedbError::Corrupt { what: self.what }
    }

    fn byte(&mut self) -> Result<u8, RedbError> {
        let (&b, rest) = self.bytes.split_first().ok_or_else(|| self.bad())?;
        self.bytes = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], RedbError> {
        if self.bytes.len() < n {
            return Err(self.bad());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, RedbError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(self.bad())
    }

    fn len(&mut self) -> Result<usize, RedbError> {
        let n = self.varint()?;
        usize::try_from(n).map_err(|_| self.bad())
    }

    fn text(&mut self) -> Result<&str, RedbError> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|_| RedbError::Corrupt { what: "text" })
    }

    fn cell(&mut self) -> Result<Value, RedbError> {
        Ok(match self.byte()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => {
                let z = self.varint()?;
                Value::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            4 => {
                let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| self.bad())?;
                Value::Float(f64::from_bits(u64::from_le_bytes(b)))
            }
            5 => Value::text(self.text()?),
            _ => return Err(self.bad()),
        })
    }
}

fn cell(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Bool(true) => out.push(2),
        Value::Int(i) => {
            out.push(3);
            varint(((i << 1) ^ (i >> 63)) as u64, out);
        }
        Value::Float(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Text(s) => {
            out.push(5);
            varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// A row's stored bytes.
pub fn encode_row(row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + row.len() * 4);
    out.push(FORMAT_VERSION);
    for v in row {
        cell(v, &mut out);
    }
    out
}

/// A stored row, checked against its table's width.
pub fn decode_row(bytes: &[u8], width: usize) -> Result<Row, RedbError> {
    let mut r = Reader { bytes, what: "row" };
    if r.byte()? != FORMAT_VERSION {
        return Err(RedbError::Corrupt {
            what: "row version",
        });
    }
    let mut cells = Vec::with_capacity(width);
    for _ in 0..width {
        cells.push(r.cell()?);
    }
    if !r.bytes.is_empty() {
        return Err(r.bad());
    }
    Ok(Row::new(cells))
}

/// The key bytes of a row's primary key.
pub fn encode_key(schema: &TableSchema, row: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 * schema.primary_key().len());
    for &c in schema.primary_key() {
        match &row[c] {
            Value::Float(f)
                if f.fract() == 0.0 && f.abs() < 9.0e15 && !(*f == 0.0 && f.is_sign_negative()) =>
            {
                cell(&Value::Int(*f as i64), &mut out);
            }
            v => cell(v, &mut out),
        }
    }
    out
}

fn type_byte(t: ColumnType) -> u8 {
    match t {
        ColumnType::Integer => 0,
        ColumnType::Real => 1,
        ColumnType::Text => 2,
        ColumnType::Boolean => 3,
        _ => 4,
    }
}

/// A schema's stored bytes.
pub fn encode_schema(schema: &TableSchema) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    varint(schema.columns().len() as u64, &mut out);
    for c in schema.columns() {
        varint(c.name.len() as u64, &mut out);
        out.extend_from_slice(c.name.as_bytes());
        out.push(type_byte(c.ty));
        out.push(u8::from(c.nullable));
    }
    varint(schema.primary_key().len() as u64, &mut out);
    for &k in schema.primary_key() {
        varint(k as u64, &mut out);
    }
    out
}

/// A stored schema.
pub fn decode_schema(name: &str, bytes: &[u8]) -> Result<TableSchema, RedbError> {
    let mut r = Reader {
        bytes,
        what: "schema",
    };
    if r.byte()? != FORMAT_VERSION {
        return Err(RedbError::Corrupt {
            what: "schema version",
        });
    }
    let n = r.len()?;
    let mut columns = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let cname = r.text()?.to_string();
        let ty = match r.byte()? {
            0 => ColumnType::Integer,
            1 => ColumnType::Real,
            2 => ColumnType::Text,
            3 => ColumnType::Boolean,
            4 => ColumnType::Json,
            _ => return Err(r.bad()),
        };
        let mut c = Column::new(&cname, ty);
        if r.byte()? == 0 {
            c = c.not_null();
        }
        columns.push(c);
    }
    let k = r.len()?;
    let mut pk = Vec::with_capacity(k.min(64));
    for _ in 0..k {
        let i = r.len()?;
        let c = columns.get(i).ok_or_else(|| r.bad())?;
        pk.push(c.name.clone());
    }
    let pk: Vec<&str> = pk.iter().map(String::as_str).collect();
    TableSchema::new(name, columns, &pk).map_err(|_| RedbError::Corrupt { what: "schema" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rindle_core::row;

    fn schema() -> TableSchema {
        TableSchema::new(
            "issue",
            vec![
                Column::new("id", ColumnType::Integer),
                Column::new("title", ColumnType::Text).not_null(),
                Column::new("open", ColumnType::Boolean),
                Column::new("score", ColumnType::Real),
            ],
            &["id"],
        )
        .unwrap()
    }

    /// The bytes of format version 1. Changing them breaks every database
    /// written so far: bump the version and keep reading the old one instead.
    #[test]
    fn format_v1_bytes_are_pinned() {
        let r = row![-3, "hé", true, 0.5];
        assert_eq!(
            encode_row(&r),
            [
                1, 3, 5, 5, 3, b'h', 0xc3, 0xa9, 2, 4, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f
            ]
        );
        assert_eq!(
            encode_row(&row![Value::Null, false, 300]),
            [1, 0, 1, 3, 0xd8, 0x04]
        );
        assert_eq!(encode_key(&schema(), &r), [3, 5]);
        assert_eq!(
            encode_schema(&schema()),
            [
                1, 4, 2, b'i', b'd', 0, 0, 5, b't', b'i', b't', b'l', b'e', 2, 0, 4, b'o', b'p',
                b'e', b'n', 3, 1, 5, b's', b'c', b'o', b'r', b'e', 1, 1, 1, 0
            ]
        );
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let s = schema();
        let r = row![i64::MIN, "", Value::Null, f64::NEG_INFINITY];
        assert_eq!(decode_row(&encode_row(&r), 4).unwrap(), r);
        assert_eq!(decode_schema("issue", &encode_schema(&s)).unwrap(), s);
        for bad in [
            &[][..],
            &[2][..],
            &[1, 9][..],
            &[1, 5, 10, b'a'][..],
            &[1, 3, 0x80][..],
        ] {
            assert!(decode_row(bad, 1).is_err(), "{bad:?}");
        }
        assert!(decode_row(&encode_row(&r), 3).is_err(), "trailing cell");
        assert!(decode_schema("x", &[1, 1, 1, b'a', 9, 0, 0]).is_err());
    }

    #[test]
    fn equal_keys_encode_equally() {
        let s = TableSchema::new("t", vec![Column::new("k", ColumnType::Real)], &["k"]).unwrap();
        assert_eq!(encode_key(&s, &row![1]), encode_key(&s, &row![1.0]));
        assert_ne!(encode_key(&s, &row![0.0]), encode_key(&s, &row![-0.0]));
    }
}
