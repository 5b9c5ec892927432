// Package config reads GPU Broker's configuration from the environment and validates it up
// front, naming the variable at fault, so a bad deploy fails at start-up rather than at 3 a.m.
package config

import (
	"errors"
	"fmt"
	"gpubroker/tasks"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gpubroker"
)

// Config is the whole configuration. Empty optional values mean "use the local stand-in".
type Config struct {
	Addr                string
	PublicURL           string
	DatabaseURL         string
	StripeSecretKey     string
	StripeWebhookSecret string
	StripeAPIBase       string
	AWSRegion           string
	SESFrom             string
	SESConfigurationSet string
	SQSFeedbackQueueURL string
	OffersBucket        string
	SalesEmail          string
	LambdaAPIKey        string
	LambdaSSHKeyName    string
	RunPodAPIKey        string
	RunPodAPIBase       string
	RunPodProxyURL      string
	AdminUser           string
	AdminPassword       string
	LogLevel            slog.Level
	SiteDir             string
	SimBootDelaySeconds int
	GPUSimulator        bool
	TrustedProxyHops    int
	PprofAddr           string
	// MetricsAddr is a private host:port serving /metrics without auth (unset: none).
	MetricsAddr string
	// OriginSecret is the value CloudFront sends in api.OriginSecretHeader; set, api and
	// worker answer nothing else but /healthz.
	OriginSecret string
	// PodHealthInterval is how often every running pod's instance is checked at its provider;
	// zero: 1 minute, 10 seconds in dev.
	PodHealthInterval time.Duration
	// JobTimeout bounds one run of a job (provisioning steps get twice as long);
	// RescueStuckJobsAfter is when a job whose worker died is run again.
	JobTimeout           time.Duration
	RescueStuckJobsAfter time.Duration
	// ReconcileInterval is how often the reconciler compares our records with Stripe's and
	// the providers'.
	ReconcileInterval time.Duration
	// OpsCollectInterval is how often every process serving /metrics and the ops pages
	// collects the ops numbers (package opsview); zero: opsview.DefaultInterval (30 s).
	OpsCollectInterval time.Duration
	// RentalHour and HoldReleaseMargin compress the rental clock for test runs (test-mode
	// Stripe keys only); zero: an hour and gpubroker.HoldReleaseMargin.
	RentalHour        time.Duration
	HoldReleaseMargin time.Duration
}

