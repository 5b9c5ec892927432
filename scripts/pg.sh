#!/usr/bin/env bash
# Starts (or reuses) a project-local PostgreSQL cluster under .data/ and prints its URL.
# Used by the Makefile when DATABASE_URL is unset; `scripts/pg.sh stop` stops it.
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
# The port is 54329 (or GPUBROKER_PG_PORT), or the next free one when another checkout's
# cluster holds it; a running cluster is reused on whatever port it has.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data="$root/.data/postgres"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "pg.sh: no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
# As root, the postgres user must be able to reach the data directory. A checkout under a private
# directory (mktemp -d is mode 700) cannot host it, so the cluster lives in a per-checkout
# directory under /var/tmp instead, found again by the same path on the next run.
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$root"; then
  data="/var/tmp/gpubroker-pg-$(printf %s "$root" | sha256sum | cut -c1-12)/postgres"
fi
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "${1:-start}" = stop ]; then
  [ -f "$data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$data" -m fast stop >&2 || true
  exit 0
fi

mkdir -p "$root/.data"
if [ ! -f "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data" "$(dirname "$data")"
  chmod 700 "$data"
  as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$root/.data/initdb.log" 2>&1 || { cat "$root/.data/initdb.log" >&2; exit 1; }
fi
if as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  port=$(sed -n 4p "$data/postmaster.pid") # the running cluster's port
else
  port="${GPUBROKER_PG_PORT:-54329}"
  for _ in $(seq 1 50); do port_free "$port" && break; port=$((port + 1)); done
  port_free "$port" || { echo "pg.sh: no free port from ${GPUBROKER_PG_PORT:-54329}" >&2; exit 1; }
  # A throwaway development cluster: durability settings off for speed, never for production.
  as_pg "$bin/pg_ctl" -D "$data" -l "$(dirname "$data")/postgres.log" -w -t 60 start \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" >&2 ||
    { tail -n 5 "$(dirname "$data")/postgres.log" >&2; exit 1; }
fi
psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='gpubroker'" | grep -q 1 ||
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE gpubroker" >&2
echo "postgres://postgres@127.0.0.1:$port/gpubroker?sslmode=disable"
