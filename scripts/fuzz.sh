#!/usr/bin/env bash
# Coverage-guided fuzzing of wasmfn's parsers with cargo-fuzz (libFuzzer) on the nightly
# toolchain. Run by hand, not in CI: CI replays what this finds (fuzz/corpus/<target>/ and
# fuzz/regressions/<target>/) as ordinary tests (host-apis/tests/fuzz_corpus.rs,
# tests/fuzz_corpus.rs). See docs/security.md, "Fuzzing".
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
HOST_TARGETS=(docstore_query docstore_update)
RUNTIME_TARGETS=(cron_schedule manifest ingress_body http_arguments)

usage() {
  cat <<USAGE
usage: scripts/fuzz.sh [--seconds N] [--build-only] [--no-cmin] [TARGET...]

Installs cargo-fuzz $CARGO_FUZZ_VERSION (when missing or at another version), builds the fuzz
targets with cargo +nightly fuzz (target dir fuzz/target) and runs each for N seconds, one
worker, growing fuzz/corpus/<target>/; the corpus is then minimised (cargo fuzz cmin). Inputs
that crash (a panic, an overflowed stack), hang or exhaust memory are written to fuzz/regressions/<target>/; fix the code, keep
the file (the replay tests run it) and commit both.

Targets (default: all; the runtime ones compile the runtime crate, wasmtime included, so they
are built last):
  ${HOST_TARGETS[*]}
  ${RUNTIME_TARGETS[*]}

Options and environment:
  --seconds N      run time per target (default \$FUZZ_SECONDS or 60)
  --build-only     build the targets, run nothing
  --no-cmin        keep the corpus as the run left it
  FUZZ_TOOLCHAIN   the nightly toolchain to use (default: nightly)
USAGE
}

seconds=${FUZZ_SECONDS:-60}
build_only=false
cmin=true
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --seconds=*) seconds=${1#--seconds=}; shift ;;
    --build-only) build_only=true; shift ;;
    --no-cmin) cmin=false; shift ;;
    -*) echo "fuzz: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "fuzz: --seconds wants a whole number, not '$seconds'" >&2; exit 2 ;; esac
[ ${#targets[@]} -gt 0 ] || targets=("${HOST_TARGETS[@]}" "${RUNTIME_TARGETS[@]}")

is_runtime() {
  local t
  for t in "${RUNTIME_TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
  return 1
}
for target in "${targets[@]}"; do
  is_runtime "$target" && continue
  case " ${HOST_TARGETS[*]} " in *" $target "*) ;; *) echo "fuzz: unknown target '$target'" >&2; usage >&2; exit 2 ;; esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
toolchain=${FUZZ_TOOLCHAIN:-nightly}

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the $toolchain toolchain"
  rustup toolchain install "$toolchain" --profile minimal
fi
if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked
fi

# Release build with debug assertions and overflow checks (as in tests), no sanitizer: the code
# is safe Rust (unsafe_code = deny), so AddressSanitizer would only slow building and running.
fuzz_flags=(--fuzz-dir "$root/fuzz" --target-dir "$root/fuzz/target" --sanitizer none --debug-assertions)
features_for() { if is_runtime "$1"; then echo "--features=runtime"; fi; }

# Host-apis targets first: they build in minutes; the runtime ones pull in wasmtime.
ordered=()
for target in "${targets[@]}"; do is_runtime "$target" || ordered+=("$target"); done
for target in "${targets[@]}"; do is_runtime "$target" && ordered+=("$target"); done

failed=()
ran=false
for target in "${ordered[@]}"; do
  echo "fuzz: building $target"
  # shellcheck disable=SC2046 # the feature flag is one word or none
  cargo "+$toolchain" fuzz build "${fuzz_flags[@]}" $(features_for "$target") "$target"
  $build_only && continue
  ran=true
  corpus=fuzz/corpus/$target
  regressions=fuzz/regressions/$target
  mkdir -p "$corpus" "$regressions"
  echo "fuzz: running $target for ${seconds}s"
  # The functions run on 2 MiB thread stacks in the server (tokio's default) and in tests, so
  # the fuzzer gets no more: a recursion that overflows there must overflow here.
  # shellcheck disable=SC2046
  if ! (ulimit -s 2048 && cargo "+$toolchain" fuzz run "${fuzz_flags[@]}" $(features_for "$target") \
      "$target" "$corpus" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=4096 -artifact_prefix="$regressions/" -print_final_stats=1); then
    failed+=("$target")
    echo "fuzz: $target found a problem; the input is in $regressions/" >&2
    continue
  fi
  if $cmin; then
    # Keeps one input per coverage edge (-use_counters=0: not per hit count), so the committed
    # corpus stays a few dozen KB per target.
    # shellcheck disable=SC2046
    (ulimit -s 2048 && cargo "+$toolchain" fuzz cmin "${fuzz_flags[@]}" $(features_for "$target") \
      "$target" "$corpus" -- -use_counters=0 -max_len=4096 -timeout=10 -rss_limit_mb=2048)
  fi
  echo "fuzz: $target: $(find "$corpus" -type f | wc -l) corpus inputs, $(du -sk "$corpus" | cut -f1) KB"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: problems found by: ${failed[*]} (inputs in fuzz/regressions/<target>/)" >&2
  exit 1
fi
if $ran; then echo "fuzz: done, nothing found"; else echo "fuzz: built"; fi
