package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/api"
	"gpubroker/internal/testdb"
)

// originSecret is what the CloudFront stand-in of these tests sends the api.
const originSecret = "origin-secret-0123456789abcdef-0123456789"

// startMode runs one production-mode process (api or worker) on 127.0.0.1:0 with its own
// database, the configuration vars on top of what the mode needs, and tune applied to Main
// before Open.
func startMode(t *testing.T, mode string, vars map[string]string, tune func(*Main)) *Main {
	t.Helper()
	_, dbURL := testdb.NewWithURL(t)
	all := map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "STRIPE_SECRET_KEY": "sk_test_prod",
		"STRIPE_API_BASE": "http://127.0.0.1:9", "GPU_SIMULATOR": "true", "ADMIN_PASSWORD": "ops-password-of-16+"}
	for k, v := range vars {
		all[k] = v
	}
	cfg, err := configure(mode, func(k string) string { return all[k] })
	require.NoError(t, err)
	m := &Main{Mode: mode, Config: cfg, PublicURLFromListener: true,
		Logger: slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if tune != nil {
		tune(m)
	}
	require.NoError(t, m.Open(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	return m
}

// get answers a GET's status and body, with the header pairs given.
func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape reads /metrics as Prometheus does in production: on the private listener
// (METRICS_ADDR), without credentials.
func (e *env) scrape() string {
	e.t.Helper()
	require.NotEmpty(e.t, e.m.MetricsURL, "the env was started with METRICS_ADDR")
	e.collect()
	resp, err := http.Get(e.m.MetricsURL + "/metrics")
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(e.t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}

// metricsEnv is newEnv's METRICS_ADDR, for the tests that scrape.
var metricsEnv = map[string]string{"METRICS_ADDR": "127.0.0.1:0"}

// Issue 19 item 4: the production build (-tags nostandins, what the image runs) has no dev
// mode. Before, `gpubroker dev` ran there with a live key and an https PUBLIC_URL and served
// every sign-in link at /dev/mail on all interfaces.
func TestProductionBuildHasNoDevMode(t *testing.T) {
	t.Parallel()
	_, dbURL := testdb.NewWithURL(t)
	bin := filepath.Join(t.TempDir(), "gpubroker")
	out, err := exec.Command("go", "build", "-tags", "nostandins", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cmd := exec.Command(bin, "dev")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + dbURL, "ADDR=" + addr,
		"STRIPE_SECRET_KEY=sk_live_issue19", "STRIPE_WEBHOOK_SECRET=whsec_issue19", "PUBLIC_URL=https://gpubroker.example",
		"SITE_DIR=" + t.TempDir(), "LOG_LEVEL=warn"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.After(time.Minute)
	for {
		select {
		case err := <-exited:
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, stderr.String())
			require.Equal(t, 2, exit.ExitCode(), "a configuration error: %s", stderr.String())
			require.Contains(t, stderr.String(), "dev")
			require.Contains(t, stderr.String(), "nostandins")
			return
		case <-deadline:
			t.Fatalf("gpubroker dev neither served nor exited in a minute: %s", stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get("http://" + addr + "/dev/mail"); err == nil {
			resp.Body.Close()
			t.Fatalf("the production build runs dev: GET /dev/mail answered %d", resp.StatusCode)
		}
	}
}

// Issue 19 items 4 and 6, through the function main validates with: what each mode refuses
// before anything listens, naming the variable.
func TestConfigureRefusesByMode(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://localhost/x"}
	for _, tc := range []struct {
		mode string
		vars map[string]string
		bad  string
	}{
		{"dev", map[string]string{"STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}, "STRIPE_SECRET_KEY"},
		{"dev", map[string]string{"STRIPE_SECRET_KEY": "rk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}, "STRIPE_SECRET_KEY"},
		{"dev", map[string]string{"PUBLIC_URL": "https://gpubroker.example"}, "PUBLIC_URL"},
		{"dev", map[string]string{"PUBLIC_URL": "http://10.1.2.3:8080"}, "PUBLIC_URL"},
		{"dev", map[string]string{"ADMIN_PASSWORD": "ops-secret"}, ""}, // loopback only: any password
		{"api", map[string]string{"ADMIN_PASSWORD": "ops-secret", "ORIGIN_SECRET": originSecret}, "ADMIN_PASSWORD"},
		{"worker", map[string]string{"ADMIN_PASSWORD": "ops-secret"}, "ADMIN_PASSWORD"},
		{"worker", map[string]string{"ADMIN_PASSWORD": "sixteen-chars-ok"}, ""},
		{"api", map[string]string{}, "ORIGIN_SECRET"},
		{"api", map[string]string{"ORIGIN_SECRET": originSecret}, ""},
		{"worker", map[string]string{"METRICS_ADDR": ":9090"}, "METRICS_ADDR"},
		{"api", map[string]string{"METRICS_ADDR": "203.0.113.9:9090", "ORIGIN_SECRET": originSecret}, "METRICS_ADDR"},
	} {
		vars := map[string]string{}
		for k, v := range base {
			vars[k] = v
		}
		for k, v := range tc.vars {
			vars[k] = v
		}
		cfg, err := configure(tc.mode, func(k string) string { return vars[k] })
		if tc.bad == "" {
			require.NoError(t, err, "%s %v", tc.mode, tc.vars)
			continue
		}
		require.Error(t, err, "%s %v", tc.mode, tc.vars)
		require.Contains(t, err.Error(), tc.bad+": ", "%s %v", tc.mode, tc.vars)
		require.Nil(t, cfg)
	}
	cfg, err := configure("dev", func(k string) string { return base[k] })
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", cfg.Addr, "dev listens on loopback unless ADDR says otherwise")
}

// Issue 19 item 5: /metrics is never public. The process's own port answers it only with
// admin auth; METRICS_ADDR is a private listener serving /metrics alone, without auth, for
// the scraper, in every mode, and it shuts down with the process.
func TestMetricsOnThePrivateListener(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{env: metricsEnv})
	code, _ := get(t, e.url+"/metrics")
	require.Equal(t, http.StatusUnauthorized, code, "the public port asks for credentials")
	require.Contains(t, e.scrape(), "# TYPE gpubroker_http_requests_total counter")
	for _, path := range []string{"/api/catalog", "/ops/", "/ops/funnel", "/dev/mail", "/healthz"} {
		code, _ := get(t, e.m.MetricsURL+path)
		require.Equal(t, http.StatusNotFound, code, "the metrics listener serves /metrics alone: %s", path)
	}

	for _, mode := range []string{"api", "worker"} {
		m := startMode(t, mode, map[string]string{"METRICS_ADDR": "127.0.0.1:0", "ORIGIN_SECRET": originSecret}, nil)
		require.True(t, strings.HasPrefix(m.MetricsURL, "http://127.0.0.1:"), m.MetricsURL)
		require.NotEqual(t, m.URL, m.MetricsURL)
		code, body := get(t, m.MetricsURL+"/metrics")
		require.Equal(t, http.StatusOK, code, mode)
		require.Contains(t, body, "gpubroker_pods", mode)
		code, _ = get(t, m.URL+"/metrics", api.OriginSecretHeader, originSecret)
		require.Equal(t, http.StatusUnauthorized, code, mode)
		require.NoError(t, m.Close(context.Background()))
		_, err := http.Get(m.MetricsURL + "/metrics")
		require.Error(t, err, "%s: the metrics listener closes with the process", mode)
	}
	m := startMode(t, "worker", nil, nil)
	require.Empty(t, m.MetricsURL, "no METRICS_ADDR, no listener")
}

// Issue 19 item 5: with ORIGIN_SECRET, the api and the worker answer only requests carrying
// it (CloudFront adds it to everything it sends the API origin), except the load balancer's
// health check.
func TestOriginSecretGuardsTheProcess(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"api", "worker"} {
		m := startMode(t, mode, map[string]string{"ORIGIN_SECRET": originSecret}, nil)
		paths := []string{"/readyz", "/ops/", "/metrics"}
		if mode == "api" {
			paths = append(paths, "/api/catalog", "/ops/riverui/")
		}
		for _, p := range paths {
			code, _ := get(t, m.URL+p)
			require.Equal(t, http.StatusForbidden, code, "%s %s without the header", mode, p)
			code, _ = get(t, m.URL+p, api.OriginSecretHeader, "guess")
			require.Equal(t, http.StatusForbidden, code, "%s %s with a guess", mode, p)
		}
		code, _ := get(t, m.URL+"/healthz")
		require.Equal(t, http.StatusOK, code, "%s: the ALB's health check sends no header", mode)
		code, _ = get(t, m.URL+"/readyz", api.OriginSecretHeader, originSecret)
		require.Equal(t, http.StatusOK, code, mode)
		if mode == "api" {
			code, body := get(t, m.URL+"/api/catalog", api.OriginSecretHeader, originSecret)
			require.Equal(t, http.StatusOK, code, body)
		}
	}
}

// Issue 19 item 7: a client that sends a request's headers and never its body held a
// connection (and a goroutine) for ever: only ReadHeaderTimeout was set. Now the read timeout
// cuts it. The timeouts are shortened here; production has its defaults.
func TestStalledBodyIsCut(t *testing.T) {
	t.Parallel()
	const read = 500 * time.Millisecond
	m := startMode(t, "api", map[string]string{"ORIGIN_SECRET": originSecret}, func(m *Main) {
		m.ReadTimeout, m.WriteTimeout, m.IdleTimeout = read, 2*time.Second, time.Second
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(m.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = fmt.Fprintf(conn, "POST /api/stripe/webhook HTTP/1.1\r\nHost: %s\r\n%s: %s\r\nContent-Type: application/json\r\nStripe-Signature: t=1,v1=00\r\nContent-Length: 100\r\n\r\n",
		strings.TrimPrefix(m.URL, "http://"), api.OriginSecretHeader, originSecret)
	require.NoError(t, err)
	// Whatever the server answers, it must then hang up, within the read timeout and some
	// slack for a busy machine; 20 s means it never would.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	_, err = io.Copy(io.Discard, conn)
	took := time.Since(start)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server still held the connection after %s", took)
	require.Less(t, took, read+5*time.Second, "the connection was closed, but late")
	require.GreaterOrEqual(t, took, read/2, "closed by the timeout, not at once")

	// An idle keep-alive connection goes after the idle timeout too.
	conn2, err := net.Dial("tcp", strings.TrimPrefix(m.URL, "http://"))
	require.NoError(t, err)
	defer conn2.Close()
	fmt.Fprintf(conn2, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn2), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, conn2.SetReadDeadline(time.Now().Add(20*time.Second)))
	start = time.Now()
	_, err = io.Copy(io.Discard, conn2)
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "an idle connection was held for 20 s")
	require.Less(t, time.Since(start), 6*time.Second)
}

// The defaults every production process runs with (issue 19 item 7), for the slowest
// legitimate request: the ops pages and River UI answer within seconds, a webhook within one
// commit, CloudFront waits 30 s for an origin, and the ALB keeps idle connections 60 s.
func TestHTTPTimeoutDefaults(t *testing.T) {
	t.Parallel()
	m := startMode(t, "api", map[string]string{"ORIGIN_SECRET": originSecret, "METRICS_ADDR": "127.0.0.1:0"}, nil)
	require.NotNil(t, m.metricsServer, "METRICS_ADDR is served")
	for _, s := range []*http.Server{m.server, m.metricsServer} {
		require.Equal(t, 10*time.Second, s.ReadHeaderTimeout)
		require.Equal(t, 30*time.Second, s.ReadTimeout)
		require.Equal(t, 60*time.Second, s.WriteTimeout)
		require.Equal(t, 120*time.Second, s.IdleTimeout, "longer than the ALB's 60 s idle timeout, so the ALB closes first")
	}
}
