//go:build linux

package images_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
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

// The Debian packages TestWorkspaceCheck runs for real, and what it needs of each.
var workspaceCheckPackages = []struct{ pkg, check string }{
	{"openssh-server", "/usr/sbin/sshd"},
	{"openssh-client", "ssh"},
	{"openssh-client", "ssh-keygen"},
	{"python3-jupyter-server", "python3:jupyter_server"},
	{"iproute2", "ip"},
}

// sandboxPATH is the bootstrap's PATH in the check: a stock Debian one, so python3 is
// Debian's (with python3-jupyter-server), not whatever the developer's shell has first.
const sandboxPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// requireWorkspaceCheckPackages fails (never skips) when a package is missing, naming the
// apt-get line that installs them.
func requireWorkspaceCheckPackages(t *testing.T) {
	t.Helper()
	var missing []string
	for _, p := range workspaceCheckPackages {
		ok := true
		switch {
		case strings.HasPrefix(p.check, "python3:"):
			ok = exec.Command("/usr/bin/python3", "-c", "import "+strings.TrimPrefix(p.check, "python3:")).Run() == nil
		case strings.HasPrefix(p.check, "/"):
			_, err := os.Stat(p.check)
			ok = err == nil
		default:
			_, err := exec.LookPath(p.check)
			ok = err == nil
		}
		if !ok && !strings.Contains(strings.Join(missing, " "), p.pkg) {
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("workspace-check runs the real sshd, ssh and Jupyter server and needs Debian packages that are missing here (%s); install them with:\n"+
			"  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server openssh-client python3-jupyter-server iproute2",
			strings.Join(missing, ", "))
	}
}

// sandbox is where one boot runs: a network namespace of its own (ip netns) when we may make
// one, so sshd and Jupyter listen on their real ports (22, 8888) without meeting anything
// else on the machine; otherwise the host's loopback with free high ports.
type sandbox struct {
	t       *testing.T
	dir     string // everything of this boot lives here
	netns   string // the namespace's name, "" on the host's loopback
	sshPort int
	idePort int
}

var netnsSeq struct {
	sync.Mutex
	n int
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	s := &sandbox{t: t, dir: t.TempDir(), sshPort: 22, idePort: 8888}
	netnsSeq.Lock()
	netnsSeq.n++
	name := fmt.Sprintf("gpubroker-wc-%d-%d", os.Getpid(), netnsSeq.n)
	netnsSeq.Unlock()
	if setnsSyscall[runtime.GOARCH] == 0 {
		t.Logf("no setns(2) number for %s: sshd and Jupyter on loopback high ports", runtime.GOARCH)
		s.sshPort, s.idePort = freePort(t), freePort(t)
	} else if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		// Not root, or a container without CAP_SYS_ADMIN: the host's loopback will do.
		t.Logf("no network namespace (ip netns add: %v: %s): sshd and Jupyter on loopback high ports", err, bytes.TrimSpace(out))
		s.sshPort, s.idePort = freePort(t), freePort(t)
	} else {
		s.netns = name
		t.Cleanup(func() {
			s.killNetns()
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		})
		if out, err := s.command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("bringing up lo in %s: %v: %s", name, err, out)
		}
	}
	// Whatever happens to the test, no sshd or Jupyter of ours outlives it: everything whose
	// command line names this boot's directory is killed (this runs before TempDir's removal).
	t.Cleanup(func() { killMentioning(s.dir) })
	return s
}

