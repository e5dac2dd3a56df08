#!/usr/bin/env bash
# Builds the JS package into bindings/wasm/pkg (Node.js target by default;
# `build.sh web` for browsers) and prints the .wasm size, optimised with
# wasm-opt when a recent one (binaryen >= 116) is installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${1:-nodejs}"
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$version" ]; then
  echo "wasm-bindgen $version is needed: cargo install wasm-bindgen-cli --version $version" >&2
  exit 1
fi
cargo build -p rindle-wasm --target wasm32-unknown-unknown --profile wasm
wasm-bindgen --target "$target" --out-dir bindings/wasm/pkg \
  target/wasm32-unknown-unknown/wasm/rindle_wasm.wasm
wasm=bindings/wasm/pkg/rindle_wasm_bg.wasm
# Debian's binaryen 108 breaks wasm-bindgen's externref table; newer ones work.
opt_version=$(wasm-opt --version 2>/dev/null | grep -o '[0-9]\+' | head -1 || true)
if [ -n "$opt_version" ] && [ "$opt_version" -ge 116 ]; then
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue -o "$wasm.opt" "$wasm" && mv "$wasm.opt" "$wasm"
fi
echo "rindle_wasm_bg.wasm: $(stat -c %s "$wasm") bytes ($(gzip -9c "$wasm" | wc -c) gzipped)"
