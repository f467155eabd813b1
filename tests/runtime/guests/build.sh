#!/usr/bin/env bash
# Rebuild the test guests (clang-14 + wasi-libc: scripts/install-toolchains.sh installs them).
set -euo pipefail
cd "$(dirname "$0")"
clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-debug cgi_probe.c -o cgi_probe.wasm
ls -l cgi_probe.wasm
