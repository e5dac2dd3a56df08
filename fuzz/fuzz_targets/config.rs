//! `cargo fuzz run config`: see `rindle_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rindle_fuzz::config(data));
