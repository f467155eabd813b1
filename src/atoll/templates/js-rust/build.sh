#!/usr/bin/env bash
# atoll-toolchain: rust
#
# Builds build/greeter.wasm from rust/lib.rs for wasm32-unknown-unknown.
# Debian's /usr/bin/rustc has the wasm32 standard library (a rustup rustc
# earlier on PATH usually does not) and links through rust-lld (lld-14).
# No cargo and no crates: one file, one rustc call.
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p build
/usr/bin/rustc --edition 2021 --crate-type cdylib -C opt-level=s -C panic=abort -C strip=debuginfo \
    --target wasm32-unknown-unknown -o build/greeter.wasm rust/lib.rs

# Optional: a smaller, faster module (Debian package 'binaryen'); -g keeps
# function names so traps show where they happened.
if command -v wasm-opt >/dev/null 2>&1; then
    wasm-opt -Os -g build/greeter.wasm -o build/greeter.wasm
fi
echo "built build/greeter.wasm ($(wc -c < build/greeter.wasm) bytes)"
