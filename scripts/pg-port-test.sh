#!/usr/bin/env bash
# Checks that scripts/pg.sh survives losing its port between choosing it and binding it (issue
# 21: two checkouts started together both picked 54329 and one `make dev` died with "Address
# already in use"). Each case runs pg.sh in a throwaway copy of a checkout, on ports from 55400
# up, never touching this checkout's cluster:
#   1. a socket that is bound but not listening holds the port: a connect is refused, so the
#      port looks free, and PostgreSQL's bind fails (what another starting server looks like);
#   2. two checkouts start at the same moment on the same preferred port: both must come up,
#      each on its own port;
#   3. one checkout started twice at the same moment (make dev and make test), then once more:
#      one cluster, the same URL three times (the server must not keep pg.sh's lock). Prints one line per case; exits 1 on a failure.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)/pg.sh
tmp=$(mktemp -d)
chmod 755 "$tmp" # as root the postgres user must reach the fake checkouts
holder=
checkouts=()
cleanup() {
  [ -n "$holder" ] && kill "$holder" 2>/dev/null
  for c in ${checkouts[@]+"${checkouts[@]}"}; do
    "$c/scripts/pg.sh" stop 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
checkout() { # a directory that looks like a checkout to pg.sh, $tmp/NAME (not in a subshell)
  mkdir -p "$tmp/$1/scripts"
  cp "$src" "$tmp/$1/scripts/pg.sh"
  checkouts+=("$tmp/$1")
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base=55400
while ! port_free "$base" || ! port_free $((base + 1)); do base=$((base + 10)); done
fail=0

# 1. The port is bound by a socket that does not listen yet.
perl -e 'use Socket; socket(S, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
  bind(S, sockaddr_in($ARGV[0], inet_aton("127.0.0.1"))) or die "bind: $!";
  $| = 1; print "bound\n"; sleep 600' "$base" >"$tmp/holder.out" &
holder=$!
for _ in $(seq 1 100); do grep -q bound "$tmp/holder.out" 2>/dev/null && break; sleep 0.05; done
checkout a; a=$tmp/a
if url=$(GPUBROKER_PG_PORT=$base "$a/scripts/pg.sh" 2>"$tmp/a.err"); then
  echo "ok   port $base taken between check and bind: started at $url"
else
  echo "FAIL port $base taken between check and bind: $(tail -n 3 "$tmp/a.err" | tr '\n' ' ')"
  fail=1
fi
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null || true
holder=

# 2. Two checkouts at the same moment.
p=$((base + 20))
checkout b; b=$tmp/b
checkout c; c=$tmp/c
GPUBROKER_PG_PORT=$p "$b/scripts/pg.sh" >"$tmp/b.url" 2>"$tmp/b.err" & pb=$!
GPUBROKER_PG_PORT=$p "$c/scripts/pg.sh" >"$tmp/c.url" 2>"$tmp/c.err" & pc=$!
rb=0 rc=0
wait "$pb" || rb=$?
wait "$pc" || rc=$?
if [ "$rb" = 0 ] && [ "$rc" = 0 ] && [ "$(cat "$tmp/b.url")" != "$(cat "$tmp/c.url")" ]; then
  echo "ok   two checkouts at once from port $p: $(cat "$tmp/b.url") and $(cat "$tmp/c.url")"
else
  echo "FAIL two checkouts at once from port $p: exit $rb and $rc: $(tail -n 2 "$tmp/b.err" "$tmp/c.err" | tr '\n' ' ')"
  fail=1
fi

# 3. One checkout, twice at once, then again.
checkout d; d=$tmp/d
GPUBROKER_PG_PORT=$((base + 40)) "$d/scripts/pg.sh" >"$tmp/d1.url" 2>"$tmp/d1.err" & p1=$!
GPUBROKER_PG_PORT=$((base + 40)) "$d/scripts/pg.sh" >"$tmp/d2.url" 2>"$tmp/d2.err" & p2=$!
r1=0 r2=0 r3=0
wait "$p1" || r1=$?
wait "$p2" || r2=$?
timeout 20 "$d/scripts/pg.sh" >"$tmp/d3.url" 2>"$tmp/d3.err" || r3=$?
if [ "$r1$r2$r3" = 000 ] && [ "$(sort -u "$tmp"/d[123].url | wc -l)" = 1 ]; then
  echo "ok   one checkout twice at once, then again: $(cat "$tmp/d1.url") each time"
else
  echo "FAIL one checkout twice at once, then again: exit $r1 $r2 $r3: $(cat "$tmp"/d[123].url "$tmp"/d[123].err | tr '\n' ' ')"
  fail=1
fi
exit "$fail"
