package runpodsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/gputest"
	"gpubroker/gpu/runpod"
	"gpubroker/gpu/runpod/runpodsim"
	"gpubroker/gpu/sim"
	"gpubroker/images"
)

const key = "rpa_SIMKEY"

// public is an image RunPod's registry holds (sim.PublicImages).
var public = sim.PublicImages[0]

// bootstrapURL is where the pods download the bootstrap.
var bootstrapURL = images.StartScriptURL("https://gpubroker.example")

func newServer(t *testing.T) (*runpodsim.Server, *runpod.Client) {
	// The conformance suite's own images, as if pushed, next to the public ones.
	images := append(slices.Clone(sim.PublicImages), "gpubroker/gputest:1", "gpubroker/datascience:pytorch2-cuda12")
	s := runpodsim.New(runpodsim.Options{APIKey: key, BootDelay: 20 * time.Millisecond, Images: images})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, runpod.New(runpod.Config{APIKey: key, BaseURL: srv.URL, HTTPClient: &http.Client{Timeout: 5 * time.Second}, BootstrapURL: bootstrapURL})
}

// The real RunPod client passes the conformance suite against the stand-in, so the stand-in
// speaks what the client (and so RunPod) speaks.
func TestConformance(t *testing.T) {
	t.Parallel()
	var servers sync.Map // *runpod.Client → *runpodsim.Server
	gputest.Run(t, gputest.Harness{
		New: func(t *testing.T) gpu.Provider {
			s, c := newServer(t)
			servers.Store(c, s)
			return c
		},
		Query:         gpu.OfferQuery{GPU: "a100", Region: "us-east"},
		RunningWithin: 5 * time.Second,
		Asked: func(t *testing.T, p gpu.Provider, name string) gputest.Asked {
			s, _ := servers.Load(p)
			for _, r := range s.(*runpodsim.Server).Sim.Records() {
				if r.Name == name {
					return gputest.Asked{SSHAuthorizedKeys: r.SSHAuthorizedKeys, IDE: r.IDE, IDESecret: r.IDESecret,
						WorkspaceURL: r.Workspace.URL, WorkspaceSHA256: r.Workspace.SHA256, WorkspacePath: r.Workspace.Path}
				}
			}
			t.Fatalf("no pod named %s", name)
			return gputest.Asked{}
		},
		// A host failure in the simulator: the client reads RunPod's EXITED.
		Kill: func(t *testing.T, p gpu.Provider, id string) {
			s, _ := servers.Load(p)
			require.True(t, s.(*runpodsim.Server).Sim.Fail(id, "host failure"))
		},
	})
}

