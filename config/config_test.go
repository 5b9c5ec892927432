package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFromEnvNamesTheBadVariable(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "mysql://x", "PUBLIC_URL": "localhost:8080", "LOG_LEVEL": "loud", "STRIPE_SECRET_KEY": "pk_test_1"}
	_, err := FromEnv(func(k string) string { return env[k] })
	require.Error(t, err)
	for _, name := range []string{"DATABASE_URL", "PUBLIC_URL", "LOG_LEVEL", "STRIPE_SECRET_KEY"} {
		require.Contains(t, err.Error(), name)
	}
}

func TestFromEnvDefaults(t *testing.T) {
	c, err := FromEnv(func(k string) string {
		if k == "DATABASE_URL" {
			return "postgres://localhost/x"
		}
		return ""
	})
	require.NoError(t, err)
	require.Equal(t, ":8080", c.Addr)
	require.Equal(t, "whsec_dev", c.StripeWebhookSecret)
	require.True(t, c.LocalDev())
}

// Job timings: defaults, and a rescue that could run a job twice at once is refused.
func TestJobTimings(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://localhost/x"}
	get := func(k string) string { return env[k] }
	c, err := FromEnv(get)
	require.NoError(t, err)
	require.Equal(t, time.Minute, c.JobTimeout)
	require.Equal(t, 5*time.Minute, c.RescueStuckJobsAfter)
	require.Equal(t, 10*time.Minute, c.ReconcileInterval)
	require.Zero(t, c.PodHealthInterval, "unset: the mode decides (1m, 10s in dev)")

	env["JOB_TIMEOUT"], env["RESCUE_STUCK_JOBS_AFTER"] = "10s", "15s"
	_, err = FromEnv(get)
	require.ErrorContains(t, err, "RESCUE_STUCK_JOBS_AFTER")
	env["RESCUE_STUCK_JOBS_AFTER"] = "25s"
	c, err = FromEnv(get)
	require.NoError(t, err)
	require.Equal(t, 25*time.Second, c.RescueStuckJobsAfter)

	env["RUNPOD_API_BASE"] = "not a url"
	_, err = FromEnv(get)
	require.ErrorContains(t, err, "RUNPOD_API_BASE")
}

// envOf is a getenv over a map, with a database every mode needs.
func envOf(vars map[string]string) func(string) string {
	return func(k string) string {
		if k == "DATABASE_URL" && vars[k] == "" {
			return "postgres://localhost/x"
		}
		return vars[k]
	}
}

// Issue 19 item 4: dev serves every email at /dev/mail and the GPU stand-in at /dev/gpu/, so
// it refuses whatever says it faces customers (a live Stripe key, a PUBLIC_URL off this
// machine) and listens on loopback unless ADDR says otherwise.
func TestDevModeStaysOnThisMachine(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars map[string]string
		bad  string // the variable named, "" when accepted
	}{
		{"defaults", nil, ""},
		{"a test key", map[string]string{"STRIPE_SECRET_KEY": "sk_test_1"}, ""},
		{"a live key", map[string]string{"STRIPE_SECRET_KEY": "sk_live_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"}, "STRIPE_SECRET_KEY"},
		{"a live restricted key", map[string]string{"STRIPE_SECRET_KEY": "rk_live_1", "STRIPE_WEBHOOK_SECRET": "whsec_1"}, "STRIPE_SECRET_KEY"},
		{"the real site", map[string]string{"PUBLIC_URL": "https://gpubroker.dev"}, "PUBLIC_URL"},
		{"a LAN address", map[string]string{"PUBLIC_URL": "http://192.168.1.5:8080"}, "PUBLIC_URL"},
		{"a name that resolves anywhere", map[string]string{"PUBLIC_URL": "http://localhost.gpubroker.dev:8080"}, "PUBLIC_URL"},
		{"all of 127/8", map[string]string{"PUBLIC_URL": "http://127.0.0.2:8080"}, ""},
		{"IPv6 loopback", map[string]string{"PUBLIC_URL": "http://[::1]:8080"}, ""},
		{"localhost", map[string]string{"PUBLIC_URL": "http://localhost:1313"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ForMode("dev", envOf(tc.vars))
			if tc.bad == "" {
				require.NoError(t, err)
				require.Equal(t, "127.0.0.1:8080", c.Addr, "dev listens on loopback by default")
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.bad+": ")
		})
	}
	// ADDR may still say otherwise (a container publishing the port), and api and worker keep
	// :8080 (the ALB reaches the task on its own address).
	c, err := ForMode("dev", envOf(map[string]string{"ADDR": ":8080"}))
	require.NoError(t, err)
	require.Equal(t, ":8080", c.Addr)
	for _, mode := range []string{"api", "worker"} {
		c, err := ForMode(mode, envOf(map[string]string{"STRIPE_SECRET_KEY": "sk_live_1", "STRIPE_WEBHOOK_SECRET": "whsec_1",
			"PUBLIC_URL": "https://gpubroker.dev", "ORIGIN_SECRET": strings.Repeat("s", 32)}))
		require.NoError(t, err, mode)
		require.Equal(t, ":8080", c.Addr, mode)
	}
}

