package lambda

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"gpubroker/gpu"
	"gpubroker/images"
)

// MaxUserData is Lambda's limit on a launch's user_data.
const MaxUserData = 1 << 20

// ideTag is the instance tag naming the IDE the instance runs.
const ideTag = "gpubroker-ide"

// Caddy, installed from its release tarball on code-server VMs: Ubuntu 22.04 (Lambda Stack)
// has no caddy package. The SHA-512 is the one the official Docker image checks for this
// tarball (caddyserver/caddy-docker, 2.10/alpine/Dockerfile).
const (
	CaddyVersion = "2.10.0"
	caddySHA512  = "626682d623ca04356ab3c9a93a82386cfde6d8243b11f2d0eea9e97ba630c7ada62373401e96b72c6690c98ae8dd004d61fafe477f5249690d5cb251ebbfd2d9"
)

// ipHostDomain resolves <a>-<b>-<c>-<d>.<domain> to a.b.c.d, which gives a VM with only an IP
// a name a public CA issues for. nip.io rather than sslip.io (same servers, same answers):
// Let's Encrypt counts certificates per registered domain, and sslip.io's weekly allowance
// ran out in 2026 with a further raise refused (cunnie/sslip.io#110, whose maintainer points
// to nip.io).
const ipHostDomain = "nip.io"

// ipHost is the name of a VM's IPv4 address under ipHostDomain, dashed.
func ipHost(ip string) string { return strings.ReplaceAll(ip, ".", "-") + "." + ipHostDomain }

// Paths on the VM.
const (
	startScript  = "/usr/local/bin/gpubroker-start.sh"
	envFile      = "/etc/gpubroker/workspace.env"
	unitFile     = "/etc/systemd/system/gpubroker-ide.service"
	caddyConfig  = "/etc/gpubroker/Caddyfile"
	caddyEnv     = "/etc/gpubroker/caddy.env"
	caddyUnit    = "/etc/systemd/system/gpubroker-caddy.service"
	publicHost   = "/usr/local/bin/gpubroker-public-host"
	jupyterLink  = "/home/ubuntu/workspace" // in Lambda's Jupyter root, the ubuntu user's home
	workspaceDir = "/workspace"
)

// caddyfile serves HTTPS for the VM's name ($GPUBROKER_HOST, see publicHostScript) with a
// certificate Caddy gets by ACME (HTTP-01 on port 80, which also redirects to HTTPS), in
// front of code-server on 127.0.0.1:upstream. global is the global options block's body ("" on
// the VM: Let's Encrypt, Caddy's default CA).
func caddyfile(global string, upstream int) string {
	var b strings.Builder
	if global != "" {
		fmt.Fprintf(&b, "{\n\t%s\n}\n\n", global)
	}
	fmt.Fprintf(&b, "{$GPUBROKER_HOST} {\n\treverse_proxy 127.0.0.1:%d\n}\n", upstream)
	return b.String()
}

// publicHostScript prints GPUBROKER_HOST=<the VM's public IPv4, dashed>.nip.io, the name
// Lambda's ip is shown under (convert). The address the default route leaves from is the
// public one when the VM holds it; behind NAT it is private, and the address the internet
// sees is asked for instead.
const publicHostScript = `#!/bin/sh
set -eu
ip=$(ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
case "$ip" in
10.*|192.168.*|172.1[6-9].*|172.2[0-9].*|172.3[01].*|100.6[4-9].*|100.[7-9][0-9].*|100.1[01][0-9].*|100.12[0-7].*|169.254.*|127.*|"")
	ip=$(curl -fsS --retry 5 --max-time 10 https://checkip.amazonaws.com | tr -d '[:space:]') ;;
esac
echo "GPUBROKER_HOST=$(echo "$ip" | tr . -).` + ipHostDomain + `"
`

// caddyService runs Caddy as a throwaway user that may bind 80 and 443 and keeps its
// certificates in /var/lib/gpubroker-caddy.
var caddyService = strings.Join([]string{
	"[Unit]",
	"Description=Caddy: HTTPS in front of the workspace IDE",
	"Wants=network-online.target",
	"After=network-online.target",
	"",
	"[Service]",
	"DynamicUser=yes",
	"StateDirectory=gpubroker-caddy",
	"Environment=HOME=/var/lib/gpubroker-caddy XDG_DATA_HOME=/var/lib/gpubroker-caddy XDG_CONFIG_HOME=/var/lib/gpubroker-caddy",
	"EnvironmentFile=" + caddyEnv,
	"AmbientCapabilities=CAP_NET_BIND_SERVICE",
	"CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
	"ExecStart=/usr/local/bin/caddy run --config " + caddyConfig + " --adapter caddyfile",
	"Restart=on-failure",
	"RestartSec=5",
	"",
	"[Install]",
	"WantedBy=multi-user.target",
	"",
}, "\n")

