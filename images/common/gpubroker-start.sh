#!/usr/bin/env bash
# gpubroker-start.sh: the first (and every) boot of a GPU Broker workspace.
#
# The entrypoint of the workspace images (images/*/Dockerfile) on RunPod, and the systemd
# service that cloud-init installs on Lambda VMs (gpu/lambda). Everything comes from the
# environment, so it runs unchanged in a container, on a VM and in its tests:
#
#   SSH_PUBLIC_KEYS, PUBLIC_KEY, SSH_PUBLIC_KEY
#       authorized_keys lines, one per line (RunPod's names and ours; all are installed)
#   GPUBROKER_SSHD            1 (default): start sshd when there are keys; 0: leave SSH alone
#   GPUBROKER_WORKSPACE_URL, GPUBROKER_WORKSPACE_SHA256, GPUBROKER_WORKSPACE_PATH
#       the starter project: downloaded, checked against the SHA-256 and unpacked into the
#       path on the first boot only (a marker file remembers it; existing files are never
#       overwritten)
#   GPUBROKER_IDE             jupyter | code-server | none
#   JUPYTER_PASSWORD (or JUPYTER_TOKEN), PASSWORD
#       the IDE's secret; the IDE refuses to start without one, never open to the internet
#   GPUBROKER_IDE_PORT        default 8888 (jupyter) or 8080 (code-server)
#   GPUBROKER_TLS_CERT, GPUBROKER_TLS_KEY   optional: serve the IDE over HTTPS
#
# Secrets are handed to the IDE in its environment (JUPYTER_TOKEN, PASSWORD), never on its
# command line, where any local user could read them.
set -euo pipefail

log() { echo "gpubroker-start: $*" >&2; }

install_keys() {
	local keys
	keys="$(printf '%s\n%s\n%s\n' "${SSH_PUBLIC_KEYS:-}" "${PUBLIC_KEY:-}" "${SSH_PUBLIC_KEY:-}" | sed -e 's/\r$//' -e '/^[[:space:]]*$/d')"
	[ -n "$keys" ] || { log "no SSH keys given: SSH is not offered"; return 1; }
	mkdir -p "$HOME/.ssh"
	chmod 700 "$HOME/.ssh"
	touch "$HOME/.ssh/authorized_keys"
	chmod 600 "$HOME/.ssh/authorized_keys"
	local key n=0
	while IFS= read -r key; do
		if ! grep -qxF -- "$key" "$HOME/.ssh/authorized_keys"; then
			printf '%s\n' "$key" >>"$HOME/.ssh/authorized_keys"
			n=$((n + 1))
		fi
	done <<<"$keys"
	log "installed $n new SSH key(s) into $HOME/.ssh/authorized_keys"
}

start_sshd() {
	if [ "$(id -u)" = 0 ]; then
		mkdir -p /run/sshd
		ssh-keygen -A >/dev/null
	fi
	# Keys only: no passwords, no root password logins.
	env -u JUPYTER_PASSWORD -u JUPYTER_TOKEN -u PASSWORD \
		sshd -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o PermitRootLogin=prohibit-password
	log "sshd started"
}

download() { # url file
	if command -v curl >/dev/null; then
		curl -fsSL --retry 5 --retry-connrefused --connect-timeout 10 -o "$2" "$1"
	else
		python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2"
	fi
}

unpack_workspace() {
	local url="${GPUBROKER_WORKSPACE_URL:-}" want="${GPUBROKER_WORKSPACE_SHA256:-}" dir="${GPUBROKER_WORKSPACE_PATH:-}"
	[ -n "$url" ] || return 0
	if [ -z "$want" ] || [ -z "$dir" ]; then
		log "GPUBROKER_WORKSPACE_URL needs GPUBROKER_WORKSPACE_SHA256 and GPUBROKER_WORKSPACE_PATH"
		return 1
	fi
	local marker="$dir/.gpubroker-workspace"
	if [ -e "$marker" ]; then
		log "workspace already unpacked in $dir (first boot was $(cat "$marker"))"
		return 0
	fi
	local tmp got
	tmp="$(mktemp)"
	if ! download "$url" "$tmp"; then
		rm -f "$tmp"
		log "cannot download the workspace from $url"
		return 1
	fi
	got="$(sha256sum "$tmp" | cut -d' ' -f1)"
	if [ "$got" != "$want" ]; then
		rm -f "$tmp"
		log "workspace SHA-256 is $got, want $want: refusing to unpack $url"
		return 1
	fi
	mkdir -p "$dir"
	tar -xzf "$tmp" -C "$dir" --no-same-owner --no-same-permissions --skip-old-files
	rm -f "$tmp"
	printf '%s %s\n' "$want" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$marker"
	log "workspace unpacked into $dir"
}

start_ide() {
	local ide="${GPUBROKER_IDE:-none}" dir="${GPUBROKER_WORKSPACE_PATH:-$HOME}"
	mkdir -p "$dir"
	local tls=()
	case "$ide" in
	jupyter)
		local token="${JUPYTER_PASSWORD:-${JUPYTER_TOKEN:-}}"
		[ -n "$token" ] || { log "JUPYTER_PASSWORD is not set: refusing to start Jupyter without a token"; return 1; }
		if [ -n "${GPUBROKER_TLS_CERT:-}" ]; then
			tls=(--certfile="$GPUBROKER_TLS_CERT" --keyfile="$GPUBROKER_TLS_KEY")
		fi
		unset JUPYTER_PASSWORD PASSWORD
		export JUPYTER_TOKEN="$token"
		log "starting JupyterLab on port ${GPUBROKER_IDE_PORT:-8888} in $dir"
		exec jupyter lab --no-browser --ip=0.0.0.0 --port="${GPUBROKER_IDE_PORT:-8888}" \
			--ServerApp.root_dir="$dir" --ServerApp.allow_remote_access=True \
			${tls[@]+"${tls[@]}"} $([ "$(id -u)" = 0 ] && echo --allow-root)
		;;
	code-server)
		[ -n "${PASSWORD:-}" ] || { log "PASSWORD is not set: refusing to start code-server without a password"; return 1; }
		if [ -n "${GPUBROKER_TLS_CERT:-}" ]; then
			tls=(--cert "$GPUBROKER_TLS_CERT" --cert-key "$GPUBROKER_TLS_KEY")
		fi
		unset JUPYTER_PASSWORD JUPYTER_TOKEN
		export PASSWORD
		log "starting code-server on port ${GPUBROKER_IDE_PORT:-8080} in $dir"
		exec code-server --auth password --bind-addr "0.0.0.0:${GPUBROKER_IDE_PORT:-8080}" \
			--disable-telemetry ${tls[@]+"${tls[@]}"} "$dir"
		;;
	none)
		log "no IDE; idling so SSH stays up"
		exec sleep infinity
		;;
	*)
		log "unknown GPUBROKER_IDE=$ide"
		return 1
		;;
	esac
}

main() {
	if install_keys && [ "${GPUBROKER_SSHD:-1}" = 1 ]; then
		start_sshd
	fi
	unpack_workspace
	start_ide
}

main "$@"
