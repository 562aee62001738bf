#!/usr/bin/env bash
# Checks and installs what wasmfn needs on a fresh machine: a Rust toolchain (cargo) and
# Python 3 with venv/pip (wasmfn installs its pinned componentize-py into a virtualenv of its
# own on first build, under $WASMFN_HOME, default ~/.cache/wasmfn).
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: install Rust (rustup) 1.95 or newer" >&2
  exit 1
fi

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "setup: Python 3 with venv is missing; installing it with apt-get" >&2
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
  else
    echo "setup: install python3 and python3-venv, then run this again" >&2
    exit 1
  fi
fi
echo "setup: cargo $(cargo --version | cut -d' ' -f2), $(python3 --version)"

