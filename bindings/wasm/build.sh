#!/usr/bin/env bash
# Builds the JS package into bindings/wasm/pkg (Node.js target by default;
# `build.sh web` for browsers) and prints the .wasm size, optimised with
# wasm-opt when a recent one (binaryen >= 116) is installed.
# RINDLE_REQUIRE_WASM_OPT=1 makes a missing wasm-opt an error (CI sets it).
# An optimised build larger than the budget (RINDLE_WASM_BUDGET bytes, the
# reference engine's 228 kB by default) is an error.
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
# binaryen's wasm-opt: the one `npm ci` puts in bindings/wasm/node_modules,
# else one on PATH. Debian's binaryen 108 breaks wasm-bindgen's externref
# table, so older ones are not used.
opt=bindings/wasm/node_modules/.bin/wasm-opt
[ -x "$opt" ] || opt=wasm-opt
opt_version=$("$opt" --version 2>/dev/null | grep -o '[0-9]\+' | head -1 || true)
if [ -n "$opt_version" ] && [ "$opt_version" -ge 116 ]; then
  "$opt" -Oz --converge --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    -o "$wasm.opt" "$wasm" && mv "$wasm.opt" "$wasm"
  echo "optimised with wasm-opt $opt_version"
elif [ "${RINDLE_REQUIRE_WASM_OPT:-}" = 1 ]; then
  echo "wasm-opt >= 116 is needed: (cd bindings/wasm && npm ci)" >&2
  exit 1
else
  echo "not optimised: no wasm-opt >= 116 (cd bindings/wasm && npm ci)"
fi
size=$(stat -c %s "$wasm")
echo "rindle_wasm_bg.wasm: $size bytes ($(gzip -9c "$wasm" | wc -c) gzipped)"
budget="${RINDLE_WASM_BUDGET:-228000}"
if [ -n "$opt_version" ] && [ "$opt_version" -ge 116 ] && [ "$size" -gt "$budget" ]; then
  echo "over the size budget: $size > $budget bytes (see bindings/wasm/README.md, Size)" >&2
  exit 1
fi
