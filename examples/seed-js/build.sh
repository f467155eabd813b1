#!/usr/bin/env bash
# path/to/module.wasm is the seed's Rust module (examples/seed/rust), built by
# examples/seed/build.sh and copied here under the path the article imports.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../seed/build.sh"
mkdir -p "$here/path/to"
cp "$here/../seed/pkg/heavy_compute.wasm" "$here/path/to/module.wasm"
