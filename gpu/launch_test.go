package gpu_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
)

const secret = "s3cr3t-ide-token-5f2a"

func request() gpu.LaunchRequest {
	return gpu.LaunchRequest{
		Name: "gpubroker-pod-1", IDE: gpu.IDEJupyter, IDESecret: secret,
		SSHPublicKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice"},
		Workspace: gpu.Workspace{Name: "ws", Path: "/workspace/ws", URL: "http://x/ws.tar.gz",
			SHA256: strings.Repeat("ab", 32)},
	}
}

// The IDE secret never reaches a log line or an error message, however the request is printed.
func TestLaunchRequestRedactsSecret(t *testing.T) {
	r := request()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("launch", "req", r)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("launch", "req", r)
	buf.WriteString(fmt.Sprintf("%v %+v %s %#v", r, r, r, r))
	require.NotContains(t, buf.String(), secret)
	require.Contains(t, buf.String(), "gpubroker-pod-1")
	require.Contains(t, buf.String(), "REDACTED")
}

func TestLaunchRequestValidateKeysAndWorkspace(t *testing.T) {
	require.NoError(t, request().Validate())
	r := request()
	r.SSHPublicKeys = []string{"ssh-ed25519 AAAA a\nssh-rsa BBBB evil"}
	require.Error(t, r.Validate(), "a key must be one line")
	r = request()
	r.Workspace.SHA256 = "nothex"
	require.Error(t, r.Validate())
	r = request()
	r.IDESecret = "a b"
	require.Error(t, r.Validate(), "a secret that would need quoting")
	r = request()
	r.Workspace.URL = "file:///etc/passwd"
	require.Error(t, r.Validate())
	r = request()
	r.Workspace.Path = "relative"
	require.Error(t, r.Validate())
	r = request()
	r.Workspace = gpu.Workspace{}
	require.NoError(t, r.Validate(), "no workspace is fine")
}
