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

// CodeServerVersion is the code-server release installed on Lambda VMs for the code-server
// template, the same as images/developer/Dockerfile.
const CodeServerVersion = "4.96.2"

// Paths on the VM.
const (
	startScript = "/usr/local/bin/gpubroker-start.sh"
	envFile     = "/etc/gpubroker/workspace.env"
	unitFile    = "/etc/systemd/system/gpubroker-ide.service"
	tlsCert     = "/etc/gpubroker/tls.crt"
	tlsKey      = "/etc/gpubroker/tls.key"
)

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
// checks and unpacks the starter project on first boot and runs Jupyter (token) or
// code-server (password) on the workspace, over HTTPS with a self-signed certificate; a failed
// download costs the workspace, not the IDE. The VM's own sshd serves SSH
// (GPUBROKER_SSHD=0). TestUserDataSchema holds the document to cloud-init's schema.
func (c *Client) userData(r gpu.LaunchRequest) (string, error) {
	ide := r.IDE
	if ide == "" {
		ide = "none"
	}
	env := []string{
		"GPUBROKER_IDE=" + ide,
		"GPUBROKER_IDE_PORT=" + strconv.Itoa(c.cfg.IDEPort),
		"GPUBROKER_SSHD=0", // the VM's sshd already runs; cloud-init installs the keys
		"GPUBROKER_TLS_CERT=" + tlsCert,
		"GPUBROKER_TLS_KEY=" + tlsKey,
		"HOME=/home/ubuntu",
	}
	switch r.IDE {
	case gpu.IDEJupyter:
		env = append(env, "JUPYTER_PASSWORD="+r.IDESecret)
	case gpu.IDECodeServer:
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
	runcmd := []string{
		"mkdir -p /workspace && chown ubuntu:ubuntu /workspace",
		"openssl req -x509 -newkey rsa:2048 -nodes -days 90 -subj /CN=gpubroker-workspace -keyout " + tlsKey + " -out " + tlsCert +
			" && chown ubuntu:ubuntu " + tlsKey + " " + tlsCert + " && chmod 600 " + tlsKey,
	}
	if r.IDE == gpu.IDECodeServer {
		runcmd = append(runcmd, fmt.Sprintf("curl -fsSL --retry 5 -o /tmp/code-server.deb https://github.com/coder/code-server/releases/download/v%[1]s/code-server_%[1]s_amd64.deb && dpkg -i /tmp/code-server.deb && rm -f /tmp/code-server.deb", CodeServerVersion))
	}
	runcmd = append(runcmd, "systemctl daemon-reload", "systemctl enable --now gpubroker-ide.service")

	type file struct {
		Path        string `json:"path"`
		Permissions string `json:"permissions"`
		Owner       string `json:"owner,omitempty"`
		Encoding    string `json:"encoding,omitempty"`
		Content     string `json:"content"`
	}
	doc := struct {
		SSHAuthorizedKeys []string `json:"ssh_authorized_keys,omitempty"`
		WriteFiles        []file   `json:"write_files"`
		RunCmd            []string `json:"runcmd"`
	}{
		SSHAuthorizedKeys: r.SSHPublicKeys,
		WriteFiles: []file{
			{Path: startScript, Permissions: "0755", Encoding: "b64", Content: base64.StdEncoding.EncodeToString(images.StartScript)},
			{Path: envFile, Permissions: "0600", Owner: "root:root", Content: strings.Join(env, "\n") + "\n"},
			{Path: unitFile, Permissions: "0644", Content: unit},
		},
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
