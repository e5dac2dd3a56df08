//! FNV-1a (64 bit) fingerprints of a subscription's table shapes.

use alloc::vec::Vec;

use super::{Fingerprint, ProtocolError, TableShape};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// An FNV-1a hasher with the protocol's writers.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    /// `u32(v)`: four bytes, little-endian.
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }

    /// `s(text)`: `u32(byte length)`, then the UTF-8 bytes.
    fn s(&mut self, text: &str) -> Result<(), ProtocolError> {
        self.u32(len32(text.len())?);
        self.bytes(text.as_bytes());
        Ok(())
    }
}

fn len32(n: usize) -> Result<u32, ProtocolError> {
    u32::try_from(n).map_err(|_| ProtocolError::InvalidTable {
        table: alloc::string::String::new(),
        reason: "a length does not fit in 32 bits",
    })
}

/// `normalizedFp` of PROTOCOL.md: the number of tables, then per table (sorted
/// by name) its name, its columns and its primary-key column names.
///
/// Refuses a table whose primary key indexes a column it does not have.
pub fn normalized_fp(tables: &[TableShape]) -> Result<Fingerprint, ProtocolError> {
    let mut sorted: Vec<&TableShape> = tables.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut h = Fnv(OFFSET);
    h.u32(len32(sorted.len())?);
    for t in sorted {
        t.validate()?;
        h.s(&t.name)?;
        h.u32(len32(t.columns.len())?);
        for c in &t.columns {
            h.s(c)?;
        }
        h.u32(len32(t.primary_key.len())?);
        for &i in &t.primary_key {
            // `validate` checked every index.
            h.s(&t.columns[i as usize])?;
        }
    }
    Ok(Fingerprint(h.0))
}
