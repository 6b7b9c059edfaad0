#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL: initdb in a temp dir, listen on 127.0.0.1 only (random
# port), export TEST_DATABASE_URL, run the command, stop and delete everything on exit.
# Debian's server refuses to run as root, so as root it runs as the `postgres` user via runuser.
set -euo pipefail

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
PG_BIN=$(find_bin || true)
if [ -z "$PG_BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "with-postgres: installing Debian's postgresql" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
    PG_BIN=$(find_bin)
  else
    echo "with-postgres: PostgreSQL is not installed (apt-get install postgresql)" >&2
    exit 1
  fi
fi

dir=$(mktemp -d /tmp/wan-pg.XXXXXX)
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  chown postgres "$dir"
  as_pg() { runuser -u postgres -- "$@"; }
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

as_pg "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
# Durability settings off: this database lives for one test run.
as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
  "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  start >/dev/null
"$PG_BIN/psql" -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE wan_test" >/dev/null

export TEST_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:$port/wan_test"
echo "with-postgres: $TEST_DATABASE_URL" >&2
"$@"
