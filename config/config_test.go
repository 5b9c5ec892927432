package config

import (
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
