#!/usr/bin/env bash
# Install esbuild for JavaScript workers: `npm ci` in src/atoll/entries/js/bundler (pinned by
# its package-lock.json). Idempotent. Without npm it says what to do and exits 0: Python and
# wasm workers do not need esbuild (set ATOLL_ESBUILD to use an esbuild binary of your own).
set -euo pipefail
cd "$(dirname "$0")/../src/atoll/entries/js/bundler"
if [ -x node_modules/@esbuild/linux-x64/bin/esbuild ] && [ -f node_modules/.package-lock.json ] \
    && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm not found: JavaScript workers need esbuild (apt-get install npm, then re-run scripts/setup.sh)" >&2
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
