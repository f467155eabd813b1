#!/usr/bin/env bash
# Build pkg/heavy_compute.wasm from rust/src/lib.rs (no crates, no cargo).
#
# Uses Debian's rustc (/usr/bin/rustc) and its wasm32 standard library
# (libstd-rust-dev-wasm32); a rustup rustc earlier on PATH usually has no
# wasm32 target installed, so it is deliberately not used. Linking goes
# through rust-lld, which Debian's lld-14 provides.
# Install the toolchain with: scripts/install-toolchains.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

RUSTC="${RUSTC:-/usr/bin/rustc}"
fail() {
    echo "error: $*" >&2
    echo "Install the wasm toolchains with: scripts/install-toolchains.sh (from the repo root)" >&2
    exit 1
}

[ -x "$RUSTC" ] || fail "$RUSTC not found (Debian package 'rustc')"
sysroot="$("$RUSTC" --print sysroot)"
ls "$sysroot"/lib/rustlib/wasm32-unknown-unknown/lib/libcore-*.rlib >/dev/null 2>&1 \
    || fail "no wasm32-unknown-unknown standard library for $RUSTC (Debian package 'libstd-rust-dev-wasm32')"
# Debian's rustc ships /usr/bin/rust-lld as a symlink to lld-14.
rust-lld -flavor wasm --version >/dev/null 2>&1 \
    || fail "rust-lld does not run (Debian package 'lld-14')"

mkdir -p pkg
out=pkg/heavy_compute.wasm
"$RUSTC" --edition 2021 --crate-type cdylib -C opt-level=3 -C panic=abort \
    --target wasm32-unknown-unknown -o "$out" rust/src/lib.rs

if command -v wasm-opt >/dev/null 2>&1; then
    # -g keeps the name section so traps show function names.
    wasm-opt -O3 -g "$out" -o "$out.opt" && mv "$out.opt" "$out"
else
    echo "note: wasm-opt (Debian 'binaryen') not found; skipping the optimisation pass" >&2
fi
chmod 644 "$out"

echo "built examples/seed/$out ($(wc -c < "$out") bytes)"
