#!/usr/bin/env bash
# Starts (or reuses) a project-local PostgreSQL cluster under .data/ and prints its URL.
# Used by the Makefile when DATABASE_URL is unset; `scripts/pg.sh stop` stops it.
# PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
# The port is 54329 (or GPUBROKER_PG_PORT), or the next free one when another checkout's
# cluster holds it; a running cluster is reused on whatever port it has. A port can look free
# and be taken before the server binds it (another checkout starting at the same moment), so a
# start that fails to bind tries the next port. Runs in one checkout wait for each other.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data="$root/.data/postgres"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "pg.sh: no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql)" >&2; exit 1; }
# (Without fd 9, the lock below: a server that inherited it would hold it for its whole life.)
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@") 9>&-; else "$@" 9>&-; fi; }
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

mkdir -p "$root/.data" "$(dirname "$data")"
# One run at a time per checkout (make dev and make test started together): the second waits,
# then finds the cluster the first started.
exec 9>"$(dirname "$data")/pg.sh.lock"
flock 9
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
  log="$(dirname "$data")/postgres.log"
  started=
  for _ in $(seq 1 50); do
    if port_free "$port"; then
      logged=$(stat -c %s "$log" 2>/dev/null || echo 0)
      # A throwaway development cluster: durability settings off for speed, never for production.
      if out=$(as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start \
        -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" 2>&1); then
        started=1
        break
      fi
      # Only a lost port is worth another try; anything else is shown as it is.
      if ! tail -c +$((logged + 1)) "$log" 2>/dev/null | grep -q "could not create any TCP/IP sockets"; then
        echo "$out" >&2
        tail -n 5 "$log" >&2
        exit 1
      fi
      echo "pg.sh: port $port was taken while the server started; trying the next one" >&2
    fi
    port=$((port + 1))
  done
  [ -n "$started" ] || { echo "pg.sh: no free port from ${GPUBROKER_PG_PORT:-54329}" >&2; exit 1; }
fi
psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='gpubroker'" | grep -q 1 ||
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE gpubroker" >&2
echo "postgres://postgres@127.0.0.1:$port/gpubroker?sslmode=disable"
