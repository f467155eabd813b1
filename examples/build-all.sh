#!/usr/bin/env bash
# Build the wasm of every example: runs each examples/*/build.sh in turn.
# Toolchains: scripts/install-toolchains.sh
set -euo pipefail

examples="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
failed=()
for script in "$examples"/*/build.sh; do
    name="$(basename "$(dirname "$script")")"
    echo "==> $name"
    if ! bash "$script"; then
        failed+=("$name")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "build failed: ${failed[*]}" >&2
    exit 1
fi
echo "all examples built"
