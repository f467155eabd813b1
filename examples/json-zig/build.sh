#!/usr/bin/env bash
# atoll-toolchain: zig
#
# Builds pkg/json.wasm, a WASI command, from src/main.zig with Zig from
# PyPI's `ziglang` (pinned in scripts/install-toolchains.sh). The Python that
# has it: $ATOLL_PYTHON (set by `atoll build`), else the repo's .venv, else python3.
# Install the toolchain with: scripts/install-toolchains.sh
set -euo pipefail
cd "$(dirname "$0")"

python="${ATOLL_PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x ../../.venv/bin/python ]; then python=../../.venv/bin/python; else python=python3; fi
fi
mkdir -p pkg
"$python" -m ziglang build-exe src/main.zig -target wasm32-wasi -O ReleaseSmall \
    -femit-bin=pkg/json.wasm
chmod 644 pkg/json.wasm
echo "built examples/json-zig/pkg/json.wasm ($(wc -c < pkg/json.wasm) bytes)"
