package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Issue 19 item 5: the load balancer answers only our CloudFront distribution, which adds a
// secret header to every request it sends the API origin. Anything else (someone who found
// the ALB's name, another CloudFront distribution, which the prefix list lets through too) is
// 403, except the ALB's own health check, which cannot send headers.
func TestRequireOriginSecret(t *testing.T) {
	secret := strings.Repeat("k", 40)
	var reached *http.Request
	h := RequireOriginSecret(OriginSecretHeader, secret, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = r
		w.WriteHeader(http.StatusNoContent)
	}))
	do := func(method, path string, values ...string) int {
		reached = nil
		r := httptest.NewRequest(method, path, nil)
		for _, v := range values {
			r.Header.Add(OriginSecretHeader, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code == http.StatusForbidden {
			require.Nil(t, reached, "a refused request reaches nothing")
			var body map[string]string
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), w.Body.String())
			require.Equal(t, "forbidden", body["error"])
			require.NotContains(t, w.Body.String(), secret)
		}
		return w.Code
	}
	for _, path := range []string{"/api/catalog", "/api/stripe/webhook", "/ops/", "/ops/riverui/", "/metrics", "/readyz", "/", "/healthz/x", "/HEALTHZ"} {
		require.Equal(t, http.StatusForbidden, do("GET", path), path)
		require.Equal(t, http.StatusForbidden, do("POST", path, "wrong"), path)
		require.Equal(t, http.StatusForbidden, do("GET", path, secret[:39]), "%s: a prefix of the secret", path)
		require.Equal(t, http.StatusForbidden, do("GET", path, secret+"k"), "%s: the secret and more", path)
		require.Equal(t, http.StatusForbidden, do("GET", path, ""), path)
		require.Equal(t, http.StatusForbidden, do("GET", path, "wrong", secret), "%s: two values, one made up", path)
		require.Equal(t, http.StatusNoContent, do("GET", path, secret), path)
		require.Empty(t, reached.Header.Values(OriginSecretHeader), "the secret goes no further than the check (logs, the River UI)")
	}
	require.Equal(t, http.StatusNoContent, do("GET", "/healthz"), "the ALB's health check")
	require.Equal(t, http.StatusNoContent, do("HEAD", "/healthz"))
}
