#!/usr/bin/env bash
# For the tests only (serving needs no browser): Debian's Chromium and its ChromeDriver, for
# the console's browser test (tests/console_browser.rs). Pinned to one version; the two must
# match each other. Debian's security archive keeps only the newest Chromium, so when the pinned
# version is gone from it, the script installs the newest one (both packages together, so they
# still match) and says so: the pin is then due for an update here.
set -euo pipefail
CHROMIUM_VERSION="156.0.8078.129-1~deb12u1"

installed() {
  dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true
}

matching() {
  local browser driver
  browser=$(installed chromium) driver=$(installed chromium-driver)
  [ -n "$browser" ] && [ "$browser" = "$driver" ]
}

if [ "$(installed chromium)" != "$CHROMIUM_VERSION" ] || [ "$(installed chromium-driver)" != "$CHROMIUM_VERSION" ]; then
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    if matching; then
      echo "setup: chromium $(installed chromium) is installed (pinned: $CHROMIUM_VERSION); using it" >&2
    else
      echo "setup: install chromium and chromium-driver $CHROMIUM_VERSION, then run this again" >&2
      exit 1
    fi
  else
    echo "setup: installing Debian's chromium and chromium-driver $CHROMIUM_VERSION (for the console's browser test)" >&2
    apt-get update -qq
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends \
        "chromium=$CHROMIUM_VERSION" "chromium-driver=$CHROMIUM_VERSION" \
        "chromium-common=$CHROMIUM_VERSION" fonts-dejavu-core >/dev/null 2>&1; then
      echo "setup: chromium $CHROMIUM_VERSION is no longer in Debian's archive; installing its newest (update CHROMIUM_VERSION in scripts/setup-browser.sh)" >&2
      apt-get install -y -qq --no-install-recommends chromium chromium-driver chromium-common fonts-dejavu-core >/dev/null
    fi
  fi
fi
matching || { echo "setup: chromium $(installed chromium) and chromium-driver $(installed chromium-driver) differ" >&2; exit 1; }
echo "setup: $(/usr/bin/chromium --version 2>/dev/null | head -1), $(/usr/bin/chromedriver --version | cut -d' ' -f1-2)"
