#!/usr/bin/env bash
# Builds componentize-py 0.25.1 from its crates.io source with wasmfn's reproducibility patch
# (vendor/componentize-py/reproducible-preinit.patch; vendor/README.md says why) into
# $WASMFN_HOME/toolchain/componentize-py-0.25.1-reproducible/bin. `wasmfn build` uses it when it
# is there: two builds of one folder are then the same bytes on any machine. Without it, builds
# use the componentize-py wheel from PyPI and work the same, but are not byte-reproducible.
#
#   bash scripts/setup-componentize-py.sh
#
# Needs cargo and the crates.io registry; takes about 10 minutes on 2 cores, once (a build with
# the same patch is kept). The crate ships its Cargo.lock: built with --locked, every
# dependency is the version its authors tested.
set -euo pipefail
VERSION=0.25.1
here=$(cd "$(dirname "$0")" && pwd)
patch_file=$here/../vendor/componentize-py/reproducible-preinit.patch
home=${WASMFN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmfn}
dest=$home/toolchain/componentize-py-$VERSION-reproducible
stamp=$(sha256sum "$patch_file" | cut -d' ' -f1)

if [ -x "$dest/bin/componentize-py" ] && [ "$(cat "$dest/.complete" 2>/dev/null)" = "$stamp" ]; then
  echo "setup-componentize-py: $VERSION (reproducible): cached ($dest)"
  exit 0
fi
command -v patch >/dev/null 2>&1 || {
  echo "setup-componentize-py: the patch tool is missing (Debian: apt-get install patch)" >&2
  exit 1
}

work=$home/toolchain/build-componentize-py
rm -rf "$work"
mkdir -p "$work/fetch/src"
# A package that depends on the crate, so that cargo downloads it (and verifies its checksum
# against the registry's index); its manifest path says where the source is.
cat >"$work/fetch/Cargo.toml" <<EOF
[package]
name = "fetch-componentize-py"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
componentize-py = "=$VERSION"

[workspace]
EOF
touch "$work/fetch/src/lib.rs"
echo "setup-componentize-py: fetching componentize-py $VERSION from crates.io"
manifest=$(cargo metadata --format-version 1 --manifest-path "$work/fetch/Cargo.toml" |
  python3 -c 'import json, sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"]
           if p["name"] == "componentize-py" and p["version"] == sys.argv[1]))' "$VERSION")
cp -r "$(dirname "$manifest")" "$work/src"
chmod -R u+w "$work/src"
(cd "$work/src" && patch --quiet -p1 <"$patch_file")

echo "setup-componentize-py: building it with the patch (about 10 minutes on 2 cores, once)"
(cd "$work/src" && CARGO_TARGET_DIR="$work/target" cargo build --release --locked \
  --bin componentize-py --quiet)

rm -rf "$dest"
mkdir -p "$dest/bin"
cp "$work/target/release/componentize-py" "$dest/bin/componentize-py"
echo "$stamp" >"$dest/.complete"
rm -rf "$work"
echo "setup-componentize-py: $VERSION (reproducible) installed in $dest"
