package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/api"
	"gpubroker/billing"
	"gpubroker/config"
	"gpubroker/gpu"
	"gpubroker/gpu/sim"
	"gpubroker/images"
	"gpubroker/jobs"
	"gpubroker/opsview"
	"gpubroker/postgres"
	"gpubroker/site"
	"gpubroker/worker"
	"gpubroker/workspaces"
)

// Main is one running gpubroker process. Tests reuse it on 127.0.0.1:0.
type Main struct {
	Mode   string // dev, api, worker or migrate
	Config *config.Config
	Logger *slog.Logger

	// Tuning, set before Open (tests shorten timings).
	SimOptions    *sim.Options     // the simulator's options; nil: SIM_BOOT_DELAY_SECONDS and the seed offers
	JobTune       func(*jobs.Deps) // adjusts job timings
	WorkerOptions worker.Options
	NoRateLimits  bool
	// PublicURLFromListener sets PUBLIC_URL to the listener's address (tests on :0).
	PublicURLFromListener bool
	// The HTTP servers' timeouts (the API's and the metrics listener's); zero: the defaults,
	// DefaultReadTimeout, DefaultWriteTimeout and DefaultIdleTimeout.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration

	// Set by Open.
	Pool       *pgxpool.Pool
	River      *river.Client[pgx.Tx]
	StripeSim  *stripeStandIn     // the Stripe stand-in (dev without STRIPE_SECRET_KEY)
	Sim        *sim.Sim           // the GPU simulator (dev, or GPU_SIMULATOR=true)
	JobDeps    *jobs.Deps         // what the workers run with (worker and dev)
	URL        string             // where the HTTP server listens, as http://host:port
	MetricsURL string             // where METRICS_ADDR's listener serves /metrics ("" without it)
	OpsView    *opsview.Collector // the ops numbers /metrics, /ops/funnel and the console serve

	ln            net.Listener
	server        *http.Server
	metricsLn     net.Listener
	metricsServer *http.Server
	cancel        context.CancelFunc
	offers        latest
	closers       []func()
	wg            sync.WaitGroup // background loops (the SQS consumer)
}

// The HTTP servers' timeouts. A client that sends headers and then nothing, or a body slowly,
// is cut after DefaultReadTimeout (headers within 10 s of that); a response may take
// DefaultWriteTimeout. The slowest legitimate requests (the ops console's and River UI's
// queries, bounded at a few seconds; a webhook, one commit) take seconds, and CloudFront gives
// up on an origin after 30 s anyway. An idle keep-alive connection is kept longer than the
// ALB's 60 s idle timeout, so the ALB, not the task, closes it (no 502 on a closing race).
const (
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	defaultReadHeaderTimeout = 10 * time.Second
)

// newServer is an http.Server for h with Main's timeouts.
func (m *Main) newServer(h http.Handler) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	read := or(m.ReadTimeout, DefaultReadTimeout)
	return &http.Server{
		Handler: h, ReadHeaderTimeout: min(defaultReadHeaderTimeout, read), ReadTimeout: read,
		WriteTimeout: or(m.WriteTimeout, DefaultWriteTimeout), IdleTimeout: or(m.IdleTimeout, DefaultIdleTimeout),
		ErrorLog: slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
}

