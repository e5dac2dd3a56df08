//! `cargo fuzz run control_body`: see `rindle_fuzz::control_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rindle_fuzz::control_body(data));
