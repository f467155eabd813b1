#!/usr/bin/env bash
# atoll-toolchain: rust
#
# Builds pkg/resize.wasm, a WASI command, from src/main.rs (no crates, no
# cargo). Debian's /usr/bin/rustc has the wasm32-wasi standard library
# (libstd-rust-dev-wasm32); a rustup rustc earlier on PATH usually does not.
# Linking goes through rust-lld, from lld-14.
# Install the toolchain with: scripts/install-toolchains.sh
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p pkg
/usr/bin/rustc --edition 2021 -C opt-level=3 -C panic=abort -C strip=debuginfo \
    --target wasm32-wasi -o pkg/resize.wasm src/main.rs
if command -v wasm-opt >/dev/null 2>&1; then
    # -g keeps the name section so traps show function names.
    wasm-opt -O3 -g pkg/resize.wasm -o pkg/resize.wasm
fi
chmod 644 pkg/resize.wasm
echo "built examples/resize-rust/pkg/resize.wasm ($(wc -c < pkg/resize.wasm) bytes)"