// Run opens the process, serves until ctx is done, then shuts down gracefully.
func (m *Main) Run(ctx context.Context) error {
	if m.Mode == "migrate" {
		pool, err := postgres.Open(ctx, m.Config.DatabaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		return postgres.Migrate(ctx, pool, m.Logger)
	}
	if err := m.Open(ctx); err != nil {
		_ = m.Close(context.Background())
		return err
	}
	<-ctx.Done()
	m.Logger.Info("shutting down", "mode", m.Mode)
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return m.Close(shutdown)
}

// Open connects and builds what the mode needs, and nothing more, then starts serving:
//
//	api     Stripe, an insert-only River client, the API, the ops routes and River UI (CloudFront
//	        sends /api/* and /ops/* to the api's load balancer)
//	worker  Stripe, GPU providers, SES/SQS/S3, the River workers, health, metrics and the ops
//	        console (nothing routes to it; River UI is not mounted there)
//	dev     both, with the stand-ins for what is not configured, the site and /dev/mail
//
// With METRICS_ADDR, /metrics is also served there without auth (on ADDR it needs admin auth);
// with ORIGIN_SECRET, api and worker answer only requests carrying it (and /healthz).
func (m *Main) Open(ctx context.Context) error {
	cfg, log := m.Config, m.Logger
	if m.Mode != "api" && m.Mode != "worker" && m.Mode != "dev" {
		return fmt.Errorf("unknown mode %q", m.Mode)
	}
	if m.Mode == "dev" && !devModeBuilt {
		return errNoDevMode
	}
	ctx, m.cancel = context.WithCancel(ctx)
	var err error
	if m.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return fmt.Errorf("error listening on ADDR %s: %w", cfg.Addr, err)
	}
	m.URL = "http://" + m.ln.Addr().String()
	if cfg.MetricsAddr != "" {
		if m.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("error listening on METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
		}
		m.MetricsURL = "http://" + m.metricsLn.Addr().String()
	}
	if m.PublicURLFromListener {
		cfg.PublicURL = m.URL
	}
	if m.Pool, err = postgres.Open(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	if m.Mode == "dev" {
		if err := postgres.Migrate(ctx, m.Pool, log); err != nil {
			return err
		}
	}
	catalog, err := site.Catalog()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	payments, err := m.payments(mux)
	if err != nil {
		return err
	}
	apiServer := &api.Server{
		Pool: m.Pool, Payments: payments, Catalog: catalog, PublicURL: cfg.PublicURL,
		WebhookSecret: cfg.StripeWebhookSecret, ParseWebhook: billing.ParseWebhook, SecureCookies: !cfg.LocalDev(),
		AdminUser: cfg.AdminUser, AdminPassword: m.adminPassword(), SalesEmail: cfg.SalesEmail, Logger: log.With("component", "api"),
		Clock:        gpubroker.RentalClock{Hour: cfg.RentalHour, ReleaseMargin: cfg.HoldReleaseMargin},
		NoRateLimits: m.NoRateLimits, TrustedProxyHops: cfg.TrustedProxyHops,
		StripeTestMode: !strings.HasPrefix(cfg.StripeSecretKey, "sk_live_") && !strings.HasPrefix(cfg.StripeSecretKey, "rk_live_"),
	}

	if m.Mode == "api" {
		if m.River, err = worker.NewInsertClient(m.Pool, log); err != nil {
			return err
		}
	} else if err := m.startWorker(ctx, catalog, payments); err != nil {
		return err
	}

	// Every mode serves /metrics and the ops pages: each collects the ops numbers they serve,
	// once before serving, then every OPS_COLLECT_INTERVAL.
	m.OpsView = &opsview.Collector{DB: m.Pool, Interval: cfg.OpsCollectInterval, Logger: log.With("component", "opsview")}
	_ = m.OpsView.Collect(ctx)
	m.wg.Go(func() { m.OpsView.Run(ctx) })
	apiServer.OpsView = m.OpsView

	apiServer.Jobs = m.River
	if m.Mode != "worker" {
		// One LISTEN connection of its own (not the pool's) wakes every pod event stream.
		podChanges := postgres.NewPodListener(m.Pool.Config().ConnConfig, log.With("component", "podlistener"))
		m.wg.Go(func() { podChanges.Run(ctx) })
		apiServer.PodChanges = podChanges
	}
	apiHandler := apiServer.Handler()
	routes := []string{"/healthz", "/readyz", "/metrics", "/ops/"} // the River UI's /ops/riverui/ is mounted apart
	if m.Mode != "worker" {                                        // the worker serves only health, metrics and the ops pages
		routes = append(routes, "/api/")
		// River UI where ops reach it: CloudFront sends /ops/* to the api. It lists and acts on
		// jobs through the database, which the api's insert-only client does as well as the
		// worker's (a cancel reaches a running job through River's notifications).
		if err := m.mountRiverUI(ctx, mux, apiServer); err != nil {
			return err
		}
	}
	for _, p := range routes {
		mux.Handle(p, apiHandler)
	}
	if m.Mode != "worker" {
		// The starter projects the pods download at first boot, from the binary that launches
		// them (CloudFront sends /workspaces/* here): no release order can break them.
		mux.Handle(workspaces.URLPrefix, workspaces.Handler())
		// The bootstrap RunPod pods download at boot and check against its SHA-256 (issue 20.1).
		mux.Handle(images.URLPrefix, images.Handler())
	}
	if m.Mode == "dev" {
		mux.Handle("/dev/mail", api.MailViewer(m.Pool))
		mux.Handle("/dev/gpu/", m.Sim.Handler())
		mux.HandleFunc("/offers.json", m.offers.serve)
		mux.Handle("/", siteHandler(cfg.SiteDir))
		log.Info("stand-in: email goes to the outbox only, readable at /dev/mail (SES_FROM unset)")
	}

	if cfg.PprofAddr != "" {
		if err := m.servePprof(cfg.PprofAddr, log); err != nil {
			return fmt.Errorf("error listening on PPROF_ADDR %s: %w", cfg.PprofAddr, err)
		}
	}
	var handler http.Handler = mux
	if m.Mode != "dev" && cfg.OriginSecret != "" {
		// Only our CloudFront distribution (and the ALB's health check) gets an answer.
		handler = api.RequireOriginSecret(api.OriginSecretHeader, cfg.OriginSecret, mux)
	}
	m.server = m.newServer(handler)
	m.server.RegisterOnShutdown(apiServer.CloseStreams) // Shutdown waits for requests; a stream would not end
	go func() {
		if err := m.server.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server failed", "error", err)
		}
	}()
	if m.metricsLn != nil {
		m.metricsServer = m.newServer(apiServer.MetricsHandler())
		go func() {
			if err := m.metricsServer.Serve(m.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server failed", "error", err)
			}
		}()
		log.Info("metrics served without auth on the private listener", "metrics_addr", m.metricsLn.Addr().String())
	}
	log.Info("gpubroker started", "mode", m.Mode, "addr", m.ln.Addr().String(), "public_url", cfg.PublicURL,
		"origin_secret", m.Mode != "dev" && cfg.OriginSecret != "")
	return nil
}

