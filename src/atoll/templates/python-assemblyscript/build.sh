#!/usr/bin/env bash
# atoll-toolchain: assemblyscript
#
# Builds build/greeter.wasm from assembly/index.ts with AssemblyScript. The
# compiler is pinned in package.json / package-lock.json and installed here
# with `npm ci` when node_modules is missing or older than the lock file.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x node_modules/.bin/asc ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --prefer-offline --no-audit --no-fund
fi

mkdir -p build
# --runtime stub: bump allocator, no GC (a fresh instance per request).
node_modules/.bin/asc assembly/index.ts -O3 --runtime stub -o build/greeter.wasm
echo "built build/greeter.wasm ($(wc -c < build/greeter.wasm) bytes)"
