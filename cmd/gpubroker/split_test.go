package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/billing/stripesim"
	"gpubroker/config"
	"gpubroker/gpu/sim"
	"gpubroker/internal/testdb"
	"gpubroker/jobs"
	"gpubroker/workspaces"
)

// The production split: an `api` process (insert-only River client, no workers; River UI)
// and a `worker` process share one database, with Stripe at a separate address (here the
// stand-in, as it would be stripe-mock or Stripe). A paid customer goes from checkout to a
// running pod across the two.
func TestAPIAndWorkerProcesses(t *testing.T) {
	t.Parallel()
	_, dbURL := testdb.NewWithURL(t)
	var stripe atomic.Pointer[stripesim.Server]
	stripeSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stripe.Load().ServeHTTP(w, r) }))
	defer stripeSrv.Close()
	// The CDN in front, as CloudFront is: the starter projects' tarballs from the site's files,
	// everything else from the API. The simulated instances' IDEs (the worker's GPU simulator
	// reports them at PUBLIC_URL/dev/gpu/ide/…) answer here too, as a real instance's IDE answers
	// at its provider: a pod runs only once its IDE does.
	var apiURL atomic.Pointer[url.URL]
	var gpuSim atomic.Pointer[http.Handler]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, workspaces.URLPrefix) {
			workspaces.Handler().ServeHTTP(w, r)
			return
		}
		if h := gpuSim.Load(); h != nil && strings.HasPrefix(r.URL.Path, "/dev/gpu/") {
			(*h).ServeHTTP(w, r)
			return
		}
		httputil.NewSingleHostReverseProxy(apiURL.Load()).ServeHTTP(w, r)
	}))
	defer front.Close()

	start := func(mode string, extra map[string]string) *Main {
		t.Helper()
		vars := map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "ADMIN_PASSWORD": "ops-secret",
			"STRIPE_SECRET_KEY": "sk_test_split", "STRIPE_API_BASE": stripeSrv.URL + "/dev/stripe", "GPU_SIMULATOR": "true"}
		for k, v := range extra {
			vars[k] = v
		}
		cfg, err := config.FromEnv(func(k string) string { return vars[k] })
		require.NoError(t, err)
		m := &Main{Mode: mode, Config: cfg, Logger: slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
			SimOptions: &sim.Options{BootDelay: 50 * time.Millisecond}, JobTune: func(d *jobs.Deps) { d.PollInterval = 20 * time.Millisecond }}
		if mode == "migrate" {
			require.NoError(t, m.Run(context.Background()))
			return nil
		}
		m.PublicURLFromListener = extra["PUBLIC_URL"] == ""
		require.NoError(t, m.Open(context.Background()))
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		return m
	}
	// Migrations first, as the migrate task does (idempotent: the test database is migrated).
	start("migrate", nil)
	api := start("api", map[string]string{"PUBLIC_URL": front.URL})
	u, err := url.Parse(api.URL)
	require.NoError(t, err)
	apiURL.Store(u)
	worker := start("worker", map[string]string{"PUBLIC_URL": front.URL})
	simHandler := worker.Sim.Handler()
	gpuSim.Store(&simHandler)
	stripe.Store(stripesim.New(stripesim.Config{PublicURL: stripeSrv.URL, WebhookURL: api.URL + "/api/stripe/webhook"}))

	// The api process builds no GPU providers, job dependencies or AWS clients: it only inserts.
	require.Nil(t, api.JobDeps)
	require.Nil(t, api.Sim)
	require.NotNil(t, worker.Sim, "GPU_SIMULATOR=true")

	e := &env{t: t, m: api, url: front.URL, client: newBrowser()}
	// The stand-in is not mounted on the API in production mode.
	resp, err := http.Get(api.URL + "/dev/stripe/v1/checkout/sessions")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	c := newBrowser()
	_, sid := e.checkout(c, "split@example.com")
	_, err = stripe.Load().Pay(context.Background(), sid, stripesim.CardSucceeds)
	require.NoError(t, err)
	var podID string
	e.eventually("verify 200", func() bool {
		if v := e.api(c).Verify(sid); v.Code == http.StatusOK && v.Body.Verify != nil {
			podID = v.Body.Pod.ID
		}
		return podID != ""
	})
	var token string
	e.eventually("activation email", func() bool {
		return e.m.Pool.QueryRow(context.Background(), `SELECT substring(text_body from 'token=([A-Za-z0-9_-]+)') FROM emails WHERE to_email = 'split@example.com'`).Scan(&token) == nil
	})
	require.Equal(t, http.StatusOK, e.api(c).Activate(token).Code)
	require.Equal(t, http.StatusAccepted, e.api(c).Deploy(podID).Code)
	e.waitPod(c, podID, "running")

	// The River UI lives on the api, where CloudFront sends /ops/* (issue 21 item 3), not on
	// the worker, which nothing routes to; the worker serves no API routes.
	get := func(url string) int {
		req, _ := http.NewRequest("GET", url, nil)
		req.SetBasicAuth("admin", "ops-secret")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get(api.URL+"/ops/riverui/"))
	require.Equal(t, http.StatusNotFound, get(worker.URL+"/ops/riverui/"))
	require.Equal(t, http.StatusNotFound, get(worker.URL+"/api/catalog"))
	require.Equal(t, http.StatusOK, get(worker.URL+"/readyz"))
}

// A production worker with no GPU provider configured refuses to start, naming the variables:
// without GPU_SIMULATOR=true a paid pod never lands on the simulator.
func TestWorkerNeedsAProvider(t *testing.T) {
	t.Parallel()
	_, dbURL := testdb.NewWithURL(t)
	cfg, err := config.FromEnv(func(k string) string {
		return map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "STRIPE_SECRET_KEY": "sk_test_x"}[k]
	})
	require.NoError(t, err)
	m := &Main{Mode: "worker", Config: cfg, Logger: slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	err = m.Open(context.Background())
	_ = m.Close(context.Background())
	require.ErrorContains(t, err, "LAMBDA_API_KEY, RUNPOD_API_KEY")
	require.Nil(t, m.Sim)
}

// The production build (-tags nostandins, as the image is built) links no Stripe stand-in: a
// live deployment cannot end up paying through a simulator.
func TestProductionBuildLeavesOutStandIns(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-tags", "nostandins", ".").CombinedOutput()
	require.NoError(t, err, string(out))
	require.NotContains(t, string(out), "gpubroker/billing/stripesim")
	out, err = exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "gpubroker/billing/stripesim", "the dev build has it")
}