// payments returns the Stripe client: the real API (or STRIPE_API_BASE), or in dev without a
// key the stand-in, mounted on this very server.
func (m *Main) payments(mux *http.ServeMux) (*billing.Client, error) {
	cfg, log := m.Config, m.Logger
	key, base := cfg.StripeSecretKey, cfg.StripeAPIBase
	if key == "" {
		if m.Mode != "dev" {
			return nil, errors.New("STRIPE_SECRET_KEY: is required outside dev")
		}
		var err error
		m.StripeSim, err = newStripeStandIn(cfg.PublicURL, m.URL+"/api/stripe/webhook", cfg.StripeWebhookSecret, log.With("component", "stripesim"))
		if err != nil {
			return nil, err
		}
		m.closers = append(m.closers, m.StripeSim.Close)
		mux.Handle(stripeStandInPrefix+"/", m.StripeSim)
		key, base = "sk_test_standin", m.URL+stripeStandInPrefix
		log.Info("stand-in: Stripe is simulated at /dev/stripe (STRIPE_SECRET_KEY unset)")
	}
	return billing.New(billing.Config{SecretKey: key, APIBase: base, Logger: log}), nil
}

// adminPassword is ADMIN_PASSWORD, or in dev a generated one, printed at start-up.
func (m *Main) adminPassword() string {
	cfg := m.Config
	if m.Mode != "dev" || cfg.AdminPassword != "" {
		return cfg.AdminPassword
	}
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	pw := hex.EncodeToString(b)
	m.Logger.Info("dev: ops routes use a generated password", "url", cfg.PublicURL+"/ops/riverui/", "user", cfg.AdminUser, "password", pw)
	fmt.Fprintf(os.Stderr, "\n  River UI: %s/ops/riverui/  user %s  password %s\n\n", cfg.PublicURL, cfg.AdminUser, pw)
	return pw
}

// mountRiverUI serves the River UI at worker.RiverUIPrefix behind the API's ops guard: admin
// auth with throttling, the site's Origin for anything but a read, no framing. Every action
// (retry, cancel, delete…) is audited before it runs.
func (m *Main) mountRiverUI(ctx context.Context, mux *http.ServeMux, ops *api.Server) error {
	ui, err := worker.RiverUI(ctx, m.River, m.Logger.With("component", "riverui"))
	if err != nil {
		return err
	}
	mux.Handle(worker.RiverUIPrefix+"/", ops.Ops(api.AuditAdmin(m.Pool, m.Config.AdminUser, ui)))
	mux.Handle(worker.RiverUIPrefix, http.RedirectHandler(worker.RiverUIPrefix+"/", http.StatusMovedPermanently))
	return nil
}

