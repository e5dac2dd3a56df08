//! Floats as text, for messages: the shortest decimal that reads back as the
//! same float, laid out exactly as Rust's `{:?}` lays it out (`0.1`, `3.0`,
//! `1e20`, `1.5e-7`, `-0.0`, `NaN`, `inf`).
//!
//! This is Burger and Dybvig's free-format algorithm ("Printing
//! Floating-Point Numbers Quickly and Accurately", 1996) over a small bignum.
//! It is slow next to the formatter in `core` and much smaller: the browser
//! build carries no float formatting tables. Speed does not matter here —
//! results go out through serde — only messages and debug output print floats.

use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;

/// An unsigned integer of any size: 32-bit limbs, least significant first,
/// no high zero limbs.
#[derive(Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(alloc::vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow10(&mut self, n: u32) {
        for _ in 0..n {
            self.mul_small(10);
        }
    }

    fn shl(&mut self, bits: u32) {
        let (words, bits) = ((bits / 32) as usize, bits % 32);
        if bits > 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let v = *limb;
                *limb = (v << bits) | carry;
                carry = v >> (32 - bits);
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        if !self.0.is_empty() {
            self.0.splice(0..0, core::iter::repeat_n(0, words));
        }
    }

    fn add(&self, o: &Big) -> Big {
        let (long, short) = if self.0.len() >= o.0.len() {
            (self, o)
        } else {
            (o, self)
        };
        let mut out = Vec::with_capacity(long.0.len() + 1);
        let mut carry = 0u64;
        for (i, &a) in long.0.iter().enumerate() {
            let v = u64::from(a) + u64::from(short.0.get(i).copied().unwrap_or(0)) + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        if carry > 0 {
            out.push(carry as u32);
        }
        Big(out)
    }

    /// `self -= o`, for `self >= o`.
    fn sub_assign(&mut self, o: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = i64::from(*limb) - i64::from(o.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(v < 0);
            *limb = v.rem_euclid(1 << 32) as u32;
        }
        self.trim();
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }
}

/// The shortest digits `d1 d2 … dn` (each 0–9, `d1 > 0`) and exponent `k`
/// with `x = 0.d1d2…dn × 10^k` reading back as `x`; `x` finite and positive.
fn shortest(x: f64) -> (Vec<u8>, i32) {
    let bits = x.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (f, e) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp_bits - 1075)
    };
    // Ties round to even, so the interval's ends belong to it when f is even.
    let even = f % 2 == 0;
    // The next float down is nearer than the next one up.
    let lower_closer = f == 1 << 52 && e > -1074;
    let (mut r, mut s, mut m_plus, mut m_minus) = if e >= 0 {
        let mut be = Big::from_u64(1);
        be.shl(e as u32);
        let mut r = Big::from_u64(f);
        if lower_closer {
            r.shl(e as u32 + 2);
            let mut be1 = be.clone();
            be1.shl(1);
            (r, Big::from_u64(4), be1, be)
        } else {
            r.shl(e as u32 + 1);
            (r, Big::from_u64(2), be.clone(), be)
        }
    } else {
        let mut s = Big::from_u64(1);
        if lower_closer {
            s.shl((2 - e) as u32);
            (Big::from_u64(f * 4), s, Big::from_u64(2), Big::from_u64(1))
        } else {
            s.shl((1 - e) as u32);
            (Big::from_u64(f * 2), s, Big::from_u64(1), Big::from_u64(1))
        }
    };
    // ceil(log10 x), or one less: from floor(log2 x), with floor(l × log10 2)
    // computed exactly in integers for the whole f64 range.
    let log2 = e + 64 - f.leading_zeros() as i32 - 1;
    let mut k = if log2 == 0 {
        0
    } else {
        ((log2 * 78913) >> 18) + 1
    };
    if k >= 0 {
        s.mul_pow10(k as u32);
    } else {
        let n = k.unsigned_abs();
        r.mul_pow10(n);
        m_plus.mul_pow10(n);
        m_minus.mul_pow10(n);
    }
    let high = |r: &Big, m_plus: &Big, s: &Big| match r.add(m_plus).cmp(s) {
        Ordering::Greater => true,
        Ordering::Equal => even,
        Ordering::Less => false,
    };
    if high(&r, &m_plus, &s) {
        k += 1;
    } else {
        r.mul_small(10);
        m_plus.mul_small(10);
        m_minus.mul_small(10);
    }
    let mut digits = Vec::new();
    loop {
        let mut d = 0u8;
        while r.cmp(&s) != Ordering::Less {
            r.sub_assign(&s);
            d += 1;
        }
        let low = match r.cmp(&m_minus) {
            Ordering::Less => true,
            Ordering::Equal => even,
            Ordering::Greater => false,
        };
        let high = high(&r, &m_plus, &s);
        match (low, high) {
            (false, false) => {
                digits.push(d);
                r.mul_small(10);
                m_plus.mul_small(10);
                m_minus.mul_small(10);
            }
            (true, false) => {
                digits.push(d);
                break;
            }
            (false, true) => {
                digits.push(d + 1);
                break;
            }
            (true, true) => {
                let mut twice = r.clone();
                twice.shl(1);
                digits.push(if twice.cmp(&s) == Ordering::Less {
                    d
                } else {
                    d + 1
                });
                break;
            }
        }
    }
    (digits, k)
}

/// Writes `x` as `{:?}` does.
pub(crate) fn write(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        return f.write_str("NaN");
    }
    if x.is_sign_negative() {
        f.write_str("-")?;
    }
    let x = x.abs();
    if x.is_infinite() {
        return f.write_str("inf");
    }
    if x == 0.0 {
        return f.write_str("0.0");
    }
    let (digits, k) = shortest(x);
    let digit = |f: &mut fmt::Formatter<'_>, d: u8| fmt::Write::write_char(f, char::from(b'0' + d));
    let zeros = |f: &mut fmt::Formatter<'_>, n: i32| (0..n).try_for_each(|_| f.write_str("0"));
    if !(1e-4..1e16).contains(&x) {
        digit(f, digits[0])?;
        if digits.len() > 1 {
            f.write_str(".")?;
            digits[1..].iter().try_for_each(|&d| digit(f, d))?;
        }
        return write!(f, "e{}", k - 1);
    }
    let n = digits.len() as i32;
    if k <= 0 {
        f.write_str("0.")?;
        zeros(f, -k)?;
        digits.iter().try_for_each(|&d| digit(f, d))
    } else if k < n {
        let (int, frac) = digits.split_at(k as usize);
        int.iter().try_for_each(|&d| digit(f, d))?;
        f.write_str(".")?;
        frac.iter().try_for_each(|&d| digit(f, d))
    } else {
        digits.iter().try_for_each(|&d| digit(f, d))?;
        zeros(f, k - n)?;
        f.write_str(".0")
    }
}
