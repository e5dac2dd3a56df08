//! `cargo fuzz run ws_frame`: see `rindle_fuzz::ws_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rindle_fuzz::ws_frame(data));
