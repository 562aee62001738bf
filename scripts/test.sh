#!/usr/bin/env bash
# Sets up and runs every test: the guest package's Python unit tests, formatting and lints,
# then all Rust tests (unit, integration and end-to-end with real componentize-py bundles, the
# real server, real HTTP, real Mosquitto brokers, and the real ixoncdkingress to compare with).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-broker.sh
bash scripts/setup-postgres.sh
# Debian's Chromium and ChromeDriver, pinned, for the console's browser test.
bash scripts/setup-browser.sh
# Debian's HAProxy, pinned, for the cluster test (tests/cluster.rs).
bash scripts/setup-haproxy.sh
# moto's S3-compatible server, pinned, for tests/objects_s3.rs. Cached.
bash scripts/setup-s3.sh
# pydantic-core for WebAssembly: the core of pydantic 2.12.5, the pydantic bundles get when their
# code imports it (runtime/src/python_build/requirements.rs). Cached after the first run.
bash scripts/build-wasi-wheels.sh 2.41.5
# regex (a C extension, which dateparser needs) for WebAssembly, for tests/native_c.rs. Cached too.
bash scripts/build-wasi-c-wheels.sh
# The real ixoncdkingress, for the differential test (tests/differential.rs). Cached too.
bash scripts/setup-reference-sdk.sh
# componentize-py built with wasmfn's reproducibility patch, for byte-identical builds
# (tests/hermetic.rs; vendor/README.md). About 10 minutes once; cached too.
bash scripts/setup-componentize-py.sh

echo "== guest-python unit tests"
python3 -m unittest discover -s guest-python/tests -t guest-python -v

echo "== scripts/module-graph.py: self-test, and no module cycle in the crates that have none"
python3 -B scripts/module-graph.py --self-test
python3 -B scripts/module-graph.py --no-cycles manifest/src host-apis/src triggers/src runtime/src

echo "== layers: each crate keeps to its dependencies (scripts/check-layers.sh)"
bash scripts/check-layers.sh --self-test
bash scripts/check-layers.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
