//! Floats in messages and debug output: the engine's own shortest-digits
//! printer must print every float exactly as Rust's `{:?}` does.

use rindle_core::Value;

fn check(x: f64) {
    assert_eq!(
        format!("{:?}", Value::Float(x)),
        format!("{x:?}"),
        "bits {:#018x}",
        x.to_bits()
    );
}

#[test]
fn special_values_and_boundaries() {
    for x in [
        0.0,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        5e-324,
        1e-4,
        9.999999999999999e-5,
        1e16,
        9999999999999998.0,
        0.1,
        0.2,
        0.1 + 0.2,
        1.0 / 3.0,
        2.5,
        -1.5,
        123456789.125,
        1e23,
        4.35,
        0.3,
    ] {
        check(x);
    }
}

#[test]
fn every_power_of_two_and_ten() {
    // Every binary exponent, so the decimal-exponent estimate is checked
    // over the whole range; and the powers of ten, where it is tight.
    for e in -1074..=1023 {
        check(2f64.powi(e));
        check(-(2f64.powi(e)) * 1.5);
    }
    for e in -323..=308 {
        check(format!("1e{e}").parse().unwrap());
        check(format!("9.5e{e}").parse().unwrap());
    }
}

#[test]
fn random_bit_patterns() {
    // xorshift64: every finite float is equally likely by bits, so every
    // exponent and mantissa shape appears.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200_000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        check(f64::from_bits(s));
    }
    // And short decimals, as people type them.
    for i in 0..20_000u32 {
        check(f64::from(i) / 1000.0);
        check(f64::from(i) * 0.37);
    }
}
