#!/usr/bin/env bash
# Rebuild src/atoll/entries/js/webapi.js, the Web API bundle every JavaScript worker runs on, from the
# pinned npm packages in src/atoll/entries/js/webapi/ (package-lock.json) and the glue in its src/.
#   scripts/build-webapi.sh           npm ci + esbuild, writes webapi.js
#   scripts/build-webapi.sh --check   builds to a temporary file and fails if webapi.js differs
# Needs node >= 18 and npm (Debian: apt-get install nodejs npm) and the npm registry. The bundle is
# committed, so running atoll or its tests needs neither.
set -euo pipefail
cd "$(dirname "$0")/../src/atoll/entries/js/webapi"
check=0
if [ "${1:-}" = --check ]; then check=1; fi
if ! command -v npm >/dev/null; then
  echo "build-webapi: npm not found (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
# npm ci: exactly package-lock.json; --ignore-scripts: esbuild's binary comes in its
# @esbuild/<platform> package and needs no install script.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
fi
if [ "$check" = 1 ]; then
  tmp=$(mktemp --suffix=.js)
  trap 'rm -f "$tmp"' EXIT
  node build.mjs --out "$tmp"
  if ! cmp -s "$tmp" ../webapi.js; then
    echo "build-webapi: src/atoll/entries/js/webapi.js is out of date: run scripts/build-webapi.sh and commit it" >&2
    diff -u ../webapi.js "$tmp" | head -40 >&2 || true
    exit 1
  fi
  echo "build-webapi: webapi.js is up to date"
else
  node build.mjs
  echo "build-webapi: wrote src/atoll/entries/js/webapi.js ($(wc -c < ../webapi.js) bytes)"
fi
