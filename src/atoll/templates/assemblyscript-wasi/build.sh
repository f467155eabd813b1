#!/usr/bin/env bash
# atoll-toolchain: assemblyscript
#
# Builds build/app.wasm, a WASI command, from assembly/index.ts with
# AssemblyScript and @assemblyscript/wasi-shim (which turns `process`,
# `console` and `abort` into WASI calls and exports `_start`). Both are pinned
# in package.json / package-lock.json and installed here with `npm ci` when
# node_modules is missing or older than the lock file.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x node_modules/.bin/asc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --prefer-offline --no-audit --no-fund
fi

mkdir -p build
# --runtime stub: bump allocator, no GC (a fresh instance per request).
node_modules/.bin/asc assembly/index.ts \
    --config node_modules/@assemblyscript/wasi-shim/asconfig.json \
    -O3 --runtime stub -o build/app.wasm
echo "built build/app.wasm ($(wc -c < build/app.wasm) bytes)"
