#!/usr/bin/env bash
# Builds WebAssembly (WASI) wheels of C extensions into wasmfn's wheels directory, next to the
# pydantic-core ones of scripts/build-wasi-wheels.sh (which runs this script too). Today that is
# regex (mrab-regex), which dateparser needs. See docs/native-packages.md.
#
#   bash scripts/build-wasi-c-wheels.sh
#
# A wheel that is already there is not built again, so CI can run this on every run.
set -euo pipefail

# regex: the newest release; dateparser 1.5.0 (the newest) asks for regex>=2024.9.11.
REGEX_VERSION=2026.11.19
REGEX_SDIST_SHA256=2826a006b68acfd3ed5074433caafe21d7f9d026eb82cb856724a4a893a70915

# The CPython inside bundles, and the componentize-py that carries it (runtime/src/toolchain.rs).
PYTHON_VERSION=3.14
COMPONENTIZE_PY_VERSION=0.25.1

# The C toolchain: Debian 12's clang, lld (wasm-ld) and wasi-libc (headers only: the bundle's own
# libc.so is what the extension runs against).
DEBIAN_PACKAGES=(clang=1:14.0-55.7~deb12u1 lld=1:14.0-55.7~deb12u1
                 wasi-libc=0.0~git20220510.9886d3d-2 zstd=1.5.4+dfsg2-5)
# CPython 3.14's headers. Debian 12 has none; unstable has them, and only the headers are used
# (pyconfig.h is written for WASI by scripts/wasi_pyconfig.py). Debian keeps one version of a
# package in unstable: when this one is replaced, the download fails and says so; put the new
# version and its SHA256 here (`apt-cache show libpython3.14-dev` with the lists in
# $WASMFN_HOME/wasi-build/apt).
PYTHON_DEV_VERSION=3.14.10-1
PYTHON_DEV_SHA256=ce226a5a09bd3739123b95c5a41688ee3110651e6b4f9b22973a27c7be2f64fa
DEBIAN_UNSTABLE="deb http://deb.debian.org/debian sid main"

home=${WASMFN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmfn}
wheels=${WASMFN_WHEELS:-$home/wheels}
work=$home/wasi-build
here=$(cd "$(dirname "$0")" && pwd)
abi=cp${PYTHON_VERSION/./}
wheel=$wheels/regex-$REGEX_VERSION-$abi-$abi-wasi_0_0_0_wasm32.whl

if [ -f "$wheel" ]; then
  echo "build-wasi-c-wheels: regex $REGEX_VERSION: cached ($wheel)"
  exit 0
fi
start=$SECONDS
say() { echo "build-wasi-c-wheels: $*"; }
fail() { echo "build-wasi-c-wheels: $*" >&2; exit 1; }

