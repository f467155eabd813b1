#!/usr/bin/env bash
# Install esbuild for JavaScript workers: `npm ci` in src/atoll/entries/js/bundler (pinned by
# its package-lock.json; the native binary it brings runs without node). Idempotent.
# npm missing: installed with apt-get (Debian's nodejs + npm) unless ATOLL_SKIP_APT=1; then,
# still missing, a note and exit 0 (Python and wasm workers do not need esbuild; ATOLL_ESBUILD
# may name an esbuild binary of your own).
set -euo pipefail
cd "$(dirname "$0")/../src/atoll/entries/js/bundler"
if [ -x node_modules/@esbuild/linux-x64/bin/esbuild ] && [ -f node_modules/.package-lock.json ] \
    && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 && [ "${ATOLL_SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null; then
  as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
  }
  echo "setup: installing nodejs and npm (for esbuild, which bundles JavaScript workers)"
  # Only what is missing: a NodeSource nodejs already has npm and conflicts with Debian's.
  missing=(npm)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || true
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm not found: JavaScript workers need esbuild (apt-get install npm, then re-run scripts/setup.sh)" >&2
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
