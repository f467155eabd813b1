#!/usr/bin/env bash
# atoll-toolchain: c
#
# Builds build/app.wasm, a WASI command, from src/main.c with clang-14 and
# Debian's wasi-libc (--sysroot=/usr): stdio, getenv and friends work as on
# any POSIX system, through WASI. wasm-ld gives a program 64 KiB of stack
# unless told otherwise: here 1 MiB.
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p build
clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Wextra \
    -Wl,-z,stack-size=1048576 -Wl,--strip-debug \
    -o build/app.wasm src/main.c

# Optional: a smaller, faster module (Debian package 'binaryen').
if command -v wasm-opt >/dev/null 2>&1; then
    wasm-opt -O2 build/app.wasm -o build/app.wasm
fi
echo "built build/app.wasm ($(wc -c < build/app.wasm) bytes)"