// startWorker builds the job dependencies (GPU providers, SES, SQS, S3) and starts the River
// workers.
func (m *Main) startWorker(ctx context.Context, catalog *gpubroker.Catalog, payments gpubroker.Payments) error {
	cfg, log := m.Config, m.Logger
	providers, err := m.providers(log, catalog)
	if err != nil {
		return err
	}
	broker := gpu.NewBroker(providers...)
	broker.Logger = log.With("component", "gpu")
	m.JobDeps = &jobs.Deps{
		Pool: m.Pool, Catalog: catalog, Payments: payments, Broker: broker,
		PublicURL: cfg.PublicURL, SalesEmail: cfg.SalesEmail, Logger: log.With("component", "jobs"),
		OnOffers: m.offers.set, StepTimeout: 2 * cfg.JobTimeout, ReconcileInterval: cfg.ReconcileInterval,
		Clock: gpubroker.RentalClock{Hour: cfg.RentalHour, ReleaseMargin: cfg.HoldReleaseMargin},
	}
	for _, p := range providers {
		if f, ok := p.(jobs.Firewall); ok { // Lambda's: lambda_firewall keeps it open
			m.JobDeps.Firewall = f
		}
	}
	if err := m.aws(ctx, m.JobDeps); err != nil {
		return err
	}
	if m.JobTune != nil {
		m.JobTune(m.JobDeps)
	}
	wopts := m.WorkerOptions
	if wopts.PodHealthInterval == 0 {
		wopts.PodHealthInterval = cfg.PodHealthInterval
	}
	if wopts.PodHealthInterval == 0 && m.Mode == "dev" {
		wopts.PodHealthInterval = 10 * time.Second // a simulated death shows within seconds
	}
	if wopts.ReconcileInterval == 0 {
		wopts.ReconcileInterval = m.JobDeps.ReconcileInterval
	}
	if wopts.JobTimeout == 0 {
		wopts.JobTimeout, wopts.RescueStuckJobsAfter = cfg.JobTimeout, cfg.RescueStuckJobsAfter
	}
	if m.River, err = worker.NewClient(m.Pool, m.JobDeps, log.With("component", "river"), wopts); err != nil {
		return err
	}
	// Not the signal's context: cancelling Start's context is River's hard stop, and on
	// SIGTERM running jobs should finish (Close calls Stop).
	if err := m.River.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("error starting river: %w", err)
	}
	return nil
}

// providers returns the configured GPU providers, and the simulator in dev or with
// GPU_SIMULATOR=true. A production worker without a provider refuses to start.
func (m *Main) providers(log *slog.Logger, catalog *gpubroker.Catalog) ([]gpu.Provider, error) {
	ps := m.realProviders(log)
	if m.Mode == "dev" || m.Config.GPUSimulator {
		opts := sim.Options{BootDelay: time.Duration(m.Config.SimBootDelaySeconds) * time.Second}
		if m.SimOptions != nil {
			opts = *m.SimOptions
		}
		// As strict as a registry: only the public images exist (a fixed list, not the
		// catalog's). Its stand-in IDE pages are served by this process (dev) at
		// PUBLIC_URL/dev/gpu/ide/….
		opts.Images = append(opts.Images, sim.PublicImages...)
		if opts.IDEBaseURL == "" {
			opts.IDEBaseURL = m.Config.PublicURL
		}
		m.Sim = sim.New(opts)
		ps = append(ps, m.Sim)
		if m.Mode == "dev" {
			log.Info("stand-in: GPU provider simulator enabled", "boot_delay", opts.BootDelay)
		} else {
			log.Warn("GPU_SIMULATOR=true: pods may launch on the simulator; never run this with real customers")
		}
	}
	if len(ps) == 0 {
		return nil, errors.New("LAMBDA_API_KEY, RUNPOD_API_KEY: the worker needs at least one GPU provider")
	}
	return ps, nil
}

// Close stops River first, letting running jobs finish (in dev they may still call the Stripe
// stand-in on this server), then drains HTTP, stops the background loops and closes the pool.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.River != nil && m.Mode != "api" {
		errs = append(errs, m.River.Stop(ctx))
	}
	if m.server != nil {
		errs = append(errs, m.server.Shutdown(ctx))
	} else if m.ln != nil {
		_ = m.ln.Close()
	}
	if m.metricsServer != nil {
		errs = append(errs, m.metricsServer.Shutdown(ctx))
	} else if m.metricsLn != nil {
		_ = m.metricsLn.Close()
	}
	for _, c := range m.closers {
		c()
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.Pool != nil {
		m.Pool.Close()
	}
	return errors.Join(errs...)
}

// latest holds the newest offers.json for the dev server.
type latest struct {
	mu   sync.Mutex
	body []byte
}

func (l *latest) set(b []byte) {
	l.mu.Lock()
	l.body = b
	l.mu.Unlock()
}

func (l *latest) serve(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	b := l.body
	l.mu.Unlock()
	if b == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=60")
	_, _ = w.Write(b)
}

// siteHandler serves the built Hugo site like the CDN does: directory URLs get index.html and
// unknown paths the 404 page.
func siteHandler(dir string) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := filepath.Join(dir, filepath.FromSlash(filepath.Clean("/"+r.URL.Path)))
		if strings.HasSuffix(r.URL.Path, "/") {
			p = filepath.Join(p, "index.html")
		}
		if _, err := os.Stat(p); err != nil {
			if _, err := os.Stat(p + "/index.html"); err == nil {
				http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			if b, err := os.ReadFile(filepath.Join(dir, "404.html")); err == nil {
				_, _ = w.Write(b)
			} else {
				_, _ = w.Write([]byte("<h1>Not found</h1><p>Build the site with <code>make site</code>.</p>"))
			}
			return
		}
		if strings.HasSuffix(p, ".html") {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}
