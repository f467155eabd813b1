#!/usr/bin/env bash
# Rebuild the benchmark guests (clang-14 + wasi-libc: scripts/install-toolchains.sh installs them).
set -euo pipefail
cd "$(dirname "$0")"
clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-debug hello_cgi.c -o hello_cgi.wasm
ls -l hello_cgi.wasm
