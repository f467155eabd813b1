#!/usr/bin/env bash
# Quickstart 1: set up, then serve the seed example with `atoll dev` on http://127.0.0.1:8787
#   curl 'http://127.0.0.1:8787/?n=1000'   ->   Result: 332833500
# Extra arguments go to `atoll dev` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/atoll dev examples/seed "$@"
