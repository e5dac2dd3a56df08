//! `cargo fuzz run ast_json`: see `rindle_fuzz::ast_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rindle_fuzz::ast_json(data));