// Vars lists every variable with its default, for the README, .env.example and `gpubroker env`.
var Vars = []struct{ Name, Default, Help string }{
	{"ADDR", "", "listen address (unset: :8080 in api and worker, 127.0.0.1:8080 in dev)"},
	{"PUBLIC_URL", "http://localhost:8080", "the site's origin, used in emails, redirects and the Origin check"},
	{"DATABASE_URL", "", "Postgres URL (required; the Makefile starts a local cluster when unset)"},
	{"STRIPE_SECRET_KEY", "", "Stripe secret key; unset: the Stripe stand-in at /dev/stripe (dev only)"},
	{"STRIPE_WEBHOOK_SECRET", "whsec_dev", "webhook signing secret; api refuses the default with a live key (the worker and migrate receive no webhooks and never read it)"},
	{"STRIPE_API_BASE", "", "override Stripe's API URL (stripe-mock, the stand-in)"},
	{"AWS_REGION", "", "AWS region for SES, SQS and S3 (standard SDK variables apply too)"},
	{"SES_FROM", "", "sender address; set to send email through SES v2 (unset: outbox only, read at /dev/mail)"},
	{"SES_CONFIGURATION_SET", "", "SES configuration set (bounce/complaint events)"},
	{"SQS_FEEDBACK_QUEUE_URL", "", "SQS queue with SES bounces and complaints"},
	{"OFFERS_BUCKET", "", "S3 bucket receiving offers.json"},
	{"SALES_EMAIL", "sales@gpubroker.dev", "where contact-form messages go"},
	{"LAMBDA_API_KEY", "", "enables Lambda Cloud"},
	{"LAMBDA_SSH_KEY_NAME", "gpubroker", "SSH key name registered at Lambda Cloud"},
	{"RUNPOD_API_KEY", "", "enables RunPod"},
	{"RUNPOD_API_BASE", "", "override RunPod's API URL (the chaos run's RunPod stand-in)"},
	{"RUNPOD_PROXY_URL", "", "override RunPod's HTTPS proxy, where pods' IDEs answer: a URL with {pod} and {port} (the chaos run's stand-in); unset: https://{pod}-{port}.proxy.runpod.net/"},
	{"ADMIN_USER", "admin", "ops basic-auth user"},
	{"ADMIN_PASSWORD", "", "ops basic-auth password, at least 16 characters in api and worker; unset: ops routes answer 404 (dev generates one)"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"SITE_DIR", "site/public", "built Hugo site served by `dev`"},
	{"SIM_BOOT_DELAY_SECONDS", "5", "simulated GPU boot time in `dev`"},
	{"GPU_SIMULATOR", "false", "true: the worker also launches on the GPU simulator (always on in `dev`; for test and chaos runs, never with real customers)"},
	{"TRUSTED_PROXY_HOPS", "0", "proxies in front of the API that append to X-Forwarded-For (CloudFront + ALB = 2); 0 uses the peer address"},
	{"POD_HEALTH_INTERVAL", "", "how often every running pod's instance is checked at its provider (Go duration: 1m, 30s; unset: 1m, 10s in dev); two failed checks in a row fail the pod and refund the unused minutes"},
	{"JOB_TIMEOUT", short(tasks.DefaultJobTimeout), "how long one run of a job may take before River cancels it (provisioning steps get twice as long)"},
	{"RESCUE_STUCK_JOBS_AFTER", short(tasks.DefaultRescueStuckJobsAfter), "when a job whose worker died (crash, kill -9) is run again; must exceed twice JOB_TIMEOUT"},
	{"RECONCILE_INTERVAL", short(tasks.DefaultReconcileInterval), "how often the reconciler compares orders, Stripe and the providers' instances"},
	{"OPS_COLLECT_INTERVAL", "30s", "how often each process collects the numbers /metrics, /ops/funnel and the console serve (at most 1m: GPUBrokerOpsNumbersStale pages when they are 5 minutes old); a collection slower than this fails and is counted"},
	{"RENTAL_HOUR", "1h", "how long a rented hour lasts (a minute is a sixtieth): shorter only with a test-mode Stripe key, for test runs (make chaos uses 20s)"},
	{"HOLD_RELEASE_MARGIN", "24h", "how long before a card hold's deadline an undeployed hold is released: other values only with a test-mode Stripe key"},
	{"PPROF_ADDR", "", "loopback address (127.0.0.1:port) serving /debug/pprof/ for profiling (make load); unset: off"},
	{"METRICS_ADDR", "", "loopback or private address (127.0.0.1:9090, 10.0.1.5:9090) serving /metrics without auth to the scraper; unset: off (the main port's /metrics needs admin auth)"},
	{"ORIGIN_SECRET", "", "the secret CloudFront sends in X-Origin-Secret (at least 32 characters); required by api; set, api and worker answer 403 to every request without it but /healthz"},
}

// MinAdminPassword is the shortest ADMIN_PASSWORD api and worker accept: it guards the River
// UI (retry, cancel, delete jobs) and every customer's order story, on a public origin.
const MinAdminPassword = 16

// MinOriginSecret is the shortest ORIGIN_SECRET accepted: no person types it.
const MinOriginSecret = 32

// FromEnv reads the configuration through getenv (os.Getenv in production, a map in tests)
// with the checks every mode shares; ADDR defaults to :8080. The gpubroker command reads it
// with ForMode.
func FromEnv(getenv func(string) string) (*Config, error) { return ForMode("", getenv) }

