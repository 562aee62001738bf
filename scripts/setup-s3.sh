#!/usr/bin/env bash
# For the tests only: an S3-compatible server, moto's (moto[server] from PyPI, every dependency
# pinned in tests/s3/requirements.txt), in a virtualenv at $WASMFN_HOME/moto, for
# tests/objects_s3.rs. Nothing is installed again while the requirements file is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

home=${WASMFN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmfn}
venv=$home/moto
requirements=tests/s3/requirements.txt
wanted=$(sha256sum < "$requirements" | cut -d' ' -f1)

if [ -x "$venv/bin/moto_server" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$wanted" ]; then
  echo "setup-s3: moto server: cached ($venv)"
  exit 0
fi
echo "setup-s3: installing moto[server] into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check --quiet --require-virtualenv -r "$requirements"
echo "$wanted" > "$venv/.requirements.sha256"
echo "setup-s3: moto server: $("$venv/bin/python" -c 'import moto; print(moto.__version__)')"
