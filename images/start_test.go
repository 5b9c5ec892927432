package images_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/images"
	"gpubroker/workspaces"
)

const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop"
	keyB = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBob bob@desk"
)

func tgz(t *testing.T, files map[string]string) ([]byte, string) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"README.md", "data/notes.txt"} {
		if body, ok := files[name]; ok {
			require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
			tw.Write([]byte(body))
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:])
}

// env is a sandbox: a HOME, a workspace path, and fake sshd, jupyter and code-server on PATH
// that record how they were started.
type env struct {
	t                *testing.T
	home, ws, record string
	vars             map[string]string
}

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	e := &env{t: t, home: filepath.Join(dir, "home"), ws: filepath.Join(dir, "workspace", "proj"), record: filepath.Join(dir, "record")}
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.MkdirAll(e.home, 0o755))
	for _, name := range []string{"sshd", "jupyter", "code-server"} {
		fake := "#!/bin/sh\n{ echo \"" + name + " $*\"; echo \"env JUPYTER_TOKEN=${JUPYTER_TOKEN:-} PASSWORD=${PASSWORD:-} JUPYTER_PASSWORD=${JUPYTER_PASSWORD:-}\"; } >>" + e.record + "\n"
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(fake), 0o755))
	}
	e.vars = map[string]string{"HOME": e.home, "PATH": bin + ":" + os.Getenv("PATH"), "GPUBROKER_WORKSPACE_PATH": e.ws}
	return e
}

func (e *env) run() (string, error) {
	script := filepath.Join(e.t.TempDir(), "gpubroker-start.sh")
	require.NoError(e.t, os.WriteFile(script, images.StartScript, 0o755))
	cmd := exec.Command("bash", script)
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *env) recorded() string {
	b, _ := os.ReadFile(e.record)
	return string(b)
}

