#!/usr/bin/env bash
# Installs the reference side of the differential test (tests/differential.rs): the real
# ixoncdkingress 1.0.0 from PyPI with every dependency pinned (tests/differential/requirements.txt),
# in a CPython 3.12 virtualenv at $WASMFN_HOME/reference-sdk (ixoncdkingress requires ~=3.12.0).
# Nothing is installed again while the requirements file is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

home=${WASMFN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmfn}
venv=$home/reference-sdk
requirements=tests/differential/requirements.txt
wanted=$(sha256sum < "$requirements" | cut -d' ' -f1)

if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$wanted" ]; then
  echo "setup-reference-sdk: ixoncdkingress 1.0.0: cached ($venv)"
  exit 0
fi

python=""
for candidate in "$(command -v python3.12 || true)" \
                 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 \
                 /usr/local/bin/python3.12 /usr/bin/python3.12; do
  # A pyenv shim is on PATH even where that version is not selected: try each one.
  if [ -n "$candidate" ] && [ -x "$candidate" ] &&
     "$candidate" -c 'import sys, venv; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "setup-reference-sdk: CPython 3.12 not found: ixoncdkingress 1.0 requires Python ~=3.12.0," \
       "so the differential test needs it (install it, e.g. 'pyenv install 3.12', and run this again)" >&2
  exit 1
fi

echo "setup-reference-sdk: installing ixoncdkingress 1.0.0 with $("$python" --version) into $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --quiet --require-virtualenv -r "$requirements"
echo "$wanted" > "$venv/.requirements.sha256"
