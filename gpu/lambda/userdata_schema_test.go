package lambda_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
)

// The user data of real launches (code-server with two keys and a starter project; Jupyter
// with neither) passes cloud-init's own schema check, Debian's cloud-init schema
// --config-file, which is what the VM's cloud-init will hold it to. The check fails, never
// skips, without cloud-init.
func TestUserDataSchema(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("cloud-init"); err != nil {
		t.Fatalf("cloud-init is not installed, and this test runs its schema check; install it with:\n" +
			"  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cloud-init")
	}
	f, srv := newFake(t)
	c := newClient(srv)
	offer := gpu.Offer{ID: "gpu_1x_h100_sxm5@us-east-1"}
	launches := []gpu.LaunchRequest{
		{Offer: offer, Name: "pod-9", IDE: gpu.IDECodeServer, SSHPublicKeys: []string{keyA, keyB}, IDESecret: secret, Workspace: workspace},
		{Offer: offer, Name: "pod-10", IDE: gpu.IDEJupyter, IDESecret: secret},
	}
	for i, r := range launches {
		_, err := c.Launch(context.Background(), r)
		require.NoError(t, err)
		file := filepath.Join(t.TempDir(), "user-data")
		require.NoError(t, os.WriteFile(file, []byte(f.launches[i]["user_data"].(string)), 0o600))
		out, err := exec.Command("cloud-init", "schema", "--config-file", file).CombinedOutput()
		require.NoError(t, err, "cloud-init schema, %s (%s):\n%s", r.Name, r.IDE, out)
		require.Contains(t, string(out), "Valid cloud-config", r.Name)
		require.NotContains(t, strings.ToLower(string(out)), "deprecat", r.Name)
	}
}
