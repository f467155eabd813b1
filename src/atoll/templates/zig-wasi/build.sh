#!/usr/bin/env bash
# atoll-toolchain: zig
#
# Builds build/app.wasm, a WASI command, from src/main.zig with Zig from
# PyPI's `ziglang` package. `atoll build` sets ATOLL_PYTHON to the Python that
# runs atoll, where `pip install ziglang` put Zig; outside atoll, python3.
set -euo pipefail
cd "$(dirname "$0")"

python="${ATOLL_PYTHON:-python3}"
mkdir -p build
"$python" -m ziglang build-exe src/main.zig -target wasm32-wasi -O ReleaseSmall \
    -femit-bin=build/app.wasm
echo "built build/app.wasm ($(wc -c < build/app.wasm) bytes)"