# The toolchain, installed from Debian when missing (like scripts/setup-broker.sh).
if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null \
   || ! [ -f /usr/include/wasm32-wasi/stdlib.h ] || ! command -v zstd >/dev/null; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing ${DEBIAN_PACKAGES[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${DEBIAN_PACKAGES[@]}" >/dev/null \
      || fail "apt-get could not install ${DEBIAN_PACKAGES[*]} (the versions are Debian 12's)"
  else
    fail "clang, lld (wasm-ld), wasi-libc and zstd are missing: install Debian's packages" \
         "${DEBIAN_PACKAGES[*]} (as root), then run this again"
  fi
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  fail "Python 3 with venv is missing: run scripts/setup.sh first"
fi

mkdir -p "$work/sdist" "$work/src" "$work/logs" "$work/apt/lists/partial" \
         "$work/apt/cache/archives/partial" "$work/cpython" "$wheels"
log=$work/logs/regex-$REGEX_VERSION.log
: > "$log"
if [ ! -x "$work/venv/bin/pip" ]; then
  python3 -m venv "$work/venv"
fi
pip=("$work/venv/bin/pip" --disable-pip-version-check)

# 1. CPython 3.14's headers, from Debian unstable's libpython3.14-dev, with apt lists of their
#    own under $work/apt: the machine's apt sources are not touched.
headers=$work/cpython/include-$PYTHON_DEV_VERSION
if [ ! -f "$headers/usr/include/python$PYTHON_VERSION/Python.h" ]; then
  say "downloading CPython $PYTHON_VERSION's headers (Debian libpython$PYTHON_VERSION-dev $PYTHON_DEV_VERSION)"
  echo "$DEBIAN_UNSTABLE" > "$work/apt/sources.list"
  apt_options=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
               -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
               -o "APT::Architecture=amd64" -o "APT::Architectures=amd64"
               -o "APT::Sandbox::User=root")
  apt-get "${apt_options[@]}" update -qq >>"$log" 2>&1 || fail "apt-get update failed (log: $log)"
  deb=libpython${PYTHON_VERSION}-dev_${PYTHON_DEV_VERSION}_amd64.deb
  if ! (cd "$work/cpython" && apt-get "${apt_options[@]}" download \
          "libpython$PYTHON_VERSION-dev=$PYTHON_DEV_VERSION" >>"$log" 2>&1); then
    fail "Debian no longer has libpython$PYTHON_VERSION-dev $PYTHON_DEV_VERSION: update" \
         "PYTHON_DEV_VERSION and PYTHON_DEV_SHA256 in $0 (log: $log)"
  fi
  echo "$PYTHON_DEV_SHA256  $work/cpython/$deb" | sha256sum -c --quiet - \
    || fail "$deb does not have the expected SHA256"
  rm -rf "$headers"
  dpkg-deb -x "$work/cpython/$deb" "$headers"
  rm -f "$work/cpython/$deb"
fi

# 2. pyconfig.h for the bundles' CPython, from the sysconfig data inside componentize-py.
if [ ! -f "$work/cpython/componentize-py-$COMPONENTIZE_PY_VERSION.done" ]; then
  rm -rf "$work/cpython/componentize-py"
  "${pip[@]}" download --quiet --no-deps --only-binary :all: \
    --dest "$work/cpython/componentize-py" "componentize-py==$COMPONENTIZE_PY_VERSION"
  touch "$work/cpython/componentize-py-$COMPONENTIZE_PY_VERSION.done"
fi
include=$(python3 "$here/wasi_pyconfig.py" "$work/cpython/componentize-py"/componentize_py-*.whl \
  "$headers/usr/include/python$PYTHON_VERSION" "$work/cpython/wasi-include")

# 3. The sdist, checked against its hash.
sdist=$work/sdist/regex-$REGEX_VERSION.tar.gz
if [ ! -f "$sdist" ]; then
  "${pip[@]}" download --quiet --no-deps --no-binary :all: --dest "$work/sdist" "regex==$REGEX_VERSION"
fi
echo "$REGEX_SDIST_SHA256  $sdist" | sha256sum -c --quiet - \
  || fail "regex-$REGEX_VERSION.tar.gz does not have the expected SHA256"
src=$work/src/regex-$REGEX_VERSION
rm -rf "$src"
tar -xzf "$sdist" -C "$work/src"

# 4. Compile and link a shared library whose undefined symbols (libc, the CPython API) become
#    imports; componentize-py resolves them when it links the bundle against the libc.so and
#    libpython3.14.so it carries.
#
#    Position-independent code is what such a library needs, and clang 14 makes it only for the
#    Emscripten target (LLVM 14 ignores -fPIC for any other WebAssembly OS and reports it when
#    linking: "relocation R_WASM_MEMORY_ADDR_SLEB cannot be used ...; recompile with -fPIC").
#    The object files of both targets are the same wasm32 format and C ABI; only predefined
#    macros differ, so Emscripten's are removed and WASI's defined, and the headers are
#    wasi-libc's. -fvisibility=hidden: only PyInit__regex (PyMODINIT_FUNC) is exported.
cflags=(--target=wasm32-unknown-emscripten -U__EMSCRIPTEN__ -U__unix -U__unix__ -Uunix
        -D__wasi__=1 -nostdlibinc -isystem /usr/include/wasm32-wasi -fPIC -fvisibility=hidden
        -O2 -DNDEBUG -I"$include")
say "regex $REGEX_VERSION: compiling for CPython $PYTHON_VERSION on WASI (log: $log)"
objects=()
for c in _regex _regex_unicode; do
  clang "${cflags[@]}" -c "$src/src/$c.c" -o "$src/$c.o" >>"$log" 2>&1 \
    || { tail -n 25 "$log" >&2; fail "regex $REGEX_VERSION: clang failed (full log: $log)"; }
  objects+=("$src/$c.o")
done
wasm-ld --experimental-pic -shared -o "$src/_regex.so" "${objects[@]}" >>"$log" 2>&1 \
  || { tail -n 25 "$log" >&2; fail "regex $REGEX_VERSION: wasm-ld failed (full log: $log)"; }

built=$(python3 "$here/wasi_wheel.py" "$src/_regex.so" "$src" "$wheels" "$PYTHON_VERSION" regex._regex)
rm -rf "$src"
elapsed=$((SECONDS - start))
say "regex $REGEX_VERSION: built $built in $((elapsed / 60))m$((elapsed % 60))s"
