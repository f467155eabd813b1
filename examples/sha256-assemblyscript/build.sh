#!/usr/bin/env bash
# atoll-toolchain: assemblyscript
#
# Builds pkg/sha256.wasm, a WASI command, from assembly/index.ts with
# AssemblyScript and @assemblyscript/wasi-shim, both pinned in
# ../package.json / ../package-lock.json; this script runs `npm ci` in
# examples/ when node_modules is missing or stale.
# Install node and npm with: scripts/install-toolchains.sh
set -euo pipefail
cd "$(dirname "$0")"

examples=..
stamp="$examples/node_modules/.package-lock.json"
if [ ! -x "$examples/node_modules/.bin/asc" ] || [ ! -d "$examples/node_modules/@assemblyscript/wasi-shim" ] \
        || [ ! -f "$stamp" ] || [ "$examples/package-lock.json" -nt "$stamp" ]; then
    echo "installing the AssemblyScript compiler and WASI shim (npm ci in examples/)"
    (cd "$examples" && npm ci --no-audit --no-fund)
fi

mkdir -p pkg
# The shim's config maps process/console/abort to WASI and exports _start;
# --runtime stub: bump allocator, no GC (a fresh instance per request).
"$examples/node_modules/.bin/asc" assembly/index.ts \
    --config "$examples/node_modules/@assemblyscript/wasi-shim/asconfig.json" \
    -O3 --runtime stub -o pkg/sha256.wasm
chmod 644 pkg/sha256.wasm
echo "built examples/sha256-assemblyscript/pkg/sha256.wasm ($(wc -c < pkg/sha256.wasm) bytes)"