// command runs name inside the sandbox's network namespace.
func (s *sandbox) command(name string, args ...string) *exec.Cmd {
	if s.netns == "" {
		return exec.Command(name, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", s.netns, name}, args...)...)
}

// in runs fn on an OS thread inside the sandbox's network namespace, so the sockets fn makes
// belong to it; the thread is thrown away if it cannot be moved back.
func (s *sandbox) in(fn func()) {
	if s.netns == "" {
		fn()
		return
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := os.Open("/run/netns/" + s.netns)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := setns(ns); err != nil {
			errc <- fmt.Errorf("setns %s: %w", s.netns, err)
			return
		}
		fn()
		if err := setns(orig); err != nil {
			errc <- nil // the locked thread ends with this goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	require.NoError(s.t, <-errc)
}

// setnsSyscall is setns(2)'s number per architecture (package syscall lacks it on amd64); on
// any other the check runs on loopback high ports.
var setnsSyscall = map[string]uintptr{"amd64": 308, "arm64": 268, "riscv64": 268, "loong64": 268, "386": 346, "arm": 375, "ppc64le": 350, "s390x": 339}

func setns(f *os.File) error {
	if _, _, errno := syscall.RawSyscall(setnsSyscall[runtime.GOARCH], f.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
		return errno
	}
	return nil
}

// listen makes a loopback listener inside the sandbox.
func (s *sandbox) listen() net.Listener {
	var l net.Listener
	var err error
	s.in(func() { l, err = net.Listen("tcp", "127.0.0.1:0") })
	require.NoError(s.t, err)
	return l
}

func (s *sandbox) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	s.in(func() { c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr) })
	return c, err
}

func (s *sandbox) httpClient() *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: s.dial, DisableKeepAlives: true}}
}

