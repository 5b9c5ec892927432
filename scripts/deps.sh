#!/usr/bin/env bash
# Installs the Debian packages `make dev` and `make test` need beyond Go (the Makefile runs it
# first; it does nothing when they are there). Go tools (Hugo, staticcheck, promtool,
# stripe-mock) are not installed: tools/go.mod pins them and `go tool` builds them on first use.
#
#   scripts/deps.sh dev    PostgreSQL (the local cluster under .data/, scripts/pg.sh)
#   scripts/deps.sh test   that, and what the tests run: Chromium (the browser journeys),
#                          ssh-keygen and sshd, cloud-init, Jupyter Server and ip (the workspace
#                          image's boot, run for real), Caddy and pebble (a Lambda VM's
#                          certificate, issued by a local ACME server), gcc (go test -race
#                          needs cgo), and from the npm registry axe-core at AXE_CORE_VERSION
#                          into .data/axe-core/ (the accessibility rules that
#                          cmd/gpubroker/browser_axe_test.go runs in every page)
#
# As root, missing packages are installed with apt-get, with services kept from starting (a
# policy-rc.d that exits 101, the previous one put back after): the tests start their own
# daemons from the packages' binaries. Otherwise it prints the command to run and exits 1.
set -euo pipefail

# browser_axe_test.go's axeCoreVersion is the same: a test that finds another installed fails.
AXE_CORE_VERSION=4.14.1
root=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(postgresql postgresql-client)
if [ "${1:-test}" = test ]; then
  pkgs+=(chromium openssh-client openssh-server python3-jupyter-server cloud-init iproute2 caddy pebble gcc libc6-dev
    build-essential pkg-config python3 libkrb5-dev  # these: code-server's native modules (TestWorkspaceCheckCodeServer)
    nodejs)
  # npm installs axe-core below: Debian packages it apart, NodeSource's nodejs includes it.
  command -v npm >/dev/null || pkgs+=(npm)
fi

# axe-core at its pinned version, installed once (npm needs no root). Runs after the Debian
# packages, which bring npm.
axe_core() {
  [ "${1:-test}" = test ] || return 0
  local dir="$root/.data/axe-core"
  local have
  have=$(node -p 'require(process.argv[1]).version' "$dir/node_modules/axe-core/package.json" 2>/dev/null || true)
  [ "$have" = "$AXE_CORE_VERSION" ] && return 0
  echo "scripts/deps.sh: installing axe-core@$AXE_CORE_VERSION into .data/axe-core" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --silent --no-save "axe-core@$AXE_CORE_VERSION" >&2
}

if ! command -v dpkg-query >/dev/null; then
  echo "scripts/deps.sh: not Debian; make sure these (Debian names) are installed: ${pkgs[*]}" >&2
  axe_core "${1:-test}"
  exit 0
fi
need=()
while read -r name status; do
  [ "$status" = ii ] || need+=("$name")
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${pkgs[@]}" 2>/dev/null || true)
# dpkg-query prints nothing for a package it has never heard of.
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -eq 0 ]; then
  axe_core "${1:-test}"
  exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)

install=(apt-get install -y -qq --no-install-recommends "${need[@]}")
if [ "$(id -u)" != 0 ]; then
  echo "scripts/deps.sh: missing ${need[*]}: run sudo ${install[*]}" >&2
  exit 1
fi

echo "scripts/deps.sh: installing ${need[*]}" >&2
# One install at a time on this machine (two checkouts, or make dev and make test at once);
# apt-get itself also waits for another apt's lock instead of failing.
exec 9>/var/lock/gpubroker-deps.lock
flock 9
rc=/usr/sbin/policy-rc.d
saved=
if [ -e "$rc" ]; then
  saved=$(mktemp)
  cp -p "$rc" "$saved"
fi
restore() {
  if [ -n "$saved" ]; then
    mv -f "$saved" "$rc"
  else
    rm -f "$rc"
  fi
}
trap restore EXIT
trap 'exit 130' INT TERM
printf '#!/bin/sh\n# scripts/deps.sh: no service starts while it installs packages.\nexit 101\n' >"$rc"
chmod 755 "$rc"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq -o DPkg::Lock::Timeout=300
"${install[@]}" -o DPkg::Lock::Timeout=300 >/dev/null
axe_core "${1:-test}"
