#!/usr/bin/env bash
# Rebuild the WAGI / workers-wasi test guests (clang-14 + wasi-libc: scripts/install-toolchains.sh installs them).
set -euo pipefail
cd "$(dirname "$0")"
clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-debug wagi_probe.c -o wagi_probe.wasm
ls -l wagi_probe.wasm
