#!/usr/bin/env bash
# Builds WebAssembly (WASI) wheels of pydantic-core, the Rust half of pydantic 2, into wasmfn's
# wheels directory; `wasmfn build` hands that directory to pip (--find-links), so functions can
# list `pydantic==2.12.5` in requirements.txt. See docs/native-packages.md.
#
#   bash scripts/build-wasi-wheels.sh            # the versions in PYDANTIC_CORE_VERSIONS
#   bash scripts/build-wasi-wheels.sh 2.41.1     # other pydantic-core versions, once
#
# A wheel that is already there is not built again, so CI can run this on every run.
set -euo pipefail

# pydantic-core versions to build. Each pydantic release pins one exact pydantic-core (see
# "Requires-Dist: pydantic-core==" in its metadata): 2.41.5 serves pydantic 2.12.5, 2.50.5
# serves pydantic 2.14.4. pydantic before 2.12 does not work on the bundles' CPython 3.14 (see
# docs/native-packages.md), so older cores are not listed.
PYDANTIC_CORE_VERSIONS=(2.41.5 2.50.5)

# The CPython inside bundles (componentize-py 0.25.1). The extension is built for exactly this
# version, not the stable ABI (pydantic-core cannot be built for it), so when wasmfn moves to
# another componentize-py with another CPython every wheel has to be built again.
PYTHON_VERSION=3.14
TARGET=wasm32-wasip2

# The same directories wasmfn itself uses (runtime/src/toolchain.rs, python_build.rs).
home=${WASMFN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmfn}
wheels=${WASMFN_WHEELS:-$home/wheels}
work=$home/wasi-build
here=$(cd "$(dirname "$0")" && pwd)

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=("${PYDANTIC_CORE_VERSIONS[@]}")
abi=cp${PYTHON_VERSION/./}
wheel_name() { echo "pydantic_core-$1-$abi-$abi-wasi_0_0_0_wasm32.whl"; }

missing=()
for version in "${versions[@]}"; do
  if [ -f "$wheels/$(wheel_name "$version")" ]; then
    echo "build-wasi-wheels: pydantic-core $version: cached ($wheels/$(wheel_name "$version"))"
  else
    missing+=("$version")
  fi
