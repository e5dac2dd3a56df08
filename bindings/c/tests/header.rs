//! The committed header `include/rindle.h` is what cbindgen makes of the
//! crate now. `RINDLE_BLESS=1 cargo test -p rindle-ffi --test header`
//! rewrites it.

use std::path::PathBuf;

#[test]
fn the_committed_header_is_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = dir.join("include/rindle.h");
    if std::env::var_os("RINDLE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/rindle.h is stale: run `RINDLE_BLESS=1 cargo test -p rindle-ffi --test header` and commit it"
    );
}
