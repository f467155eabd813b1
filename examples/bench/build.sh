#!/usr/bin/env bash
# Build the benchmark modules from rust/ (no crates, no cargo):
#   rust/bench.rs   (+ rust/kernels.rs) -> pkg/bench.wasm
#   rust/hostile.rs                     -> hostile/pkg/hostile.wasm
# and, with --native OUT, rust/native.rs (+ rust/kernels.rs) -> OUT, a host binary
# (what `python -m benchmarks.seed_table` runs for its "native" column).
#
# Uses Debian's rustc (/usr/bin/rustc) with its wasm32 standard library
# (libstd-rust-dev-wasm32) and rust-lld (lld-14): scripts/install-toolchains.sh.
# atoll-toolchain: rust
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

RUSTC="${RUSTC:-/usr/bin/rustc}"
fail() {
    echo "error: $*" >&2
    echo "Install the toolchains with: scripts/install-toolchains.sh (from the repo root)" >&2
    exit 1
}
[ -x "$RUSTC" ] || fail "$RUSTC not found (Debian package 'rustc')"

if [ "${1:-}" = "--native" ]; then
    out="${2:?usage: build.sh --native OUT}"
    mkdir -p "$(dirname "$out")"
    "$RUSTC" --edition 2021 -C opt-level=3 -C strip=debuginfo -o "$out" rust/native.rs
    echo "built $out"
    exit 0
fi

sysroot="$("$RUSTC" --print sysroot)"
ls "$sysroot"/lib/rustlib/wasm32-unknown-unknown/lib/libcore-*.rlib >/dev/null 2>&1 \
    || fail "no wasm32-unknown-unknown standard library for $RUSTC (Debian package 'libstd-rust-dev-wasm32')"

# A 64 KiB shadow stack (rustc's default is 1 MiB): two pages of initial memory,
# so a fresh instance is cheap. The kernels keep little on it.
build() {
    local src="$1" out="$2"
    mkdir -p "$(dirname "$out")"
    "$RUSTC" --edition 2021 --crate-type cdylib -C opt-level=3 -C panic=abort -C strip=debuginfo \
        -C link-arg=-zstack-size=65536 --target wasm32-unknown-unknown -o "$out" "$src"
    if command -v wasm-opt >/dev/null 2>&1; then
        # -g keeps the name section so traps show function names.
        wasm-opt -O3 -g "$out" -o "$out.opt" && mv "$out.opt" "$out"
    else
        echo "note: wasm-opt (Debian 'binaryen') not found; skipping the optimisation pass" >&2
    fi
    chmod 644 "$out"
    echo "built examples/bench/$out ($(wc -c < "$out") bytes)"
}

build rust/bench.rs pkg/bench.wasm
build rust/hostile.rs hostile/pkg/hostile.wasm
