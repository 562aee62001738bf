#!/usr/bin/env bash
# For the tests only (serving needs no browser): Debian's Chromium and its ChromeDriver, for
# the console's browser test (tests/console_browser.rs). Both at one pinned version; they must
# match each other.
set -euo pipefail
CHROMIUM_VERSION="156.0.8078.114-1~deb12u1"

installed() {
  dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true
}

if [ "$(installed chromium)" != "$CHROMIUM_VERSION" ] || [ "$(installed chromium-driver)" != "$CHROMIUM_VERSION" ]; then
  echo "setup: installing Debian's chromium and chromium-driver $CHROMIUM_VERSION (for the console's browser test)" >&2
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "chromium=$CHROMIUM_VERSION" "chromium-driver=$CHROMIUM_VERSION" \
      "chromium-common=$CHROMIUM_VERSION" fonts-dejavu-core >/dev/null
  else
    echo "setup: install chromium and chromium-driver $CHROMIUM_VERSION, then run this again" >&2
    exit 1
  fi
fi
echo "setup: $(/usr/bin/chromium --version 2>/dev/null | head -1), $(/usr/bin/chromedriver --version | cut -d' ' -f1-2)"
