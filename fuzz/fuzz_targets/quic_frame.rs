//! `cargo fuzz run quic_frame`: see `rindle_fuzz::quic_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rindle_fuzz::quic_frame(data));
