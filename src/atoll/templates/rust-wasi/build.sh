#!/usr/bin/env bash
# atoll-toolchain: rust
#
# Builds build/app.wasm, a WASI command, from src/main.rs. Debian's
# /usr/bin/rustc has the wasm32-wasi standard library (a rustup rustc
# earlier on PATH usually does not) and links through rust-lld (lld-14).
# No cargo and no crates: one file, one rustc call.
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p build
/usr/bin/rustc --edition 2021 -C opt-level=s -C panic=abort -C strip=debuginfo \
    --target wasm32-wasi -o build/app.wasm src/main.rs

# Optional: a smaller, faster module (Debian package 'binaryen'); -g keeps
# function names so traps show where they happened.
if command -v wasm-opt >/dev/null 2>&1; then
    wasm-opt -Os -g build/app.wasm -o build/app.wasm
fi
echo "built build/app.wasm ($(wc -c < build/app.wasm) bytes)"
