#!/usr/bin/env bash
# Build pkg/heavy_compute.wasm from assembly/index.ts with AssemblyScript.
#
# The compiler comes from npm, pinned in ../package.json / ../package-lock.json;
# this script runs `npm ci` in examples/ when node_modules is missing or stale.
# Needs node and npm: scripts/install-toolchains.sh installs them if missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
examples="$(dirname "$here")"

fail() {
    echo "error: $*" >&2
    echo "Install the wasm toolchains with: scripts/install-toolchains.sh (from the repo root)" >&2
    exit 1
}

command -v node >/dev/null 2>&1 || fail "node not found"
command -v npm >/dev/null 2>&1 || fail "npm not found"

# Install (or refresh) the pinned compiler when the lock file is newer than
# what node_modules holds.
stamp="$examples/node_modules/.package-lock.json"
if [ ! -x "$examples/node_modules/.bin/asc" ] || [ ! -f "$stamp" ] \
        || [ "$examples/package-lock.json" -nt "$stamp" ]; then
    echo "installing the AssemblyScript compiler (npm ci in examples/)"
    (cd "$examples" && npm ci --no-audit --no-fund) || fail "npm ci failed in examples/"
fi

cd "$here"
mkdir -p pkg
out=pkg/heavy_compute.wasm
# --runtime stub: bump allocator, no GC. env.abort stays imported on purpose
# (atoll provides it), so no `--use abort=`.
"$examples/node_modules/.bin/asc" assembly/index.ts -O3 --runtime stub -o "$out"

echo "built examples/seed-assemblyscript/$out ($(wc -c < "$out") bytes)"
