#!/usr/bin/env bash
# Install the toolchains that build atoll's example wasm modules, on Debian 12.
#
#   Rust  -> Debian rustc + libstd-rust-dev-wasm32 + lld-14 (use /usr/bin/rustc)
#   C     -> clang-14 + lld-14 + wasi-libc + libclang-rt-14-dev-wasm32
#   tools -> binaryen (wasm-opt), wabt (wasm2wat, wasm-objdump, ...)
#   node  -> Debian nodejs + npm, only if node / npm are missing
#   AssemblyScript -> npm: assemblyscript and @assemblyscript/wasi-shim, pinned
#            in examples/package.json (npm ci in examples/); templates pin
#            their own in package.json and their build.sh runs `npm ci`
#   Zig   -> PyPI ziglang, pinned (as atoll.devtools.toolchains.ZIGLANG_VERSION), into
#            the Python that runs atoll: $PYTHON, else the active venv, else
#            the repo's .venv (skip: --no-zig)
#
# Idempotent: installs only what is missing and runs `apt-get update` at most
# once, only when a package has to be installed and the package lists are
# missing or do not know it. Runs as root, or through sudo otherwise.
#
# Usage: scripts/install-toolchains.sh [--no-zig] [--no-npm]
set -euo pipefail

ZIGLANG_VERSION="0.17.1"
APT_PACKAGES=(
    # Rust -> wasm32-unknown-unknown / wasm32-wasi
    rustc libstd-rust-dev-wasm32 lld-14
    # C -> wasm32-wasi
    clang-14 wasi-libc libclang-rt-14-dev-wasm32
    # inspection and optimisation
    binaryen wabt
)

with_zig=1
with_npm=1
for arg in "$@"; do
    case "$arg" in
        --no-zig) with_zig=0 ;;
        --no-npm) with_npm=0 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { echo "[install-toolchains] $*"; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "error: run as root or install sudo" >&2
    exit 1
fi

command -v apt-get >/dev/null 2>&1 || { echo "error: apt-get not found (this script targets Debian 12)" >&2; exit 1; }

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

# Packages that are not installed yet.
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done
# node and npm: only if the commands are missing (a NodeSource nodejs already
# bundles npm and conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
    # apt-get update once, only if some package has no install candidate
    # (fresh image with empty lists, or stale lists).
    need_update=0
    for pkg in "${missing[@]}"; do
        cand="$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')"
        if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
            need_update=1
            break
        fi
    done
    if [ "$need_update" -eq 1 ]; then
        log "apt-get update"
        "${SUDO[@]}" apt-get update
    fi
    log "apt-get install ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
else
    log "apt packages already installed: ${APT_PACKAGES[*]}"
fi

# Checks: the toolchains actually produce wasm.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '#![no_std]\n#[panic_handler]\nfn p(_: &core::panic::PanicInfo) -> ! { loop {} }\n#[no_mangle]\npub extern "C" fn f(x: u32) -> u32 { x + 1 }\n' > "$tmp/t.rs"
/usr/bin/rustc --edition 2021 --crate-type cdylib -C opt-level=3 -C panic=abort \
    --target wasm32-unknown-unknown -o "$tmp/rs.wasm" "$tmp/t.rs" \
    || { echo "error: /usr/bin/rustc cannot build wasm32-unknown-unknown (libstd-rust-dev-wasm32, lld-14)" >&2; exit 1; }
printf '#include <string.h>\nint f(const char *s) { return (int)strlen(s); }\n' > "$tmp/t.c"
clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor -o "$tmp/c.wasm" "$tmp/t.c" \
    || { echo "error: clang-14 cannot build wasm32-wasi (wasi-libc, libclang-rt-14-dev-wasm32, lld-14)" >&2; exit 1; }
log "rust:  $(/usr/bin/rustc --version) (use /usr/bin/rustc, not a rustup rustc), $(rust-lld -flavor wasm --version)"
log "c:     $(clang-14 --version | head -n1), wasi-libc in /usr/include/wasm32-wasi"
log "tools: $(wasm-opt --version), wabt $(wasm2wat --version)"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
log "node:  $(node --version), npm $(npm --version)"
if [ "$node_major" -lt 20 ]; then
    # npm prints an EBADENGINE warning; asc 0.28.20 was checked to build
    # the examples byte-for-byte the same under node 18.19 (Debian 12's).
    log "note: AssemblyScript declares node >= 20; it works with Debian 12's node 18.19"
fi

if [ "$with_npm" -eq 1 ]; then
    # AssemblyScript, pinned by examples/package-lock.json. Only apt-get goes
    # through sudo, so node_modules belongs to the user running this script.
    if [ -x "$repo/examples/node_modules/.bin/asc" ] && [ -d "$repo/examples/node_modules/@assemblyscript/wasi-shim" ] \
            && [ -f "$repo/examples/node_modules/.package-lock.json" ] \
            && [ ! "$repo/examples/package-lock.json" -nt "$repo/examples/node_modules/.package-lock.json" ]; then
        log "assemblyscript: already installed in examples/node_modules"
    else
        log "npm ci in examples/ (assemblyscript, @assemblyscript/wasi-shim)"
        (cd "$repo/examples" && npm ci --no-audit --no-fund)
    fi
    log "assemblyscript: $("$repo/examples/node_modules/.bin/asc" --version), wasi-shim $(node -p "require('$repo/examples/node_modules/@assemblyscript/wasi-shim/package.json').version")"
fi

if [ "$with_zig" -eq 1 ]; then
    # Into the Python that runs atoll (`atoll build` looks there), as the
    # invoking user: $PYTHON, else the active venv, else the repo's .venv.
    if [ -n "${PYTHON:-}" ]; then
        py="$PYTHON"
    elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        py="$VIRTUAL_ENV/bin/python"
    elif [ -x "$repo/.venv/bin/python" ]; then
        py="$repo/.venv/bin/python"
    else
        py=python3
    fi
    have="$("$py" -c 'import importlib.metadata as m; print(m.version("ziglang"))' 2>/dev/null || true)"
    if [ "$have" = "$ZIGLANG_VERSION" ]; then
        log "ziglang $ZIGLANG_VERSION already installed for $py"
    else
        log "$py -m pip install ziglang==$ZIGLANG_VERSION"
        # Debian's own python3 refuses pip installs outside a venv: run
        # scripts/setup.sh first (it makes .venv), or set PYTHON.
        "$py" -m pip install -q --disable-pip-version-check "ziglang==$ZIGLANG_VERSION" \
            || { echo "error: could not install ziglang into $py (run scripts/setup.sh first, set PYTHON, or pass --no-zig)" >&2; exit 1; }
    fi
    printf 'pub fn main() void {}\n' > "$tmp/t.zig"
    (cd "$tmp" && "$py" -m ziglang build-exe t.zig -target wasm32-wasi -O ReleaseSmall -femit-bin="$tmp/z.wasm") \
        || { echo "error: zig cannot build wasm32-wasi ($py -m ziglang)" >&2; exit 1; }
    log "zig:   $("$py" -m ziglang version) ($py -m ziglang)"
fi

log "done"