// userData is the cloud-init document of a launch: a #cloud-config whose body is JSON (YAML
// is a superset, and JSON strings need no YAML quoting rules).
//
// The customer's keys go into cloud-init's ssh_authorized_keys, which cloud-init adds to the
// default user (ubuntu) next to the operator's key from ssh_key_names. We do this rather than
// registering each customer key with POST /ssh-keys and launching with it because launch takes
// exactly one key name (a customer with two keys could not have both), a registered key
// outlives the instance and would have to be deleted afterwards (a job that can fail, leaving
// customers' keys in our account), the account has a limit on keys, and per-pod key names
// would race between a retried job and the first run. user_data lives and dies with the
// instance.
//
// The rest installs the bootstrap of the images (images/common/gpubroker-start.sh) with its
// environment in a root-only file, as a systemd service running as ubuntu: it downloads,
// checks and unpacks the starter project on first boot (a failed download costs the
// workspace, not the IDE). Jupyter is Lambda's own JupyterLab (a valid certificate, Lambda's
// token), so the bootstrap runs no IDE and a link in Jupyter's root shows /workspace;
// code-server runs on 127.0.0.1-side port Config.IDEPort behind Caddy, which gets a real
// certificate for the VM's nip.io name. The VM's own sshd serves SSH (GPUBROKER_SSHD=0).
// TestUserDataSchema holds the document to cloud-init's schema.
func (c *Client) userData(r gpu.LaunchRequest) (string, error) {
	ide := r.IDE
	if ide == "" || ide == gpu.IDEJupyter {
		ide = "none"
	}
	env := []string{
		"GPUBROKER_IDE=" + ide,
		"GPUBROKER_IDE_PORT=" + strconv.Itoa(c.cfg.IDEPort),
		"GPUBROKER_SSHD=0",             // the VM's sshd already runs; cloud-init installs the keys
		"GPUBROKER_IDE_BIND=127.0.0.1", // code-server answers Caddy only; Caddy answers the world with TLS
		"HOME=/home/ubuntu",
	}
	if r.IDE == gpu.IDECodeServer {
		env = append(env, "PASSWORD="+r.IDESecret)
	}
	if r.BootURL != "" && r.BootSecret != "" {
		env = append(env, "GPUBROKER_BOOT_URL="+r.BootURL, "GPUBROKER_BOOT_SECRET="+r.BootSecret)
	}
	if w := r.Workspace; !w.IsZero() {
		env = append(env,
			"GPUBROKER_WORKSPACE_URL="+w.URL,
			"GPUBROKER_WORKSPACE_SHA256="+w.SHA256,
			"GPUBROKER_WORKSPACE_PATH="+w.Path)
	}
	unit := strings.Join([]string{
		"[Unit]",
		"Description=GPU Broker workspace (starter project and IDE)",
		"Wants=network-online.target",
		"After=network-online.target",
		// The script exits only when the IDE does, or when it could not start one; five tries
		// in ten minutes, then it stays down rather than report the same failure for ever.
		"StartLimitIntervalSec=600",
		"StartLimitBurst=5",
		"",
		"[Service]",
		"User=ubuntu",
		"EnvironmentFile=" + envFile,
		"ExecStart=" + startScript,
		"Restart=on-failure",
		"RestartSec=10",
		"",
		"[Install]",
		"WantedBy=multi-user.target",
		"",
	}, "\n")
	runcmd := []string{"mkdir -p " + workspaceDir + " && chown ubuntu:ubuntu " + workspaceDir}
	extra := []file{}
	switch r.IDE {
	case gpu.IDEJupyter:
		runcmd = append(runcmd, "ln -sfn "+workspaceDir+" "+jupyterLink+" && chown -h ubuntu:ubuntu "+jupyterLink)
	case gpu.IDECodeServer:
		runcmd = append(runcmd,
			// The bootstrap installs code-server itself, pinned by npm's integrity (it runs as
			// ubuntu): only the tools its native modules build with need root.
			"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential pkg-config python3 libkrb5-dev",
			fmt.Sprintf("curl -fsSL --retry 5 -o /tmp/caddy.tar.gz https://github.com/caddyserver/caddy/releases/download/v%[1]s/caddy_%[1]s_linux_amd64.tar.gz && echo '%[2]s  /tmp/caddy.tar.gz' | sha512sum -c - && tar -xzf /tmp/caddy.tar.gz -C /usr/local/bin caddy && rm -f /tmp/caddy.tar.gz", CaddyVersion, caddySHA512),
			publicHost+" > "+caddyEnv,
			"systemctl daemon-reload",
			"systemctl enable --now gpubroker-caddy.service")
		extra = append(extra,
			file{Path: caddyConfig, Permissions: "0644", Content: caddyfile("", c.cfg.IDEPort)},
			file{Path: publicHost, Permissions: "0755", Content: publicHostScript},
			file{Path: caddyUnit, Permissions: "0644", Content: caddyService})
	}
	runcmd = append(runcmd, "systemctl daemon-reload", "systemctl enable --now gpubroker-ide.service")

	doc := struct {
		SSHAuthorizedKeys []string `json:"ssh_authorized_keys,omitempty"`
		WriteFiles        []file   `json:"write_files"`
		RunCmd            []string `json:"runcmd"`
	}{
		SSHAuthorizedKeys: r.SSHPublicKeys,
		WriteFiles: append([]file{
			{Path: startScript, Permissions: "0755", Encoding: "b64", Content: base64.StdEncoding.EncodeToString(images.StartScript)},
			{Path: envFile, Permissions: "0600", Owner: "root:root", Content: strings.Join(env, "\n") + "\n"},
			{Path: unitFile, Permissions: "0644", Content: unit},
		}, extra...),
		RunCmd: runcmd,
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("lambda: encode user_data: %w", err)
	}
	out := "#cloud-config\n" + string(body) + "\n"
	if len(out) > MaxUserData {
		return "", fmt.Errorf("lambda: user_data of %s is %d bytes, over Lambda's limit of %d (too many or too long SSH keys)", r.Name, len(out), MaxUserData)
	}
	return out, nil
}

// file is one of cloud-init's write_files.
type file struct {
	Path        string `json:"path"`
	Permissions string `json:"permissions"`
	Owner       string `json:"owner,omitempty"`
	Encoding    string `json:"encoding,omitempty"`
	Content     string `json:"content"`
}
