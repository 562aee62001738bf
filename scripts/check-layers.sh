#!/usr/bin/env bash
# Fails when a lower layer of wasmfn gains a dependency it must not have (docs/architecture.md,
# "Layers"). Crates cannot import each other in a cycle (cargo refuses), so what is left to guard
# is the direction: the manifest is plain data; the core runs invocations and knows no HTTP
# server, CLI, broker client or embedded database; the triggers know no HTTP server or CLI.
# hyper and tower-http may reach them only under reqwest (the IXON API, object storage and
# delivery clients), never as their own dependency.
#
#   bash scripts/check-layers.sh            checks the workspace
#   bash scripts/check-layers.sh --self-test  shows that the check fails on a forbidden crate
set -euo pipefail
cd "$(dirname "$0")/.."

# crate | forbidden anywhere in its normal dependency tree | forbidden as a direct dependency
RULES=(
  "wasmfn-manifest|wasmtime wasmfn-core wasmfn-host-apis tokio axum hyper clap rumqttc sled|"
  "wasmfn-core|axum clap rumqttc sled wasmfn-triggers wasmfn-runtime|hyper hyper-util tower tower-http"
  "wasmfn-triggers|axum clap wasmfn-runtime|hyper hyper-util tower tower-http"
)

# Prints one line per broken rule for `crate`, given its whole tree and its direct dependencies.
violations() {
  local crate=$1 anywhere=$2 direct=$3 tree=$4 deps=$5 name
  for name in $anywhere; do
    if grep -qx "$name" <<<"$tree"; then
      echo "layers: $crate must not depend on $name (see: cargo tree -p $crate -e normal -i $name)"
    fi
  done
  for name in $direct; do
    if grep -qx "$name" <<<"$deps"; then
      echo "layers: $crate must not list $name among its own dependencies"
    fi
  done
}

if [[ ${1:-} == --self-test ]]; then
  found=$(violations demo "sled axum" "hyper" $'tokio\nsled\nhyper' $'tokio\nhyper')
  grep -q "demo must not depend on sled" <<<"$found" || { echo "self-test: sled not caught" >&2; exit 1; }
  grep -q "must not list hyper" <<<"$found" || { echo "self-test: direct hyper not caught" >&2; exit 1; }
  if grep -q axum <<<"$found"; then echo "self-test: axum reported but absent" >&2; exit 1; fi
  echo "check-layers self-test: ok"
  exit 0
fi

failed=0
for rule in "${RULES[@]}"; do
  IFS='|' read -r crate anywhere direct <<<"$rule"
  tree=$(cargo tree -p "$crate" -e normal --prefix none --locked | awk '{print $1}' | sort -u)
  deps=$(cargo tree -p "$crate" -e normal --prefix none --depth 1 --locked | awk 'NR > 1 {print $1}' | sort -u)
  found=$(violations "$crate" "$anywhere" "$direct" "$tree" "$deps")
  if [[ -n $found ]]; then
    echo "$found" >&2
    failed=1
  else
    echo "layers: $crate keeps to its layer"
  fi
done
exit "$failed"
