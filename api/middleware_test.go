package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/internal/testdb"
)

func TestClientIP(t *testing.T) {
	cases := []struct {
		hops int
		xff  []string
		want string
	}{
		{0, []string{"6.6.6.6"}, "10.0.0.9"},                        // no proxies: the peer, whatever the header says
		{2, []string{"1.2.3.4, 130.176.0.1"}, "1.2.3.4"},            // viewer, CloudFront; the ALB is the peer
		{2, []string{"6.6.6.6, 1.2.3.4, 130.176.0.1"}, "1.2.3.4"},   // a spoofed entry on the left is ignored
		{2, []string{"6.6.6.6", "1.2.3.4, 130.176.0.1"}, "1.2.3.4"}, // several header lines
		{2, nil, "10.0.0.9"},                                        // reached the ALB directly
		{1, []string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"},                // one proxy
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.0.0.9:5555"
		for _, h := range tc.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		s := &Server{TrustedProxyHops: tc.hops}
		require.Equal(t, tc.want, s.clientIP(r), "%+v", tc)
	}
}

// Rate limits count an IPv6 client by its /64, the block one subscriber gets: walking the
// addresses of one's own /64 must not buy more free trials.
func TestRateLimitNetwork(t *testing.T) {
	s := &Server{TrustedProxyHops: 1}
	for _, tc := range []struct{ xff, want string }{
		{"1.2.3.4", "1.2.3.4"},
		{"2001:db8:aa:bb::1", "2001:db8:aa:bb::/64"},
		{"2001:db8:aa:bb:ffff:1:2:3", "2001:db8:aa:bb::/64"},
		{"::ffff:1.2.3.4", "1.2.3.4"},
		{"not-an-ip", "not-an-ip"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Forwarded-For", tc.xff)
		require.Equal(t, tc.want, s.rateNet(r), tc.xff)
	}
}

// Metrics are labelled by route, never by the raw path: ids and made-up paths collapse.
func TestRouteLabel(t *testing.T) {
	s := &Server{}
	s.Handler()
	require.Equal(t, "/api/pods/:id/deploy", routeLabel(s.router, "POST", "/api/pods/123e4567-e89b-12d3-a456-426614174000/deploy"))
	require.Equal(t, "/api/pods/:id", routeLabel(s.router, "GET", "/api/pods/abc"))
	require.Equal(t, "/api/me/ssh-keys/:id", routeLabel(s.router, "DELETE", "/api/me/ssh-keys/k1"))
	require.Equal(t, "/api/me", routeLabel(s.router, "GET", "/api/me"))
	require.Equal(t, "unmatched", routeLabel(s.router, "GET", "/wp-admin/../etc/passwd-12345"))
	require.Equal(t, "unmatched", routeLabel(nil, "GET", "/api/me"))
}

func TestOpsAuth(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	get := func(h http.Handler, user, pass string) int {
		r := httptest.NewRequest("GET", "/ops/riverui/", nil)
		if user != "" {
			r.SetBasicAuth(user, pass)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	off := (&Server{AdminUser: "admin"}).Ops(ok)
	require.Equal(t, http.StatusNotFound, get(off, "", ""), "no password configured: the route does not exist")
	require.Equal(t, http.StatusNotFound, get(off, "admin", ""))
	on := (&Server{AdminUser: "admin", AdminPassword: "s3cret-s3cret-s3cret", Pool: testdb.New(t)}).Ops(ok)
	require.Equal(t, http.StatusUnauthorized, get(on, "", ""))
	require.Equal(t, http.StatusUnauthorized, get(on, "admin", "wrong"))
	require.Equal(t, http.StatusUnauthorized, get(on, "root", "s3cret-s3cret-s3cret"))
	require.Equal(t, http.StatusOK, get(on, "admin", "s3cret-s3cret-s3cret"))
}