// killNetns kills whatever still runs in the namespace.
func (s *sandbox) killNetns() {
	out, _ := exec.Command("ip", "netns", "pids", s.netns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// killMentioning kills every process whose command line contains s.
func killMentioning(s string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// boot is one run of the real bootstrap in a sandbox.
type boot struct {
	s          *sandbox
	si         *standIn
	home, ws   string
	key        string // the customer's private key file
	user       string
	ideSecret  string
	bootSecret string
	started    time.Time
	out        *lockedBuffer
	exited     chan error
	sshdUp     time.Duration // until sshd accepts connections
	ideUp      time.Duration // until /api/status?token answers 200
}

// startBoot runs the bootstrap as the pod would: the customer's key, Jupyter with its
// secret, the starter project from the mirror (workspaceURL and sum, "" for the real ones)
// and boot reports to the stand-in, with sshd on its own config and host key.
func startBoot(t *testing.T, workspaceURL, sum string) *boot {
	t.Helper()
	return startBootChecked(t, workspaceURL, sum, images.StartScriptSHA256)
}

// startBootChecked boots as a RunPod pod does: the start command (images.StartCommand, the
// create's args) downloads the bootstrap from the stand-in's /boot/ and runs it if its SHA-256
// is bootSum.
func startBootChecked(t *testing.T, workspaceURL, sum, bootSum string) *boot {
	t.Helper()
	s := newSandbox(t)
	u, err := user.Current()
	require.NoError(t, err)
	b := &boot{s: s, home: filepath.Join(s.dir, "home"), user: u.Username, ideSecret: "ide-" + randHex(t), bootSecret: "boot-" + randHex(t),
		out: &lockedBuffer{}, exited: make(chan error, 1)}
	sshDir := filepath.Join(s.dir, "sshd")
	require.NoError(t, os.MkdirAll(b.home, 0o755))
	require.NoError(t, os.MkdirAll(sshDir, 0o700))

	// The customer's key, and sshd's own host key and config: nothing of the host's /etc/ssh.
	b.key = filepath.Join(s.dir, "customer_ed25519")
	run(t, exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "customer@laptop", "-f", b.key))
	pub, err := os.ReadFile(b.key + ".pub")
	require.NoError(t, err)
	run(t, exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(sshDir, "ssh_host_ed25519_key")))
	sshdConfig := filepath.Join(sshDir, "sshd_config")
	require.NoError(t, os.WriteFile(sshdConfig, []byte(strings.Join([]string{
		"Port " + strconv.Itoa(s.sshPort),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(sshDir, "ssh_host_ed25519_key"),
		"PidFile " + filepath.Join(sshDir, "sshd.pid"),
		// The bootstrap installs the keys into $HOME, a temporary one here, which sshd's
		// StrictModes would refuse (it sits under /tmp); a pod's HOME is the login user's.
		"AuthorizedKeysFile " + filepath.Join(b.home, ".ssh", "authorized_keys"),
		"StrictModes no",
		"UsePAM no",
		"",
	}, "\n")), 0o600))

	b.si = newStandIn(t, s.listen(), "pod-7", b.bootSecret, []string{b.ideSecret, b.bootSecret})
	if workspaceURL == "" {
		w, err := workspaces.For("data-science", b.si.url)
		require.NoError(t, err)
		workspaceURL, sum = w.URL, w.SHA256
	} else {
		workspaceURL = b.si.url + workspaceURL
	}
	b.ws = filepath.Join(s.dir, "workspace", "project")

	argv, err := images.StartCommand(images.StartScriptURL(b.si.url), bootSum)
	require.NoError(t, err)
	// The download lands in this boot's directory, and no /start.sh of an image is here.
	script := strings.NewReplacer("/tmp/gpubroker-start.sh", filepath.Join(s.dir, "gpubroker-start.sh"),
		"/start.sh", filepath.Join(s.dir, "image-start.sh")).Replace(argv[2])
	cmd := s.command(argv[0], argv[1], script)
	cmd.Env = []string{
		"HOME=" + b.home,
		"PATH=" + sandboxPATH,
		"LANG=C.UTF-8",
		"PUBLIC_KEY=" + strings.TrimSpace(string(pub)),
		"GPUBROKER_SSHD_CONFIG=" + sshdConfig,
		"GPUBROKER_IDE=jupyter",
		"JUPYTER_PASSWORD=" + b.ideSecret,
		"GPUBROKER_WORKSPACE_URL=" + workspaceURL,
		"GPUBROKER_WORKSPACE_SHA256=" + sum,
		"GPUBROKER_WORKSPACE_PATH=" + b.ws,
		"GPUBROKER_BOOT_URL=" + b.si.url + "/api/pods/pod-7/boot",
		"GPUBROKER_BOOT_SECRET=" + b.bootSecret,
	}
	if s.netns == "" {
		cmd.Env = append(cmd.Env, "GPUBROKER_IDE_PORT="+strconv.Itoa(s.idePort))
	}
	cmd.Stdout, cmd.Stderr = b.out, b.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second // should a daemon keep the output pipe open
	b.started = time.Now()
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
		if t.Failed() {
			t.Logf("bootstrap output:\n%s", b.out.String())
		}
	})
	go func() { b.exited <- cmd.Wait() }()
	return b
}

func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s: %s", cmd, out)
}

// waitReady waits for the sshd port, for Jupyter to answer with the token and for the ready
// report, all within the deadline, and fails with the bootstrap's output if it exits first.
func (b *boot) waitReady(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	hc := b.s.httpClient()
	status := fmt.Sprintf("http://127.0.0.1:%d/api/status?token=%s", b.s.idePort, b.ideSecret)
	for b.sshdUp == 0 || b.ideUp == 0 {
		select {
		case err := <-b.exited:
			b.exited <- err
			t.Fatalf("the bootstrap exited (%v) before sshd and Jupyter were up", err)
		case <-ctx.Done():
			t.Fatalf("sshd up after %v, Jupyter after %v (0: not yet) within 25s", b.sshdUp, b.ideUp)
		case <-time.After(25 * time.Millisecond):
		}
		if b.sshdUp == 0 {
			if c, err := b.s.dial(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(b.s.sshPort)); err == nil {
				c.Close()
				b.sshdUp = time.Since(b.started)
			}
		}
		if b.ideUp == 0 {
			if resp, err := hc.Get(status); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					b.ideUp = time.Since(b.started)
				}
			}
		}
	}
	select {
	case <-b.si.ready:
	case err := <-b.exited:
		b.exited <- err
		t.Fatalf("the bootstrap exited (%v) without reporting ready", err)
	case <-ctx.Done():
		reports, refused, _ := b.si.snapshot()
		t.Fatalf("no ready report within 25s (reports %+v, refused %v)", reports, refused)
	}
}

