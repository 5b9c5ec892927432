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

	"gpubroker/api"
	"gpubroker/billing"
	"gpubroker/billing/stripesim"
	"gpubroker/config"
	"gpubroker/gpu"
	"gpubroker/gpu/sim"
	"gpubroker/jobs"
	"gpubroker/postgres"
	"gpubroker/site"
	"gpubroker/worker"
)

// Main is one running gpubroker process. Tests reuse it on 127.0.0.1:0.
type Main struct {
	Mode   string // dev, api, worker or migrate
	Config *config.Config
	Logger *slog.Logger

	// Test hooks, set before Open.
	Sim           *sim.Sim         // the simulator provider (created in dev when nil)
	JobTune       func(*jobs.Deps) // adjusts job timings
	WorkerOptions worker.Options
	NoRateLimits  bool
	// PublicURLFromListener sets PUBLIC_URL to the listener's address (tests on :0).
	PublicURLFromListener bool

	// Set by Open.
	Pool      *pgxpool.Pool
	River     *river.Client[pgx.Tx]
	StripeSim *stripesim.Server
	JobDeps   *jobs.Deps
	URL       string // where the HTTP server listens, as http://host:port

	ln      net.Listener
	server  *http.Server
	cancel  context.CancelFunc
	offers  latest
	closers []func()
	wg      sync.WaitGroup // background loops (the SQS consumer)
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

// Open connects, builds every part the mode needs and starts serving.
func (m *Main) Open(ctx context.Context) error {
	cfg, log := m.Config, m.Logger
	ctx, m.cancel = context.WithCancel(ctx)
	var err error
	if m.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return fmt.Errorf("error listening on ADDR %s: %w", cfg.Addr, err)
	}
	m.URL = "http://" + m.ln.Addr().String()
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

	// Payments: Stripe, or the stand-in mounted on this very server in dev.
	stripeKey, stripeBase := cfg.StripeSecretKey, cfg.StripeAPIBase
	if stripeKey == "" {
		if m.Mode != "dev" {
			return errors.New("STRIPE_SECRET_KEY: is required outside dev")
		}
		m.StripeSim = stripesim.New(stripesim.Config{
			Prefix: stripesim.DefaultPrefix, PublicURL: cfg.PublicURL, WebhookURL: m.URL + "/api/stripe/webhook",
			WebhookSecret: cfg.StripeWebhookSecret, Logger: log.With("component", "stripesim"),
		})
		m.closers = append(m.closers, m.StripeSim.Close)
		mux.Handle(stripesim.DefaultPrefix+"/", m.StripeSim)
		stripeKey, stripeBase = "sk_test_standin", m.URL+stripesim.DefaultPrefix
		log.Info("stand-in: Stripe is simulated at /dev/stripe (STRIPE_SECRET_KEY unset)")
	}
	payments := billing.New(billing.Config{SecretKey: stripeKey, APIBase: stripeBase, Logger: log})

	providers, err := m.providers(log)
	if err != nil {
		return err
	}
	broker := gpu.NewBroker(providers...)
	broker.Logger = log.With("component", "gpu")
	m.JobDeps = &jobs.Deps{
		Pool: m.Pool, Catalog: catalog, Payments: payments, Broker: broker,
		PublicURL: cfg.PublicURL, SalesEmail: cfg.SalesEmail, Logger: log.With("component", "jobs"),
		OnOffers: m.offers.set,
	}
	if err := m.aws(ctx, m.JobDeps); err != nil {
		return err
	}
	if m.JobTune != nil {
		m.JobTune(m.JobDeps)
	}

	if m.Mode == "api" {
		if m.River, err = worker.NewInsertClient(m.Pool, log); err != nil {
			return err
		}
	} else {
		if m.River, err = worker.NewClient(m.Pool, m.JobDeps, log.With("component", "river"), m.WorkerOptions); err != nil {
			return err
		}
		// Not the signal's context: cancelling Start's context is River's hard stop, and on
		// SIGTERM running jobs should finish (Close calls Stop).
		if err := m.River.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("error starting river: %w", err)
		}
	}

	adminPassword := cfg.AdminPassword
	if m.Mode == "dev" && adminPassword == "" {
		b := make([]byte, 9)
		_, _ = rand.Read(b)
		adminPassword = hex.EncodeToString(b)
		log.Info("dev: ops routes use a generated password", "url", cfg.PublicURL+"/ops/riverui/", "user", cfg.AdminUser, "password", adminPassword)
		fmt.Fprintf(os.Stderr, "\n  River UI: %s/ops/riverui/  user %s  password %s\n\n", cfg.PublicURL, cfg.AdminUser, adminPassword)
	}
	apiServer := &api.Server{
		Pool: m.Pool, Jobs: m.River, Payments: payments, Catalog: catalog, PublicURL: cfg.PublicURL,
		WebhookSecret: cfg.StripeWebhookSecret, ParseWebhook: billing.ParseWebhook, SecureCookies: !cfg.LocalDev(),
		AdminUser: cfg.AdminUser, AdminPassword: adminPassword, SalesEmail: cfg.SalesEmail, Logger: log.With("component", "api"),
		NoRateLimits: m.NoRateLimits, TrustedProxyHops: cfg.TrustedProxyHops,
	}
	apiHandler := apiServer.Handler()
	routes := []string{"/healthz", "/readyz", "/metrics", "/ops/funnel"}
	if m.Mode != "worker" { // the worker serves only health, metrics and the ops pages
		routes = append(routes, "/api/")
	}
	for _, p := range routes {
		mux.Handle(p, apiHandler)
	}
	if m.Mode != "api" {
		ui, err := worker.RiverUI(ctx, m.River, log.With("component", "riverui"))
		if err != nil {
			return err
		}
		mux.Handle(worker.RiverUIPrefix+"/", api.AdminAuth(cfg.AdminUser, adminPassword, ui))
		mux.Handle(worker.RiverUIPrefix, http.RedirectHandler(worker.RiverUIPrefix+"/", http.StatusMovedPermanently))
	}
	if m.Mode == "dev" {
		mux.Handle("/dev/mail", api.MailViewer(m.Pool))
		mux.HandleFunc("/offers.json", m.offers.serve)
		mux.Handle("/", siteHandler(cfg.SiteDir))
		log.Info("stand-in: email goes to the outbox only, readable at /dev/mail (SES_FROM unset)")
	}

	if cfg.PprofAddr != "" {
		if err := m.servePprof(cfg.PprofAddr, log); err != nil {
			return fmt.Errorf("error listening on PPROF_ADDR %s: %w", cfg.PprofAddr, err)
		}
	}
	m.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := m.server.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server failed", "error", err)
		}
	}()
	log.Info("gpubroker started", "mode", m.Mode, "addr", m.ln.Addr().String(), "public_url", cfg.PublicURL)
	return nil
}

// providers returns the configured GPU providers, plus the simulator in dev. A production
// worker without a real provider refuses to start: paid pods must never land on the simulator.
func (m *Main) providers(log *slog.Logger) ([]gpu.Provider, error) {
	ps := m.realProviders(log)
	switch {
	case m.Mode != "dev" && m.Sim != nil: // tests of the production processes
		ps = append(ps, m.Sim)
	case m.Mode == "dev":
		if m.Sim == nil {
			m.Sim = sim.New(sim.Options{BootDelay: time.Duration(m.Config.SimBootDelaySeconds) * time.Second})
		}
		ps = append(ps, m.Sim)
		log.Info("stand-in: GPU provider simulator enabled", "boot_delay", time.Duration(m.Config.SimBootDelaySeconds)*time.Second)
	case m.Mode == "worker" && len(ps) == 0:
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
