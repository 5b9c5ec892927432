package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/sim"
)

// The check runs its steps against the simulator and ends every instance it launched; a pod
// whose IDE never answers fails it, and is ended all the same.
func TestCheckAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(nil)
	s := sim.New(sim.Options{IDEBaseURL: "http://" + srv.Listener.Addr().String()})
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	line, err := check(context.Background(), s, "img", gpu.IDECodeServer, time.Minute)
	require.NoError(t, err)
	require.Contains(t, line, "digest: not resolved (simulator)")
	require.Contains(t, line, "usable")
	require.Contains(t, line, "ssh login")
	require.Contains(t, line, "terminated (true)")

	s.BreakNext(sim.NoIDE, 1)
	line, err = check(context.Background(), s, "img", gpu.IDEJupyter, 3*time.Second)
	require.ErrorContains(t, err, "not usable")
	require.Contains(t, line, "terminated (true)")
	for _, in := range s.Instances() {
		require.Equal(t, gpu.StateTerminated, in.State)
	}
}

// The digest of a tag comes from the registry's manifest HEAD (Docker-Content-Digest), after
// the bearer-token challenge Docker Hub answers with; a pinned reference is its own digest.
func TestResolveDigest(t *testing.T) {
	t.Parallel()
	const digest = "sha256:" + "4f3c2b1a4f3c2b1a4f3c2b1a4f3c2b1a4f3c2b1a4f3c2b1a4f3c2b1a4f3c2b1a"
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			if r.URL.Query().Get("scope") != "repository:runpod/pytorch:pull" || r.URL.Query().Get("service") != "test-registry" {
				http.Error(w, "bad scope "+r.URL.RawQuery, http.StatusBadRequest)
				return
			}
			w.Write([]byte(`{"token":"t0ken"}`))
		case r.Header.Get("Authorization") != "Bearer t0ken":
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test-registry",scope="repository:runpod/pytorch:pull"`)
			w.WriteHeader(http.StatusUnauthorized)
		case r.Method != http.MethodHead:
			http.Error(w, "HEAD only", http.StatusMethodNotAllowed)
		case !strings.Contains(r.Header.Get("Accept"), "application/vnd.oci.image.index.v1+json"):
			http.Error(w, "no index accepted", http.StatusNotAcceptable)
		case r.URL.Path == "/v2/runpod/pytorch/manifests/2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04":
			w.Header().Set("Docker-Content-Digest", digest)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")

	got, err := resolveDigest(context.Background(), srv.Client(), host+"/runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04")
	require.NoError(t, err)
	require.Equal(t, digest, got)
	_, err = resolveDigest(context.Background(), srv.Client(), host+"/runpod/pytorch:no-such-tag")
	require.ErrorContains(t, err, "404")
	got, err = resolveDigest(context.Background(), srv.Client(), "runpod/pytorch:x@"+digest)
	require.NoError(t, err)
	require.Equal(t, digest, got, "pinned: no registry asked")

	for ref, want := range map[string][3]string{
		"runpod/pytorch:2.4.0":             {"registry-1.docker.io", "runpod/pytorch", "2.4.0"},
		"ubuntu:22.04":                     {"registry-1.docker.io", "library/ubuntu", "22.04"},
		"ghcr.io/coder/code-server:4.96.4": {"ghcr.io", "coder/code-server", "4.96.4"},
		"localhost:5000/a/b:1":             {"localhost:5000", "a/b", "1"},
	} {
		host, repo, tag, err := parseRef(ref)
		require.NoError(t, err, ref)
		require.Equal(t, want, [3]string{host, repo, tag}, ref)
	}
	_, _, _, err = parseRef("runpod/pytorch")
	require.Error(t, err, "no tag: latest is never assumed")
}

// What the check prints as the image's digest at each provider.
func TestDigestLine(t *testing.T) {
	t.Parallel()
	require.Equal(t, "digest: not resolved (simulator)", digestLine(context.Background(), sim.New(sim.Options{}), "runpod/pytorch:2.4.0"))
	require.Equal(t, "digest: none (a Lambda VM runs Lambda Stack, no image)", digestLine(context.Background(), namedProvider{sim.New(sim.Options{}), "lambda"}, "runpod/pytorch:2.4.0"))
}

type namedProvider struct {
	gpu.Provider
	name string
}

func (p namedProvider) Name() string { return p.name }