// login logs in as the customer would, with the generated key, and returns how long it took.
func (b *boot) login(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	cmd := b.s.command("ssh", "-F", "/dev/null", "-i", b.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
		"-p", strconv.Itoa(b.s.sshPort), b.user+"@127.0.0.1", "true")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "ssh login with the customer's key: %s", out)
	return time.Since(start)
}

// checkJupyter: the status endpoint answers with the token only.
func (b *boot) checkJupyter(t *testing.T) {
	t.Helper()
	hc := b.s.httpClient()
	base := fmt.Sprintf("http://127.0.0.1:%d/api/status", b.s.idePort)
	for q, want := range map[string]int{"?token=" + b.ideSecret: http.StatusOK, "": http.StatusForbidden, "?token=wrong": http.StatusForbidden} {
		resp, err := hc.Get(base + q)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "GET /api/status%s", strings.ReplaceAll(q, b.ideSecret, "<secret>"))
	}
}

// checkReports: every step reported once, in order, ready last, with the right secret and no
// secret on any command line meanwhile.
func (b *boot) checkReports(t *testing.T, workspaceOK bool, workspaceDetail string) {
	t.Helper()
	b.si.checkClean(t, b.ideSecret, b.bootSecret)
	require.Equal(t, []string{"keys", "sshd", "workspace", "ide", "ready"}, b.si.steps())
	for _, name := range []string{"keys", "sshd", "ide", "ready"} {
		r := b.si.step(t, name)
		require.True(t, r.OK, "%s: %+v", name, r)
	}
	ws := b.si.step(t, "workspace")
	require.Equal(t, workspaceOK, ws.OK, "workspace: %+v", ws)
	require.Contains(t, ws.Detail, workspaceDetail)
}

// checkEnvironments: sshd (and so every SSH session) gets neither secret; Jupyter gets its
// token in its environment, and not the boot secret.
func (b *boot) checkEnvironments(t *testing.T) {
	t.Helper()
	pidFile, err := os.ReadFile(filepath.Join(b.s.dir, "sshd", "sshd.pid"))
	require.NoError(t, err, "sshd's PidFile")
	sshdEnv, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pidFile)) + "/environ")
	require.NoError(t, err)
	require.NotContains(t, string(sshdEnv), b.ideSecret, "sshd's environment")
	require.NotContains(t, string(sshdEnv), b.bootSecret, "sshd's environment")

	// Debian's Jupyter Server, with exactly the options JupyterLab gets (TestStartJupyter).
	want := fmt.Sprintf("python3 -m jupyter_server --no-browser --ip=0.0.0.0 --port=%d --ServerApp.root_dir=%s --ServerApp.allow_remote_access=True --ServerApp.port_retries=0",
		b.s.idePort, b.ws)
	if os.Getuid() == 0 {
		want += " --allow-root"
	}
	var jupyterEnv []byte
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cl, err := os.ReadFile(p)
		if err == nil && bytes.Contains(cl, []byte("--ServerApp.root_dir="+b.ws+"\x00")) {
			require.Equal(t, want, strings.TrimSpace(string(bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))))
			jupyterEnv, err = os.ReadFile(filepath.Join(filepath.Dir(p), "environ"))
			require.NoError(t, err)
		}
	}
	require.NotNil(t, jupyterEnv, "the Jupyter process")
	require.Contains(t, string(jupyterEnv), "JUPYTER_TOKEN="+b.ideSecret+"\x00")
	require.NotContains(t, string(jupyterEnv), b.bootSecret)
	require.NotContains(t, string(jupyterEnv), "JUPYTER_PASSWORD=")
}

