#!/usr/bin/env bash
# Sets up, builds the example functions (componentize-py is installed on first use) and serves
# them at http://127.0.0.1:8080 (override with --listen). Extra arguments go to `wasmfn serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release --bin wasmfn -- serve examples/hello-world examples/greet examples/counter \
    examples/file-store "$@"
