#!/usr/bin/env bash
# Copies the WASI interface definitions that wasmtime-wasi-http ships (the version pinned in
# Cargo.toml) into wit/deps/<package>/, so that the `function` world can import wasi:http.
# Run after upgrading wasmtime; see wit/deps/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(grep -E '^wasmtime-wasi-http = ' Cargo.toml | sed -E 's/.*"=([0-9.]+)".*/\1/')
cargo fetch --locked >/dev/null
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"wasmtime-wasi-http-$version"/wit/deps | head -1)
[[ -d $src ]] || { echo "update-wasi-wit: wasmtime-wasi-http $version not found in the cargo registry" >&2; exit 1; }
for file in "$src"/*.wit; do
  name=$(basename "$file" .wit)
  mkdir -p "wit/deps/$name"
  cp "$file" "wit/deps/$name/$name.wit"
done
echo "update-wasi-wit: wit/deps now holds the WASI packages of wasmtime-wasi-http $version"
