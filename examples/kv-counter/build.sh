#!/usr/bin/env bash
# Build pkg/counter.wasm from c/counter.c with clang-14 (no libc, no WASI).
#
# Needs clang-14 and wasm-ld (Debian: clang-14, lld-14).
# Install the toolchains with: scripts/install-toolchains.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

CC="${CC:-clang-14}"
fail() {
    echo "error: $*" >&2
    echo "Install the wasm toolchains with: scripts/install-toolchains.sh (from the repo root)" >&2
    exit 1
}

command -v "$CC" >/dev/null 2>&1 || fail "$CC not found (Debian package 'clang-14')"
# clang looks for wasm-ld; Debian's lld-14 installs it as wasm-ld-14.
linker="$(command -v wasm-ld || command -v wasm-ld-14 || true)"
[ -n "$linker" ] || fail "wasm-ld not found (Debian package 'lld-14')"

mkdir -p pkg
out=pkg/counter.wasm
# -nostdlib: no libc; --no-entry: a library, not a program; exports are
# marked in the source (export_name). --allow-undefined is not used: every
# import is declared with import_module, so a typo fails the link.
"$CC" --target=wasm32 -O2 -nostdlib -ffreestanding -fuse-ld="$linker" \
    -Wall -Wextra -Werror -Iinclude \
    -Wl,--no-entry -Wl,--strip-debug \
    -o "$out" c/counter.c
chmod 644 "$out"

echo "built examples/kv-counter/$out ($(wc -c < "$out") bytes)"
