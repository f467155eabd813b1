#!/usr/bin/env bash
# Build build/greet.mjs (Emscripten's JS glue, an ES module) and build/greet.wasm from c/greet.c.
#
# Toolchain: Debian 12's emscripten 3.1.6 (apt-get install -y emscripten node-acorn). Its
# optimizer needs the acorn npm package, which Debian installs under /usr/share/nodejs:
# NODE_PATH points node there (a node from elsewhere does not look in it).
# The built files are committed, so running the example needs no emcc.
set -euo pipefail
cd "$(dirname "$0")"
export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"
mkdir -p build
emcc c/greet.c -O2 \
    -s MODULARIZE=1 -s EXPORT_ES6=1 -s ENVIRONMENT=web -s FILESYSTEM=0 \
    -s EXPORTED_FUNCTIONS=_add,_greet,_free \
    -s EXPORTED_RUNTIME_METHODS=cwrap,UTF8ToString \
    -o build/greet.mjs
echo "built build/greet.mjs ($(wc -c < build/greet.mjs) bytes) and build/greet.wasm ($(wc -c < build/greet.wasm) bytes)"
