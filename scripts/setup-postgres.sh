#!/usr/bin/env bash
# Makes sure PostgreSQL answers at 127.0.0.1:5432 (database `test`, trust auth), which the
# document store's PostgreSQL backend tests use. These machines run it as a service; start it
# when it is down. WASMFN_TEST_POSTGRES_URL points the tests at another server instead.
set -euo pipefail

if [[ -n "${WASMFN_TEST_POSTGRES_URL:-}" ]]; then
    exit 0
fi
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ready; then
    exit 0
fi
echo "== starting PostgreSQL"
if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    version=$(ls /etc/postgresql | sort -n | tail -1)
    pg_ctlcluster "$version" main start || true
elif command -v service >/dev/null; then
    service postgresql start || true
fi
for _ in $(seq 1 30); do
    if ready; then
        psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'test'" \
            | grep -q 1 || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test"
        exit 0
    fi
    sleep 1
done
echo "PostgreSQL is not running at 127.0.0.1:5432 and could not be started;" >&2
echo "start it, or set WASMFN_TEST_POSTGRES_URL=postgres://user@host:port/db" >&2
exit 1
