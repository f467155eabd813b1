#!/usr/bin/env bash
# Quickstart 2: set up, then lint (ruff), type-check (mypy --strict), check the import layers
# (import-linter) and run the tests (pytest).
# Extra arguments go to pytest (e.g. -k limits).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The template tests build Rust, C, Zig and AssemblyScript from source: install the toolchains.
PYTHON="$PWD/.venv/bin/python" scripts/install-toolchains.sh
echo "== Web API bundle (src/atoll/entries/js/webapi.js) matches its pinned sources"
scripts/build-webapi.sh --check
# npm is there now (install-toolchains): esbuild for the JavaScript worker tests.
scripts/install-esbuild.sh
# npm packages the JavaScript worker tests load from node_modules (pinned by their locks).
for fixture in tests/entries/js/fixtures/*/; do
  if [ -f "$fixture/package-lock.json" ] && { [ ! -f "$fixture/node_modules/.package-lock.json" ] \
      || [ "$fixture/package-lock.json" -nt "$fixture/node_modules/.package-lock.json" ]; }; then
    (cd "$fixture" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
echo "== ruff"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
echo "== mypy --strict"
.venv/bin/mypy
echo "== import layers (import-linter, .importlinter)"
.venv/bin/lint-imports --no-cache
echo "== pytest"
.venv/bin/pytest "$@"
# The same runtime on wasmtime-py's public API (the fallback when the compiled path cannot
# load): tests/runtime, tests/entries and tests/bindings are the code that goes through the
# engine backend (runtime/backend/); the rest of the suite sits above it and gains nothing
# from a second run, nor do the JavaScript entries (V8 runs their wasm, not wasmtime).
# Tests of the native backend's own pieces are deselected (marker native_backend).
# About a minute on 2 cores.
echo "== pytest, public-API backend (ATOLL_CAPI=0): tests/runtime tests/entries tests/bindings"
ATOLL_CAPI=0 exec .venv/bin/pytest -m "not native_backend" --ignore=tests/entries/js \
    tests/runtime tests/entries tests/bindings