func TestStartJupyter(t *testing.T) {
	t.Parallel()
	body, sum := tgz(t, map[string]string{"README.md": "hello", "data/notes.txt": "a\nb\n"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	e := newEnv(t)
	e.vars["PUBLIC_KEY"] = keyA + "\n" + keyB
	e.vars["SSH_PUBLIC_KEY"] = keyA + "\n" + keyB
	e.vars["GPUBROKER_WORKSPACE_URL"] = srv.URL + "/ws.tar.gz"
	e.vars["GPUBROKER_WORKSPACE_SHA256"] = sum
	e.vars["GPUBROKER_IDE"] = "jupyter"
	e.vars["JUPYTER_PASSWORD"] = "tok-123"
	out, err := e.run()
	require.NoError(t, err, out)

	keys, err := os.ReadFile(filepath.Join(e.home, ".ssh", "authorized_keys"))
	require.NoError(t, err)
	require.Equal(t, keyA+"\n"+keyB+"\n", string(keys), "each key once")
	st, _ := os.Stat(filepath.Join(e.home, ".ssh", "authorized_keys"))
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	readme, err := os.ReadFile(filepath.Join(e.ws, "README.md"))
	require.NoError(t, err)
	require.Equal(t, "hello", string(readme))
	require.FileExists(t, filepath.Join(e.ws, "data", "notes.txt"))

	rec := e.recorded()
	require.Contains(t, rec, "sshd -o PasswordAuthentication=no")
	require.Contains(t, rec, "jupyter lab --no-browser --ip=0.0.0.0 --port=8888 --ServerApp.root_dir="+e.ws)
	require.Contains(t, rec, "env JUPYTER_TOKEN=tok-123 PASSWORD= JUPYTER_PASSWORD=\n", "the token in the environment")
	for _, line := range strings.Split(rec, "\n") {
		if strings.HasPrefix(line, "jupyter ") || strings.HasPrefix(line, "sshd ") {
			require.NotContains(t, line, "tok-123", "never on a command line")
		}
	}
	require.Contains(t, rec, "env JUPYTER_TOKEN= PASSWORD= JUPYTER_PASSWORD=\n", "sshd does not get the secret")

	// Second boot: the customer's edits stay; nothing is downloaded again.
	require.NoError(t, os.WriteFile(filepath.Join(e.ws, "README.md"), []byte("my notes"), 0o644))
	srv.Close()
	out, err = e.run()
	require.NoError(t, err, out)
	readme, _ = os.ReadFile(filepath.Join(e.ws, "README.md"))
	require.Equal(t, "my notes", string(readme))
	require.Contains(t, out, "already unpacked")
	keys, _ = os.ReadFile(filepath.Join(e.home, ".ssh", "authorized_keys"))
	require.Equal(t, keyA+"\n"+keyB+"\n", string(keys), "no duplicates on the second boot")
}

func TestStartRefusesWrongChecksum(t *testing.T) {
	t.Parallel()
	body, _ := tgz(t, map[string]string{"README.md": "hello"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	e := newEnv(t)
	e.vars["GPUBROKER_WORKSPACE_URL"] = srv.URL
	e.vars["GPUBROKER_WORKSPACE_SHA256"] = strings.Repeat("0", 64)
	e.vars["GPUBROKER_IDE"] = "jupyter"
	e.vars["JUPYTER_PASSWORD"] = "tok"
	out, err := e.run()
	require.Error(t, err)
	require.Contains(t, out, "refusing to unpack")
	require.NoFileExists(t, filepath.Join(e.ws, "README.md"))
	require.NotContains(t, e.recorded(), "jupyter", "no IDE on a bad workspace")
}

func TestStartCodeServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["GPUBROKER_IDE"] = "code-server"
	e.vars["PASSWORD"] = "pw-456"
	e.vars["GPUBROKER_IDE_PORT"] = "8443"
	e.vars["GPUBROKER_TLS_CERT"] = "/etc/gpubroker/tls.crt"
	e.vars["GPUBROKER_TLS_KEY"] = "/etc/gpubroker/tls.key"
	out, err := e.run()
	require.NoError(t, err, out)
	rec := e.recorded()
	require.Contains(t, rec, "code-server --auth password --bind-addr 0.0.0.0:8443 --disable-telemetry --cert /etc/gpubroker/tls.crt --cert-key /etc/gpubroker/tls.key "+e.ws)
	require.Contains(t, rec, "PASSWORD=pw-456")
	require.NotContains(t, rec, "sshd", "no keys, no sshd")
	require.Contains(t, out, "SSH is not offered")
	require.NoFileExists(t, filepath.Join(e.home, ".ssh", "authorized_keys"))
}

// An IDE without its secret would be open to the internet: the script refuses to start it.
func TestStartRefusesIDEWithoutSecret(t *testing.T) {
	t.Parallel()
	for _, ide := range []string{"jupyter", "code-server"} {
		e := newEnv(t)
		e.vars["GPUBROKER_IDE"] = ide
		out, err := e.run()
		require.Error(t, err, ide)
		require.Contains(t, out, "refusing to start")
		require.Empty(t, e.recorded())
	}
}

// The real starter project, served as the dev server serves it, unpacks with the real script.
func TestStartUnpacksRealStarterProject(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(workspaces.Handler())
	defer srv.Close()
	for _, tpl := range workspaces.Templates() {
		w, err := workspaces.For(tpl, srv.URL)
		require.NoError(t, err)
		e := newEnv(t)
		e.vars["GPUBROKER_WORKSPACE_URL"] = w.URL
		e.vars["GPUBROKER_WORKSPACE_SHA256"] = w.SHA256
		e.vars["GPUBROKER_IDE"] = "jupyter"
		e.vars["JUPYTER_PASSWORD"] = "tok"
		out, err := e.run()
		require.NoError(t, err, out)
		require.FileExists(t, filepath.Join(e.ws, "README.md"), tpl)
	}
}