// TestWorkspaceCheck (make workspace-check) boots the real bootstrap against real daemons:
// Debian's sshd, started by the bootstrap on its own config and host key, takes a login with
// the customer's generated key; Debian's Jupyter server, started with the options the
// bootstrap gives JupyterLab, answers /api/status with the token only; the starter project
// comes from a local mirror; every step is reported to a stand-in of POST
// /api/pods/{id}/boot with the pod's boot secret. A broken download (a wrong SHA-256, a 404)
// costs the workspace and nothing else. It runs in a network namespace of its own when it
// can (as root), otherwise on loopback high ports.
func TestWorkspaceCheck(t *testing.T) {
	requireWorkspaceCheckPackages(t)
	var line []string
	where := "loopback high ports"

	t.Run("boot", func(t *testing.T) {
		b := startBoot(t, "", "")
		b.waitReady(t)
		login := b.login(t)
		b.checkJupyter(t)
		b.checkReports(t, true, "unpacked")
		b.checkEnvironments(t)
		require.FileExists(t, filepath.Join(b.ws, "README.md"), "the starter project, unpacked where Jupyter opens")
		keys, err := os.ReadFile(filepath.Join(b.home, ".ssh", "authorized_keys"))
		require.NoError(t, err)
		require.Contains(t, string(keys), "customer@laptop")
		if b.s.netns != "" {
			where = "netns"
		}
		line = append(line, "sshd "+ms(b.sshdUp), "login "+ms(login), "jupyter "+ms(b.ideUp))
	})

	broken := map[string]struct{ path, sum, detail string }{
		"wrong SHA-256": {"/workspaces/data-science-000000000000.tar.gz", "", "SHA-256"},
		"404":           {"/workspaces/missing.tar.gz", strings.Repeat("ab", 32), "404"},
	}
	for _, name := range []string{"wrong SHA-256", "404"} {
		c := broken[name]
		t.Run(name, func(t *testing.T) {
			path, sum := c.path, c.sum
			if sum == "" {
				// The real tarball, announced with the wrong checksum.
				w, err := workspaces.For("data-science", "")
				require.NoError(t, err)
				path, sum = w.URL, strings.Repeat("0", 64)
			}
			b := startBoot(t, path, sum)
			b.waitReady(t)
			b.login(t)
			b.checkJupyter(t)
			b.checkReports(t, false, c.detail)
			require.NoFileExists(t, filepath.Join(b.ws, "README.md"), "nothing unpacked")
			line = append(line, "broken-download ("+name+") ide "+ms(b.ideUp))
		})
	}
	// A bootstrap whose SHA-256 is not the launch's is never run: nothing starts, nothing is
	// reported, and the container log says why.
	t.Run("wrong bootstrap SHA-256", func(t *testing.T) {
		b := startBootChecked(t, "", "", strings.Repeat("0", 64))
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(b.out.String(), "not run") {
			require.True(t, time.Now().Before(deadline), "no refusal in the log: %s", b.out.String())
			time.Sleep(50 * time.Millisecond)
		}
		require.Contains(t, b.out.String(), "has SHA-256 "+images.StartScriptSHA256+", want "+strings.Repeat("0", 64)+": not run")
		time.Sleep(500 * time.Millisecond)
		reports, _, _ := b.si.snapshot()
		require.Empty(t, reports, "the bootstrap never ran")
		_, err := b.s.dial(context.Background(), "tcp", "127.0.0.1:"+strconv.Itoa(b.s.sshPort))
		require.Error(t, err, "no sshd")
		require.NoFileExists(t, filepath.Join(b.s.dir, "gpubroker-start.sh"), "the refused download is removed")
		line = append(line, "wrong bootstrap SHA-256 refused")
	})
	if !t.Failed() {
		fmt.Printf("workspace-check (%s): %s\n", where, strings.Join(line, ", "))
	}
}

func ms(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
}