// ForMode reads the configuration for one mode of the gpubroker command (dev, api, worker,
// migrate; "" for none) and adds that mode's checks:
//
//	dev     loopback only: no live Stripe key, a PUBLIC_URL on this machine, ADDR 127.0.0.1:8080
//	        by default (it serves every email at /dev/mail and the GPU stand-in at /dev/gpu/)
//	api     ORIGIN_SECRET is required; ADMIN_PASSWORD, when set, has at least 16 characters;
//	        STRIPE_WEBHOOK_SECRET is set with a live key (api receives the webhooks)
//	worker  ADMIN_PASSWORD, when set, has at least 16 characters; no webhook secret (it
//	        receives no webhooks, and Terraform gives it none)
func ForMode(mode string, getenv func(string) string) (*Config, error) {
	switch mode {
	case "", "dev", "api", "worker", "migrate":
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		if name == "ADDR" {
			if mode == "dev" {
				return "127.0.0.1:8080"
			}
			return ":8080"
		}
		for _, v := range Vars {
			if v.Name == name {
				return v.Default
			}
		}
		return ""
	}
	c := &Config{
		Addr: get("ADDR"), PublicURL: strings.TrimRight(get("PUBLIC_URL"), "/"), DatabaseURL: get("DATABASE_URL"),
		StripeSecretKey: get("STRIPE_SECRET_KEY"), StripeWebhookSecret: get("STRIPE_WEBHOOK_SECRET"), StripeAPIBase: get("STRIPE_API_BASE"),
		AWSRegion: get("AWS_REGION"), SESFrom: get("SES_FROM"), SESConfigurationSet: get("SES_CONFIGURATION_SET"),
		SQSFeedbackQueueURL: get("SQS_FEEDBACK_QUEUE_URL"), OffersBucket: get("OFFERS_BUCKET"), SalesEmail: get("SALES_EMAIL"),
		LambdaAPIKey: get("LAMBDA_API_KEY"), LambdaSSHKeyName: get("LAMBDA_SSH_KEY_NAME"), RunPodAPIKey: get("RUNPOD_API_KEY"), RunPodAPIBase: get("RUNPOD_API_BASE"), RunPodProxyURL: get("RUNPOD_PROXY_URL"),
		AdminUser: get("ADMIN_USER"), AdminPassword: get("ADMIN_PASSWORD"), SiteDir: get("SITE_DIR"),
		PprofAddr: get("PPROF_ADDR"), MetricsAddr: get("METRICS_ADDR"),
		// Not trimmed: a secret is compared byte for byte with what CloudFront sends.
		OriginSecret: getenv("ORIGIN_SECRET"),
	}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if c.DatabaseURL == "" {
		bad("DATABASE_URL", "is required")
	} else if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL", "must be a postgres:// URL")
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
		bad("PUBLIC_URL", "must be an origin like https://gpubroker.dev, got %q", c.PublicURL)
	}
	if !strings.Contains(c.Addr, ":") {
		bad("ADDR", "must be host:port or :port, got %q", c.Addr)
	}
	if c.StripeSecretKey != "" && !strings.HasPrefix(c.StripeSecretKey, "sk_") && !strings.HasPrefix(c.StripeSecretKey, "rk_") {
		bad("STRIPE_SECRET_KEY", "must start with sk_ or rk_")
	}
	// Only a process that receives Stripe's webhooks (api, dev) verifies them: the worker and
	// migrate never read the secret, so they are not refused for lacking it (Terraform gives it
	// to the api task alone).
	if receivesWebhooks(mode) && c.StripeSecretKey != "" && c.StripeWebhookSecret == "whsec_dev" && !strings.HasPrefix(c.StripeSecretKey, "sk_test_") {
		bad("STRIPE_WEBHOOK_SECRET", "must be set to the endpoint's secret with a live key (api receives the webhooks)")
	}
	for name, v := range map[string]string{"STRIPE_API_BASE": c.StripeAPIBase, "RUNPOD_API_BASE": c.RunPodAPIBase, "RUNPOD_PROXY_URL": c.RunPodProxyURL} {
		if u, err := url.Parse(v); v != "" && (err != nil || u.Host == "") {
			bad(name, "must be a URL")
		}
	}
	if c.SESFrom != "" && !strings.Contains(c.SESFrom, "@") {
		bad("SES_FROM", "must be an email address")
	}
	if c.SQSFeedbackQueueURL != "" && !strings.HasPrefix(c.SQSFeedbackQueueURL, "http") {
		bad("SQS_FEEDBACK_QUEUE_URL", "must be the queue URL")
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL"))); err != nil {
		bad("LOG_LEVEL", "must be debug, info, warn or error")
	}
	if _, err := fmt.Sscan(get("SIM_BOOT_DELAY_SECONDS"), &c.SimBootDelaySeconds); err != nil || c.SimBootDelaySeconds < 0 {
		bad("SIM_BOOT_DELAY_SECONDS", "must be a non-negative integer")
	}
	switch v := get("GPU_SIMULATOR"); v {
	case "true", "1":
		c.GPUSimulator = true
	case "false", "0":
	default:
		bad("GPU_SIMULATOR", "must be true or false, got %q", v)
	}
	duration := func(name string, least time.Duration, dst *time.Duration) {
		v := get(name)
		if v == "" {
			return
		}
		if d, err := time.ParseDuration(v); err != nil || d < least {
			bad(name, "must be a duration of at least %s, such as 1m or 30s", least)
		} else {
			*dst = d
		}
	}
	duration("POD_HEALTH_INTERVAL", 100*time.Millisecond, &c.PodHealthInterval)
	duration("JOB_TIMEOUT", time.Second, &c.JobTimeout)
	duration("RESCUE_STUCK_JOBS_AFTER", time.Second, &c.RescueStuckJobsAfter)
	duration("RECONCILE_INTERVAL", time.Second, &c.ReconcileInterval)
	duration("OPS_COLLECT_INTERVAL", 100*time.Millisecond, &c.OpsCollectInterval)
	if c.OpsCollectInterval > time.Minute {
		bad("OPS_COLLECT_INTERVAL", "must be at most 1m (GPUBrokerOpsNumbersStale pages on numbers 5 minutes old), got %s", c.OpsCollectInterval)
	}
	duration("RENTAL_HOUR", 6*time.Second, &c.RentalHour)
	duration("HOLD_RELEASE_MARGIN", time.Second, &c.HoldReleaseMargin)
	if c.RentalHour > time.Hour {
		bad("RENTAL_HOUR", "must be at most 1h (an hour is an hour in production), got %s", c.RentalHour)
	}
	if live := strings.HasPrefix(c.StripeSecretKey, "sk_live_") || strings.HasPrefix(c.StripeSecretKey, "rk_live_"); live {
		// Customers pay by the real hour; only a test run may make an hour shorter.
		if c.RentalHour != 0 && c.RentalHour != time.Hour {
			bad("RENTAL_HOUR", "must be 1h with a live Stripe key, got %s", c.RentalHour)
		}
		if c.HoldReleaseMargin != 0 && c.HoldReleaseMargin != gpubroker.HoldReleaseMargin {
			bad("HOLD_RELEASE_MARGIN", "must be %s with a live Stripe key, got %s", gpubroker.HoldReleaseMargin, c.HoldReleaseMargin)
		}
	}
	if c.JobTimeout > 0 && c.RescueStuckJobsAfter > 0 && c.RescueStuckJobsAfter <= 2*c.JobTimeout {
		// A job still running (a provisioning step may take 2 × JOB_TIMEOUT) must never be
		// rescued and run twice at once.
		bad("RESCUE_STUCK_JOBS_AFTER", "must exceed twice JOB_TIMEOUT (%s), got %s", c.JobTimeout, c.RescueStuckJobsAfter)
	}
	if _, err := fmt.Sscan(get("TRUSTED_PROXY_HOPS"), &c.TrustedProxyHops); err != nil || c.TrustedProxyHops < 0 || c.TrustedProxyHops > 5 {
		bad("TRUSTED_PROXY_HOPS", "must be an integer from 0 to 5")
	}
	if c.PprofAddr != "" {
		// Profiles expose internals (and cost CPU while taken): only ever on loopback.
		host, _, err := net.SplitHostPort(c.PprofAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			bad("PPROF_ADDR", "must be a loopback host:port like 127.0.0.1:6060, got %q", c.PprofAddr)
		}
	}
	if c.MetricsAddr != "" && !privateAddr(c.MetricsAddr) {
		// Unauthenticated metrics (order counts, payment rates, job errors by kind) only where
		// nobody outside the network reaches them. An empty host or 0.0.0.0 is every
		// interface, public ones included; a name may resolve anywhere.
		bad("METRICS_ADDR", "must be a loopback or private IP with a port (127.0.0.1:9090, 10.0.1.5:9090, [fd00::1]:9090), "+
			"not a public address, every interface (:9090, 0.0.0.0) or a host name; got %q", c.MetricsAddr)
	}
	if c.OriginSecret != "" && (len(c.OriginSecret) < MinOriginSecret || strings.IndexFunc(c.OriginSecret, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0) {
		bad("ORIGIN_SECRET", "must be at least %d printable ASCII characters without spaces (Terraform generates it)", MinOriginSecret)
	}
	switch mode {
	case "dev":
		// dev serves every sign-in link at /dev/mail and the GPU stand-in at /dev/gpu/: it must
		// never face customers.
		if strings.HasPrefix(c.StripeSecretKey, "sk_live_") || strings.HasPrefix(c.StripeSecretKey, "rk_live_") {
			bad("STRIPE_SECRET_KEY", "dev refuses a live key (it serves every email at /dev/mail): use a test key (sk_test_…) or none for the stand-in")
		}
		if u, err := url.Parse(c.PublicURL); err == nil && u.Host != "" && !loopbackHost(u.Hostname()) {
			bad("PUBLIC_URL", "dev serves only this machine: use http://localhost:<port>, a 127.x.x.x or [::1] address; got %q", c.PublicURL)
		}
	case "api", "worker":
		if c.AdminPassword != "" && len(c.AdminPassword) < MinAdminPassword {
			bad("ADMIN_PASSWORD", "must be at least %d characters in %s (it guards the River UI and every order's story); unset, the ops routes answer 404", MinAdminPassword, mode)
		}
		if mode == "api" && c.OriginSecret == "" {
			bad("ORIGIN_SECRET", "is required by api: the secret header CloudFront sends (Terraform sets it), so the load balancer answers our distribution alone")
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// receivesWebhooks reports whether mode serves /api/stripe/webhook ("" is every mode's checks).
func receivesWebhooks(mode string) bool { return mode == "" || mode == "api" || mode == "dev" }

// loopbackHost reports whether host is localhost or a loopback IP (127.0.0.0/8, ::1).
func loopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// privateAddr reports whether addr is host:port with a numeric port and a host that is
// loopback, or an IP no one reaches from the internet: the RFC 1918 and ULA (fc00::/7)
// private ranges, or link-local.
func privateAddr(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast())
}

// FromOS reads the process environment for a mode (see ForMode).
func FromOS(mode string) (*Config, error) { return ForMode(mode, os.Getenv) }

// LocalDev reports whether PUBLIC_URL is http://localhost (the only case the session cookie may
// drop Secure).
func (c *Config) LocalDev() bool {
	u, err := url.Parse(c.PublicURL)
	return err == nil && u.Scheme == "http" && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1")
}

// short writes a default duration as the README and .env.example do: 1m, not 1m0s.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
