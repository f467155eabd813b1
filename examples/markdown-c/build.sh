#!/usr/bin/env bash
# atoll-toolchain: c
#
# Builds pkg/markdown.wasm, a WASI command, from src/markdown.c with clang-14
# and Debian's wasi-libc (--sysroot=/usr). The stack is 1 MiB (wasm-ld gives 64 KiB
# by default): nested lists and quotes recurse.
# Install the toolchain with: scripts/install-toolchains.sh
set -euo pipefail
cd "$(dirname "$0")"

mkdir -p pkg
clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -Wall -Wextra -Werror \
    -Wl,-z,stack-size=1048576 -Wl,--strip-debug \
    -o pkg/markdown.wasm src/markdown.c
if command -v wasm-opt >/dev/null 2>&1; then
    wasm-opt -O2 pkg/markdown.wasm -o pkg/markdown.wasm
fi
chmod 644 pkg/markdown.wasm
echo "built examples/markdown-c/pkg/markdown.wasm ($(wc -c < pkg/markdown.wasm) bytes)"
