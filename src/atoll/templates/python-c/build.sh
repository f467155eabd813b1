#!/usr/bin/env bash
# atoll-toolchain: c
#
# Builds build/greeter.wasm from c/greeter.c with clang-14 for wasm32-wasi and
# Debian's wasi-libc (--sysroot=/usr). The module is a library, not a
# program: -nostartfiles and --no-entry leave out main/_start, and the
# functions marked export_name(...) are its exports. It imports nothing.
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p build
clang-14 --target=wasm32-wasi --sysroot=/usr -Os -Wall -Wextra \
    -nostartfiles -Wl,--no-entry -Wl,--strip-debug \
    -o build/greeter.wasm c/greeter.c

# Optional: a smaller, faster module (Debian package 'binaryen').
if command -v wasm-opt >/dev/null 2>&1; then
    wasm-opt -Os build/greeter.wasm -o build/greeter.wasm
fi
echo "built build/greeter.wasm ($(wc -c < build/greeter.wasm) bytes)"