done
[ ${#missing[@]} -gt 0 ] || exit 0

# Only a build needs the Rust toolchain: a run with every wheel cached works without it.
if ! command -v rustup >/dev/null 2>&1; then
  echo "build-wasi-wheels: rustup not found: building WASI wheels needs Rust installed with" \
       "rustup (https://rustup.rs), which provides the $TARGET target (a distribution's" \
       "rustc/cargo packages cannot add targets)" >&2
  exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "build-wasi-wheels: cargo not found: install Rust with rustup (https://rustup.rs)" >&2
  exit 1
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "build-wasi-wheels: Python 3 with venv is missing: run scripts/setup.sh first" >&2
  exit 1
fi

mkdir -p "$work/sdist" "$work/src" "$work/logs" "$work/stub" "$wheels"
# The standard library target: no C toolchain or wasi-sdk is needed, because pydantic-core is
# pure Rust and rustup's wasm32-wasip2 ships both a position-independent std and the linker.
# Run from $work, like cargo below, so a rust-toolchain file where the script was started from
# cannot make it pick another toolchain than the build.
if ! out=$(cd "$work" && rustup target add "$TARGET" 2>&1); then
  echo "$out" >&2
  echo "build-wasi-wheels: rustup could not add the $TARGET target" >&2
  exit 1
fi

# pip in a virtualenv of our own, so the user's Python is never touched. It only downloads
# sdists (pip prepares their metadata with maturin, which it fetches into a throwaway env).
if [ ! -x "$work/venv/bin/pip" ]; then
  python3 -m venv "$work/venv"
fi

# The extension is a shared library whose undefined symbols (libc, the CPython API) become
# imports; componentize-py resolves them when it links the bundle against the libc.so and
# libpython3.14.so it carries. The linker still wants `-lc` (from Rust's std) and `-lpython3.14`
# (from PyO3) to exist, so empty archives stand in for them.
printf '!<arch>\n' > "$work/stub/libc.a"
printf '!<arch>\n' > "$work/stub/libpython$PYTHON_VERSION.a"
# Tells PyO3 which interpreter to build for, instead of asking the host's Python.
cat > "$work/stub/pyo3-config.txt" <<EOF
implementation=CPython
version=$PYTHON_VERSION
shared=true
abi3=false
lib_name=python$PYTHON_VERSION
lib_dir=$work/stub
pointer_width=32
build_flags=
suppress_build_script_link_lines=false
EOF

# On wasm32-wasip2, Rust's std::os::wasi is still unstable (feature `wasip2`), and PyO3 (its
# OsStr conversions) and the url crate use it. This wrapper enables that one feature, only for
# the crates whose sources use it (a no_std crate would reject an unknown std feature), and
# only for real crates of the build: build-script probes are left alone, so no dependency
# mistakes this stable compiler for a nightly one. Newer PyO3 versions do not need it.
cat > "$work/stub/rustc-wrapper" <<'EOF'
#!/bin/sh
case " $* " in
  *" --target wasm32-wasip2 "*)
    if [ -n "${CARGO_CRATE_NAME:-}" ] && grep -rqs 'os::wasi' "${CARGO_MANIFEST_DIR:-/nonexistent}/src"; then
      RUSTC_BOOTSTRAP=1 exec "$@" -Zcrate-attr='feature(wasip2)'
    fi ;;
esac
exec "$@"
EOF
chmod +x "$work/stub/rustc-wrapper"

for version in "${missing[@]}"; do
  start=$SECONDS
  log=$work/logs/pydantic-core-$version.log
  echo "build-wasi-wheels: pydantic-core $version: building for CPython $PYTHON_VERSION on $TARGET (a few minutes; log: $log)"
  # The sdist, not a wheel: the source is what we build.
  if [ ! -f "$work/sdist/pydantic_core-$version.tar.gz" ]; then
    "$work/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
      --no-binary :all: --dest "$work/sdist" "pydantic-core==$version"
  fi
  src=$work/src/pydantic_core-$version
  rm -rf "$src"
  tar -xzf "$work/sdist/pydantic_core-$version.tar.gz" -C "$work/src"

  # `cargo rustc --crate-type cdylib` overrides the crate's [cdylib, rlib]: with an rlib as well,
  # fat LTO keeps every public symbol, `-shared` exports thousands of them and pulls in std's
  # wasi:sockets and wasi:http bindings, which componentize-py cannot link. With cdylib alone and
  # --no-export-dynamic the library exports only PyInit__pydantic_core and imports wasi:random.
  # --skip-wit-component: componentize-py makes the component, this is a plain core module.
  # -Clink-self-contained=n: no wasi-libc of Rust's own; the bundle's libc.so is used.
  if ! (
    cd "$src"
    export CARGO_TARGET_DIR=$work/target
    export PYO3_CONFIG_FILE=$work/stub/pyo3-config.txt
    export RUSTC_WRAPPER=$work/stub/rustc-wrapper
    export RUSTFLAGS="-Clink-self-contained=n -Clink-arg=--skip-wit-component -Clink-arg=-shared -Clink-arg=--no-export-dynamic -Clink-arg=-L$work/stub"
    cargo rustc --release --locked --lib --crate-type cdylib --target "$TARGET"
  ) >"$log" 2>&1; then
    tail -n 25 "$log" >&2
    echo "build-wasi-wheels: pydantic-core $version: cargo failed (full log: $log)" >&2
    # pydantic-core before 2.41 (pydantic before 2.12) uses a PyO3 older than CPython 3.14.
    # PYO3_USE_ABI3_FORWARD_COMPATIBILITY=1 gets it through the build but not through a call:
    # that PyO3 has 3.13's tuple layout and the first SchemaValidator reads out of bounds.
    if grep -q "newer than PyO3's maximum supported version" "$log"; then
      echo "build-wasi-wheels: this pydantic-core's PyO3 does not support CPython $PYTHON_VERSION;" \
           "use the pydantic-core of pydantic 2.12 or newer (docs/native-packages.md)" >&2
    fi
    exit 1
  fi
  wheel=$(python3 "$here/wasi_wheel.py" "$work/target/$TARGET/release/_pydantic_core.wasm" \
    "$src" "$wheels" "$PYTHON_VERSION")
  rm -rf "$src"
  elapsed=$((SECONDS - start))
  echo "build-wasi-wheels: pydantic-core $version: built $wheel in $((elapsed / 60))m$((elapsed % 60))s"
done