// Issue 21 item 2: only the process that receives Stripe's webhooks (api; dev and the
// mode-less checks too) refuses a live key without the endpoint's secret. The worker never
// reads it and Terraform gives it none: refusing it there stopped every job.
func TestWebhookSecretOnlyWhereWebhooksArrive(t *testing.T) {
	live := map[string]string{"STRIPE_SECRET_KEY": "sk_live_1", "ORIGIN_SECRET": strings.Repeat("s", 32)}
	for _, mode := range []string{"", "api"} {
		_, err := ForMode(mode, envOf(live))
		require.ErrorContains(t, err, "STRIPE_WEBHOOK_SECRET: ", "mode %q", mode)
	}
	for _, mode := range []string{"worker", "migrate"} {
		_, err := ForMode(mode, envOf(live))
		require.NoError(t, err, mode)
	}
	_, err := ForMode("api", envOf(map[string]string{"STRIPE_SECRET_KEY": "sk_live_1", "STRIPE_WEBHOOK_SECRET": "whsec_1", "ORIGIN_SECRET": strings.Repeat("s", 32)}))
	require.NoError(t, err)
	_, err = ForMode("api", envOf(map[string]string{"STRIPE_SECRET_KEY": "sk_test_1", "ORIGIN_SECRET": strings.Repeat("s", 32)}))
	require.NoError(t, err, "a test key may keep the default")
}

// Issue 19 item 6: a short ADMIN_PASSWORD guards the River UI (retry, delete jobs) and every
// customer's order story on a public origin: api and worker refuse it. Unset still means the
// ops routes answer 404; dev, on loopback only, takes any.
func TestAdminPasswordLength(t *testing.T) {
	origin := strings.Repeat("s", 32)
	for _, mode := range []string{"api", "worker"} {
		_, err := ForMode(mode, envOf(map[string]string{"ADMIN_PASSWORD": "ops-secret", "ORIGIN_SECRET": origin}))
		require.ErrorContains(t, err, "ADMIN_PASSWORD: ", mode)
		require.ErrorContains(t, err, "16", mode)
		_, err = ForMode(mode, envOf(map[string]string{"ADMIN_PASSWORD": "0123456789abcdef", "ORIGIN_SECRET": origin}))
		require.NoError(t, err, mode)
		_, err = ForMode(mode, envOf(map[string]string{"ORIGIN_SECRET": origin}))
		require.NoError(t, err, mode)
	}
	_, err := ForMode("dev", envOf(map[string]string{"ADMIN_PASSWORD": "ops-secret"}))
	require.NoError(t, err)
}

