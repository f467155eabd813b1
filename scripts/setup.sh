#!/usr/bin/env bash
# Set up everything atoll needs on Debian 12 (or any Debian/Ubuntu with Python >= 3.11):
# the system packages in scripts/apt-packages.txt, a virtualenv in .venv, and atoll in it.
# Idempotent: a second run installs nothing and takes a few seconds.
#   scripts/setup.sh            runtime + test tools
#   ATOLL_SKIP_APT=1 scripts/setup.sh   never call apt-get (you installed the packages yourself)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; return 1; fi
}

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "setup: $python not found; install Python 3.11+ (Debian: apt-get install python3)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: atoll needs Python 3.11 or newer; $python is $("$python" --version)" >&2
  exit 1
fi

# System packages: the ones listed, plus venv support and headers for Debian's python3
# (atoll compiles one C extension, src/atoll/runtime/native/*.c, at install).
missing=()
if [ "${ATOLL_SKIP_APT:-0}" != 1 ] && command -v dpkg-query >/dev/null; then
  wanted=$(grep -v '^\s*#' scripts/apt-packages.txt | tr -s ' \n' ' ')
  if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    wanted="$wanted python3-venv"
  fi
  if ! "$python" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    wanted="$wanted python3-dev"
  fi
  for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.atoll-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
  || [ -n "$(find src/atoll/runtime/native -newer "$stamp" -print -quit)" ] \
  || ! ls src/atoll/runtime/_native*.so >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi

# esbuild, which bundles JavaScript workers at load (pinned by
# src/atoll/entries/js/bundler/package-lock.json; its native binary needs no node at run time).
scripts/install-esbuild.sh
