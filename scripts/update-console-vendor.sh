#!/usr/bin/env bash
# Refreshes the console's third-party assets from the npm registry at the versions pinned in
# runtime/src/console/vendor/package-lock.json (`npm ci`), into runtime/src/console/assets/vendor/,
# which is committed: a fresh clone builds the binary with no npm step. Run it after changing
# the pin (`npm install uplot@X` in that folder); `--check` only says whether the committed
# files are what the lock file gives.
set -euo pipefail
cd "$(dirname "$0")/../runtime/src/console/vendor"
npm ci --no-audit --no-fund --silent
out=../assets/vendor
files=(
  "node_modules/uplot/dist/uPlot.iife.min.js:uPlot.iife.min.js"
  "node_modules/uplot/dist/uPlot.min.css:uPlot.min.css"
  "node_modules/uplot/LICENSE:uPlot.LICENSE"
)
status=0
for pair in "${files[@]}"; do
  from=${pair%%:*} to=$out/${pair##*:}
  if [ "${1:-}" = "--check" ]; then
    cmp -s "$from" "$to" || { echo "update-console-vendor: $to differs from the lock file's" >&2; status=1; }
  else
    mkdir -p "$out" && cp "$from" "$to"
  fi
done
[ "${1:-}" = "--check" ] && [ $status = 0 ] && echo "update-console-vendor: the committed assets match the lock file"
exit $status
