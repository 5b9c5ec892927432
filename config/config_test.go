package config

import (
	"testing"

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
