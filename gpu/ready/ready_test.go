package ready_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/ready"
	"gpubroker/gpu/sim"
)

// launch starts an instance of ide at the simulator, its stand-in IDE served by srv, and
// returns what the customer would be shown.
func launch(t *testing.T, s *sim.Sim, ide string) ready.Target {
	t.Helper()
	offers, err := s.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a100", Region: "us-east"})
	require.NoError(t, err)
	in, err := s.Launch(context.Background(), gpu.LaunchRequest{Offer: offers[0], Name: "gpubroker-p", Image: "img", IDE: ide, IDESecret: "s3cret",
		SSHPublicKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvRmIp3E3Ktv/o1Pbx2wRgb8fVpw2ZRqDt/xGa1LQ5d ada@laptop"}})
	require.NoError(t, err)
	url := in.JupyterURL
	if ide == gpu.IDECodeServer {
		url = in.CodeServerURL
	}
	return ready.Target{SSHAddr: net.JoinHostPort(in.SSHHost, strconv.Itoa(in.SSHPort)), IDE: ide, URL: url, Secret: "s3cret"}
}

func setup(t *testing.T) *sim.Sim {
	srv := httptest.NewUnstartedServer(nil)
	s := sim.New(sim.Options{IDEBaseURL: "http://" + srv.Listener.Addr().String()})
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return s
}

// A pod is usable when its sshd completes a key exchange and its IDE answers its own status
// endpoint through the link shown; anything less is not, and the error says what.
func TestCheck(t *testing.T) {
	t.Parallel()
	s := setup(t)
	c := &ready.Checker{Timeout: 2 * time.Second}
	ctx := context.Background()

	for _, ide := range []string{gpu.IDEJupyter, gpu.IDECodeServer} {
		require.NoError(t, c.Check(ctx, launch(t, s, ide)), ide)
	}
	jupyter := launch(t, s, gpu.IDEJupyter)
	jupyter.Secret = "wrong"
	require.ErrorContains(t, c.Check(ctx, jupyter), "answered 403", "Jupyter answers its status only with the token")

	s.BreakNext(sim.NoSSH, 1)
	err := c.Check(ctx, launch(t, s, gpu.IDEJupyter))
	require.ErrorContains(t, err, "ssh ")
	require.NotContains(t, err.Error(), "jupyter")
	s.BreakNext(sim.NoIDE, 1)
	err = c.Check(ctx, launch(t, s, gpu.IDECodeServer))
	require.ErrorContains(t, err, "answered 502")
	require.NotContains(t, err.Error(), "ssh ")

	// Without keys nothing is shown for SSH, so only the IDE is waited for.
	s.BreakNext(sim.NoSSH, 1)
	t2 := launch(t, s, gpu.IDEJupyter)
	t2.SSHAddr = ""
	require.NoError(t, c.Check(ctx, t2))

	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	ln.Close()
	require.Error(t, c.Check(ctx, ready.Target{SSHAddr: closed, IDE: gpu.IDEJupyter, URL: jupyter.URL, Secret: "s3cret"}))
}

// Lambda's jupyter_url carries its token (https://jupyter-….lambdaspaces.com/?token=…): the
// status endpoint is asked under the link's path, without its query, the token in the header.
// The stand-in answers as Jupyter Server does: /api/status only, only with the token.
func TestCheckJupyterLinkWithToken(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/lab/api/status":
			http.NotFound(w, r)
		case r.Header.Get("Authorization") != "token tok3n":
			http.Error(w, "forbidden", http.StatusForbidden)
		default:
			w.Write([]byte(`{"started": "2026-01-01T00:00:00Z"}`))
		}
	}))
	t.Cleanup(srv.Close)
	c := &ready.Checker{Timeout: 2 * time.Second}
	require.NoError(t, c.Check(context.Background(), ready.Target{IDE: gpu.IDEJupyter, URL: srv.URL + "/lab/?token=tok3n", Secret: "tok3n"}))
	require.NoError(t, c.Check(context.Background(), ready.Target{IDE: gpu.IDEJupyter, URL: srv.URL + "/lab", Secret: "tok3n"}))
	require.ErrorContains(t, c.Check(context.Background(), ready.Target{IDE: gpu.IDEJupyter, URL: srv.URL + "/lab/?token=tok3n", Secret: "other"}), "answered 403")
}
