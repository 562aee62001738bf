#!/usr/bin/env bash
# For the tests only (serving needs no broker): makes sure Mosquitto is installed and a broker
# listens on 127.0.0.1:1883, starting one if not.
set -euo pipefail

# MQTT triggers are tested against a real Mosquitto: the machine's broker at 127.0.0.1:1883,
# plus brokers the tests start themselves (mosquitto, mosquitto_passwd). Debian's package.
if ! command -v mosquitto >/dev/null 2>&1 && ! [ -x /usr/sbin/mosquitto ]; then
  echo "setup: Mosquitto is missing; installing Debian's mosquitto package" >&2
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
  else
    echo "setup: install the mosquitto package (broker and mosquitto_passwd), then run this again" >&2
    exit 1
  fi
fi
export PATH="$PATH:/usr/sbin"
broker_up() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
if ! broker_up; then
  echo "setup: no MQTT broker on 127.0.0.1:1883; starting Mosquitto" >&2
  if [ -f /etc/mosquitto/mosquitto.conf ] && grep -q '^listener 1883' /etc/mosquitto/mosquitto.conf; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mkdir -p "${TMPDIR:-/tmp}/wasmfn-mosquitto"
    conf="${TMPDIR:-/tmp}/wasmfn-mosquitto/mosquitto.conf"
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' > "$conf"
    [ "$(id -u)" = 0 ] && printf 'user root\n' >> "$conf"
    mosquitto -d -c "$conf"
  fi
  for _ in $(seq 50); do broker_up && break; sleep 0.1; done
  broker_up || { echo "setup: Mosquitto did not come up on 127.0.0.1:1883" >&2; exit 1; }
fi
echo "setup: $(mosquitto -h 2>/dev/null | head -1), broker on 127.0.0.1:1883"
