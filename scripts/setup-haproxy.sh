#!/usr/bin/env bash
# For the tests only (a single server needs no load balancer): Debian's HAProxy, which the
# cluster test (tests/cluster.rs) puts in front of three `wasmfn serve` nodes with the
# configuration docs/cluster.md shows (examples/cluster/haproxy.cfg). Pinned to one version;
# when Debian's security archive no longer has it, the newest is installed and the script says
# so. The test runs its own haproxy process; the Debian service is left stopped.
set -euo pipefail
HAPROXY_VERSION="2.6.12-1+deb12u4"

installed() {
  dpkg-query -W -f='${Version}' haproxy 2>/dev/null || true
}

if [ "$(installed)" != "$HAPROXY_VERSION" ]; then
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    if [ -n "$(installed)" ]; then
      echo "setup: haproxy $(installed) is installed (pinned: $HAPROXY_VERSION); using it" >&2
    else
      echo "setup: install haproxy $HAPROXY_VERSION, then run this again" >&2
      exit 1
    fi
  else
    echo "setup: installing Debian's haproxy $HAPROXY_VERSION (for the cluster test)" >&2
    apt-get update -qq
    export DEBIAN_FRONTEND=noninteractive
    # No service start: policy-rc.d answers 101 ("not allowed") while installing.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    if ! apt-get install -y -qq --no-install-recommends "haproxy=$HAPROXY_VERSION" >/dev/null 2>&1; then
      echo "setup: haproxy $HAPROXY_VERSION is no longer in Debian's archive; installing its newest (update HAPROXY_VERSION in scripts/setup-haproxy.sh)" >&2
      apt-get install -y -qq --no-install-recommends haproxy >/dev/null
    fi
  fi
fi
echo "setup: $(/usr/sbin/haproxy -v | head -1)"