// The simulator's faults arrive as RunPod's HTTP answers, which the client classifies.
func TestFaultsAsHTTP(t *testing.T) {
	t.Parallel()
	s, c := newServer(t)
	ctx := context.Background()
	offers, err := c.ListOffers(ctx, gpu.OfferQuery{GPU: "h100", Region: "us-west"})
	require.NoError(t, err)
	require.Len(t, offers, 2, "two data centers per region")
	require.Equal(t, offers[0].CentsPerHour, offers[1].CentsPerHour, "one price per GPU type")

	req := gpu.LaunchRequest{Offer: offers[0], Name: "gpubroker-faults", Image: public, IDE: gpu.IDEJupyter, IDESecret: "s3cret"}
	s.Sim.SetNoCapacity(s.OfferID("h100", "US-CA-2"), true)
	_, err = c.Launch(ctx, req)
	require.ErrorIs(t, err, gpu.ErrNoCapacity)
	s.Sim.SetNoCapacity(s.OfferID("h100", "US-CA-2"), false)

	s.Sim.FailNext("launch", &gpu.RateLimitedError{RetryAfter: 2 * time.Second}, 1)
	_, err = c.Launch(ctx, req)
	var rl *gpu.RateLimitedError
	require.True(t, errors.As(err, &rl), "%v", err)
	require.Equal(t, 2*time.Second, rl.RetryAfter)

	// The answer is lost after the pod was created: a 5xx, and the pod is found by name.
	s.Sim.FailAfterLaunch(1)
	_, err = c.Launch(ctx, req)
	require.ErrorIs(t, err, gpu.ErrUnavailable)
	found, err := gpu.FindInstance(ctx, c, "gpubroker-faults")
	require.NoError(t, err)
	named := 0
	for _, r := range s.Sim.Records() {
		if r.Name == "gpubroker-faults" {
			named++
		}
	}
	require.Equal(t, 1, named, "one pod created under the name, terminated ones included")

	// A host failure: RunPod reports the container exited.
	require.Eventually(t, func() bool {
		in, err := c.GetInstance(ctx, found.ID)
		return err == nil && in.State == gpu.StateRunning
	}, 5*time.Second, 10*time.Millisecond)
	// A status outside the spec is unknown to the client, not a death.
	require.True(t, s.Sim.Report(found.ID, gpu.StateUnknown, ""))
	in, err := c.GetInstance(ctx, found.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateUnknown, in.State)
	require.Contains(t, in.Error, "MIGRATING")
	require.True(t, s.Sim.Fail(found.ID, "host failure"))
	in, err = c.GetInstance(ctx, found.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateFailed, in.State)
	require.True(t, strings.Contains(in.Error, "exited"), in.Error)

	s.Sim.FailNext("get", gpu.ErrUnavailable, 1)
	_, err = c.GetInstance(ctx, found.ID)
	require.ErrorIs(t, err, gpu.ErrUnavailable)

	require.NoError(t, c.Terminate(ctx, found.ID))
	_, err = c.GetInstance(ctx, found.ID)
	require.ErrorIs(t, err, gpu.ErrNotFound, "RunPod forgets a terminated pod")
	list, err := c.ListInstances(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

// DELETE /v2/pods/{id} is one call at RunPod: a fault meant for GET neither hits it nor is
// used up by it.
func TestDeleteIsNotAGet(t *testing.T) {
	t.Parallel()
	s, c := newServer(t)
	ctx := context.Background()
	offers, err := c.ListOffers(ctx, gpu.OfferQuery{GPU: "a100", Region: "us-east"})
	require.NoError(t, err)
	inst, err := c.Launch(ctx, gpu.LaunchRequest{Offer: offers[0], Name: "gpubroker-delete", Image: public, IDE: gpu.IDEJupyter, IDESecret: "s3cret"})
	require.NoError(t, err)

	s.Sim.FailNext("get", gpu.ErrUnavailable, 1)
	require.NoError(t, c.Terminate(ctx, inst.ID))
	_, err = c.GetInstance(ctx, inst.ID)
	require.ErrorIs(t, err, gpu.ErrUnavailable, "the GET fault is still there for the GET")
	_, err = c.GetInstance(ctx, inst.ID)
	require.ErrorIs(t, err, gpu.ErrNotFound)
}

// createPod is as strict as RunPod's CreatePodRequest: an unknown property is refused, and an
// IDE's secret counts only in the IDE's own variable.
func TestCreateIsStrict(t *testing.T) {
	t.Parallel()
	s := runpodsim.New(runpodsim.Options{APIKey: key})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := runpod.New(runpod.Config{APIKey: key, BaseURL: srv.URL, BootstrapURL: bootstrapURL})
	offers, err := c.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a100", Region: "us-east"})
	require.NoError(t, err)
	parts := strings.SplitN(offers[0].ID, ":", 3) // cloud, data center, GPU type
	create := func(body map[string]any) int {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v2/pods", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	pod := func(name string) map[string]any {
		return map[string]any{"name": name, "image": public, "gpu": map[string]any{"id": parts[2], "count": 1}, "cloud": parts[0],
			"dataCenterIds": []string{parts[1]}, "ports": []string{"8080/http"}, "env": map[string]string{"JUPYTER_PASSWORD": "pw"}}
	}

	require.Equal(t, http.StatusCreated, create(pod("gpubroker-ok")))
	recs := s.Sim.Records()
	require.Len(t, recs, 1)
	require.Equal(t, gpu.IDECodeServer, recs[0].IDE)
	require.Empty(t, recs[0].IDESecret, "code-server reads PASSWORD, not Jupyter's variable")

	bad := pod("gpubroker-unknown-field")
	bad["volumeSize"] = 10
	require.Equal(t, http.StatusUnprocessableEntity, create(bad))
	bad = pod("gpubroker-bad-cloud")
	bad["cloud"] = "SPOT"
	require.Equal(t, http.StatusUnprocessableEntity, create(bad))
	require.Len(t, s.Sim.Records(), 1, "nothing launched for a refused body")
}

// A create whose answer is lost still made its pod with the ports asked for, as at RunPod: the
// pod found by name later serves its IDE through the proxy (readiness needs that link).
func TestLostCreateKeepsThePodsPorts(t *testing.T) {
	t.Parallel()
	s := runpodsim.New(runpodsim.Options{APIKey: "k"})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.Sim.FailAfterLaunch(1)
	c := runpod.New(runpod.Config{APIKey: "k", BaseURL: srv.URL, ProxyURL: srv.URL + "/proxy/{pod}-{port}/", BootstrapURL: bootstrapURL})
	offers, err := c.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a100"})
	require.NoError(t, err)
	require.NotEmpty(t, offers)
	_, err = c.Launch(context.Background(), gpu.LaunchRequest{Offer: offers[0], Name: "gpubroker-lost", Image: public, IDE: gpu.IDECodeServer, IDESecret: "s"})
	require.Error(t, err, "the answer was lost")
	in, err := gpu.FindInstance(context.Background(), c, "gpubroker-lost")
	require.NoError(t, err)
	for range 3 {
		in, err = c.GetInstance(context.Background(), in.ID)
		require.NoError(t, err)
	}
	require.Equal(t, gpu.StateRunning, in.State)
	require.Equal(t, srv.URL+"/proxy/"+in.ID+"-8080/", in.CodeServerURL)
}

// Like RunPod, the stand-in accepts an image its registry does not hold (a private tag never
// pushed) and the pod never gets a runtime; its registry is the fixed public list, never the
// catalog's.
func TestUnknownImageNeverBoots(t *testing.T) {
	t.Parallel()
	s := runpodsim.New(runpodsim.Options{APIKey: key})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := runpod.New(runpod.Config{APIKey: key, BaseURL: srv.URL, BootstrapURL: bootstrapURL})
	offers, err := c.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a100"})
	require.NoError(t, err)
	private, err := c.Launch(context.Background(), gpu.LaunchRequest{Offer: offers[0], Name: "gpubroker-private",
		Image: "ghcr.io/gpubroker/data-science:20261202-b47076b", IDE: gpu.IDEJupyter, IDESecret: "s"})
	require.NoError(t, err, "accepted at create, as at RunPod")
	ok, err := c.Launch(context.Background(), gpu.LaunchRequest{Offer: offers[0], Name: "gpubroker-public", Image: public, IDE: gpu.IDEJupyter, IDESecret: "s"})
	require.NoError(t, err)
	for range 3 {
		in, err := c.GetInstance(context.Background(), private.ID)
		require.NoError(t, err)
		require.NotEqual(t, gpu.StateRunning, in.State, "no runtime, ever")
		require.True(t, in.State.Live(), "it is still there, and bills")
	}
	in, err := c.GetInstance(context.Background(), ok.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateRunning, in.State)
}