// Issue 19 item 5: /metrics gets its own listener, and only where nobody outside the network
// reaches it: a loopback or private address, never a public one nor every interface.
func TestMetricsAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:9090": true, "localhost:9090": true, "[::1]:9090": true, "127.0.0.1:0": true,
		"10.0.3.7:9090": true, "172.16.0.1:9090": true, "192.168.1.5:9090": true, "[fd00::1]:9090": true,
		"169.254.1.1:9090": true, "[fe80::1]:9090": true,
		":9090": false, "0.0.0.0:9090": false, "[::]:9090": false, "8.8.8.8:9090": false, "172.32.0.1:9090": false,
		"[2001:db8::1]:9090": false, "metrics.internal:9090": false, "127.0.0.1": false, "127.0.0.1:http": false,
	} {
		c, err := ForMode("worker", envOf(map[string]string{"METRICS_ADDR": addr}))
		if ok {
			require.NoError(t, err, addr)
			require.Equal(t, addr, c.MetricsAddr)
		} else {
			require.ErrorContains(t, err, "METRICS_ADDR: ", addr)
		}
	}
	c, err := ForMode("worker", envOf(nil))
	require.NoError(t, err)
	require.Empty(t, c.MetricsAddr, "unset: no metrics listener")
}

// Issue 19 item 5: the api answers only our CloudFront distribution, which proves itself with
// a secret header; an api without the secret would answer anyone who finds the ALB (and
// believe the X-Forwarded-For they make up).
func TestOriginSecret(t *testing.T) {
	_, err := ForMode("api", envOf(nil))
	require.ErrorContains(t, err, "ORIGIN_SECRET: ")
	_, err = ForMode("api", envOf(map[string]string{"ORIGIN_SECRET": "short"}))
	require.ErrorContains(t, err, "ORIGIN_SECRET: ")
	_, err = ForMode("api", envOf(map[string]string{"ORIGIN_SECRET": strings.Repeat("s", 31) + "\n"}))
	require.ErrorContains(t, err, "ORIGIN_SECRET: ", "a header value has no control characters")
	c, err := ForMode("api", envOf(map[string]string{"ORIGIN_SECRET": strings.Repeat("s", 32)}))
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("s", 32), c.OriginSecret)
	// The worker is not behind the load balancer and dev has no CDN: neither needs it.
	for _, mode := range []string{"worker", "dev", "migrate"} {
		_, err := ForMode(mode, envOf(nil))
		require.NoError(t, err, mode)
	}
}

// A compressed rental clock is for test runs: with a live key customers pay by the real hour, so
// a shorter RENTAL_HOUR or another hold margin is refused.
func TestRentalClockOnlyWithTestKeys(t *testing.T) {
	vars := map[string]string{"RENTAL_HOUR": "20s", "HOLD_RELEASE_MARGIN": "1m", "STRIPE_SECRET_KEY": "sk_test_x"}
	c, err := FromEnv(envOf(vars))
	require.NoError(t, err)
	require.Equal(t, 20*time.Second, c.RentalHour)
	require.Equal(t, time.Minute, c.HoldReleaseMargin)

	vars["STRIPE_SECRET_KEY"] = "sk_live_x"
	_, err = FromEnv(envOf(vars))
	require.ErrorContains(t, err, "RENTAL_HOUR: must be 1h with a live Stripe key")
	require.ErrorContains(t, err, "HOLD_RELEASE_MARGIN: must be 24h0m0s with a live Stripe key")

	c, err = ForMode("worker", envOf(map[string]string{"STRIPE_SECRET_KEY": "rk_live_x", "RENTAL_HOUR": "1h"}))
	require.NoError(t, err)
	require.Equal(t, time.Hour, c.RentalHour)
	for _, bad := range []string{"2h", "5s", "soon"} {
		_, err = FromEnv(envOf(map[string]string{"RENTAL_HOUR": bad}))
		require.ErrorContains(t, err, "RENTAL_HOUR", bad)
	}
}

// OPS_COLLECT_INTERVAL is 30 s unless set, and at most a minute: GPUBrokerOpsNumbersStale pages
// on numbers 5 minutes old, which must mean collections failing, not a slow interval.
func TestOpsCollectInterval(t *testing.T) {
	c, err := FromEnv(envOf(nil))
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, c.OpsCollectInterval)
	c, err = FromEnv(envOf(map[string]string{"OPS_COLLECT_INTERVAL": "200ms"}))
	require.NoError(t, err)
	require.Equal(t, 200*time.Millisecond, c.OpsCollectInterval)
	for _, bad := range []string{"2m", "1ms", "often"} {
		_, err = FromEnv(envOf(map[string]string{"OPS_COLLECT_INTERVAL": bad}))
		require.ErrorContains(t, err, "OPS_COLLECT_INTERVAL", bad)
	}
}
