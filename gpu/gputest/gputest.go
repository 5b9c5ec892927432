// Package gputest is the conformance suite every gpu.Provider passes: the simulator, and each
// real provider against a fake of its API. It checks the contract the broker and the jobs rely
// on — offers carry prices, a launched instance can be found again by name, a dead one reads
// failed or gone, termination is idempotent, unknown instances are gpu.ErrNotFound — so a new
// provider is proven by one line.
package gputest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
)

// Harness describes the provider under test.
type Harness struct {
	// New returns a fresh provider for one subtest; cleanups go to t.Cleanup.
	New func(t *testing.T) gpu.Provider
	// Query selects the offers to list and launch from; it must match at least one
	// available offer.
	Query gpu.OfferQuery
	// RunningWithin, when positive, makes the suite poll a launched instance until it runs
	// and check its connection details. Leave it zero for fakes whose instances never boot.
	RunningWithin time.Duration
	// Asked reads back what p was asked to run for the instance launched under name: the
	// simulator's record, or the request a fake of the provider's API received, decoded the
	// way the instance would (cloud-init user_data, container env). Nil skips the keys,
	// secret and workspace cases.
	Asked func(t *testing.T, p gpu.Provider, name string) Asked
	// Kill makes the instance die at the provider as a host failure would (the simulator's
	// Fail; a fake that reports Lambda's unhealthy or preempted, RunPod's EXITED). Nil skips
	// the dead-instance case.
	Kill func(t *testing.T, p gpu.Provider, id string)
}

// Asked is what an instance was given, as the instance sees it.
type Asked struct {
	SSHAuthorizedKeys []string // the customer's keys, as the login user's authorized_keys gets them
	IDE               string   // the IDE it runs
	IDESecret         string   // its token or password
	WorkspaceURL      string
	WorkspaceSHA256   string
	WorkspacePath     string
}

// Test keys: real ed25519 and RSA public keys in authorized_keys form.
const (
	KeyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDJ9n2dyq7VrY1Dg2H3rQ2sY3NCbLMtcrc4b0wXYZxZz alice@laptop"
	KeyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH8g5aWfX5nq0oQ7ZK1C4Ot9w3X0l1mO6nP0yHh6vQ2b bob@desk"
)

// starterTarball is a small workspace tarball and its SHA-256.
func starterTarball(t *testing.T) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	body := "# Starter project\n"
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "README.md", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
	_, err := io.WriteString(tw, body)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:])
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, h Harness) {
	t.Run("ListOffers", func(t *testing.T) {
		t.Parallel()
		p := h.New(t)
		offers, err := p.ListOffers(context.Background(), h.Query)
		require.NoError(t, err)
		require.NotEmpty(t, offers, "no offers for %+v", h.Query)
		available := 0
		for _, o := range offers {
			require.Equal(t, p.Name(), o.Provider, "offer %+v", o)
			require.NotEmpty(t, o.ID, "offer %+v", o)
			require.True(t, h.Query.Match(o), "offer %+v does not match %+v", o, h.Query)
			require.NotEmpty(t, o.GPU, "offer %+v", o)
			require.NotEmpty(t, o.Region, "offer %+v", o)
			require.Positive(t, o.GPUCount, "offer %+v", o)
			require.Positive(t, o.CentsPerHour, "offer %+v", o)
			if o.Available {
				available++
			}
		}
		require.Positive(t, available, "no available offer for %+v", h.Query)
	})

	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		p := h.New(t)
		offer := cheapestAvailable(t, p, h.Query)
		name := "gputest-" + rand.Text()[:12]

		inst, err := p.Launch(ctx, gpu.LaunchRequest{
			Offer:         offer,
			Name:          name,
			Image:         "gpubroker/datascience:pytorch2-cuda12",
			IDE:           gpu.IDEJupyter,
			SSHPublicKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpubrokertestkey gputest"},
		})
		require.NoError(t, err)
		require.NotNil(t, inst)
		require.NotEmpty(t, inst.ID)
		require.Equal(t, p.Name(), inst.Provider)
		require.Equal(t, name, inst.Name)
		require.Contains(t, []gpu.State{gpu.StatePending, gpu.StateBooting, gpu.StateRunning}, inst.State)

		got, err := p.GetInstance(ctx, inst.ID)
		require.NoError(t, err)
		require.Equal(t, inst.ID, got.ID)
		require.Equal(t, p.Name(), got.Provider)
		require.True(t, got.State.Live(), "state %s", got.State)

		found, err := gpu.FindInstance(ctx, p, name)
		require.NoError(t, err)
		require.Equal(t, inst.ID, found.ID, "FindInstance must find the launched instance by name")
		require.Contains(t, listedIDs(t, p), inst.ID, "ListInstances must list a live instance")

		if h.RunningWithin > 0 {
			running := waitRunning(t, p, inst.ID, h.RunningWithin)
			require.NotEmpty(t, running.SSHHost)
			require.NotEmpty(t, running.SSHUser)
			require.Positive(t, running.SSHPort)
			require.NotEmpty(t, running.JupyterURL, "a jupyter launch must report a Jupyter URL")
		}

		require.NoError(t, p.Terminate(ctx, inst.ID))
		require.NoError(t, p.Terminate(ctx, inst.ID), "Terminate must be idempotent")
		requireEnded(t, p, inst.ID, name)
	})

	t.Run("KeysSecretWorkspace", func(t *testing.T) {
		t.Parallel()
		if h.Asked == nil {
			t.Skip("the harness cannot read back what the provider was asked")
		}
		body, sum := starterTarball(t)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
		t.Cleanup(srv.Close)
		ws := gpu.Workspace{Name: "starter", Path: "/workspace/starter", URL: srv.URL + "/workspaces/starter.tar.gz", SHA256: sum}
		for _, ide := range []string{gpu.IDEJupyter, gpu.IDECodeServer} {
			t.Run(ide, func(t *testing.T) {
				ctx := context.Background()
				p := h.New(t)
				name := "gputest-" + rand.Text()[:12]
				secret := rand.Text()
				inst, err := p.Launch(ctx, gpu.LaunchRequest{
					Offer: cheapestAvailable(t, p, h.Query), Name: name, Image: "gpubroker/gputest:1", IDE: ide,
					SSHPublicKeys: []string{KeyA, KeyB}, IDESecret: secret, Workspace: ws,
				})
				require.NoError(t, err)
				asked := h.Asked(t, p, name)
				require.Equal(t, []string{KeyA, KeyB}, asked.SSHAuthorizedKeys, "every key reaches the instance")
				require.Equal(t, ide, asked.IDE)
				require.Equal(t, ws.URL, asked.WorkspaceURL)
				require.Equal(t, ws.SHA256, asked.WorkspaceSHA256)
				require.Equal(t, ws.Path, asked.WorkspacePath)
				var running *gpu.Instance
				if h.RunningWithin > 0 {
					running = waitRunning(t, p, inst.ID, h.RunningWithin)
				}
				// A provider that runs the IDE itself with a secret of its own reports that
				// secret (Lambda's JupyterLab and its token); otherwise the instance got ours.
				if running == nil || running.IDESecret == "" {
					require.Equal(t, secret, asked.IDESecret)
				} else {
					require.NotContains(t, running.JupyterURL+running.CodeServerURL, running.IDESecret, "IDE links never carry the secret")
				}
				if running != nil {
					require.NotEmpty(t, running.SSHHost, "with keys, SSH is offered")
					require.Positive(t, running.SSHPort)
					link := running.JupyterURL
					if ide == gpu.IDECodeServer {
						link = running.CodeServerURL
					}
					require.NotEmpty(t, link, "an IDE link for %s", ide)
					require.NotContains(t, link, secret, "IDE links never carry the secret")
				}
				require.NoError(t, p.Terminate(ctx, inst.ID))
			})
		}
	})

	t.Run("NoKeys", func(t *testing.T) {
		t.Parallel()
		if h.Asked == nil {
			t.Skip("the harness cannot read back what the provider was asked")
		}
		p := h.New(t)
		inst := launchJupyter(t, p, h.Query)
		require.Empty(t, h.Asked(t, p, inst.Name).SSHAuthorizedKeys)
		if h.RunningWithin > 0 {
			require.NotEmpty(t, waitRunning(t, p, inst.ID, h.RunningWithin).JupyterURL, "the IDE works without keys")
		}
	})

	// A dead instance is what pod_health fails a pod on and what provisioning launches again
	// after: GetInstance reads it failed (with the provider's reason) or not found. A failed
	// one may still bill, so it stays live: listed, and found by name for a retried job to end
	// it. Terminate then ends it like any other.
	t.Run("Dead", func(t *testing.T) {
		t.Parallel()
		if h.Kill == nil {
			t.Skip("the harness cannot kill an instance")
		}
		ctx := context.Background()
		p := h.New(t)
		inst := launchJupyter(t, p, h.Query)
		name := inst.Name
		if h.RunningWithin > 0 {
			waitRunning(t, p, inst.ID, h.RunningWithin)
		}
		h.Kill(t, p, inst.ID)

		dead, err := p.GetInstance(ctx, inst.ID)
		if err != nil {
			require.ErrorIs(t, err, gpu.ErrNotFound, "a dead instance is failed or not found")
			_, err = gpu.FindInstance(ctx, p, name)
			require.ErrorIs(t, err, gpu.ErrNotFound)
		} else {
			require.Equal(t, gpu.StateFailed, dead.State, "a dead instance is failed or not found")
			require.NotEmpty(t, dead.Error, "a failed instance says why")
			require.True(t, dead.State.Live(), "a failed instance may still bill")
			found, err := gpu.FindInstance(ctx, p, name)
			require.NoError(t, err, "a failed instance is found by name, so a retried job ends it")
			require.Equal(t, inst.ID, found.ID)
			require.Equal(t, gpu.StateFailed, found.State)
			require.Contains(t, listedIDs(t, p), inst.ID, "ListInstances must list a failed instance")
		}

		require.NoError(t, p.Terminate(ctx, inst.ID))
		requireEnded(t, p, inst.ID, name)
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		p := h.New(t)
		_, err := p.GetInstance(ctx, "gputest-no-such-instance")
		require.ErrorIs(t, err, gpu.ErrNotFound)
		_, err = gpu.FindInstance(ctx, p, "gputest-no-such-name-"+rand.Text()[:12])
		require.ErrorIs(t, err, gpu.ErrNotFound)
		require.NoError(t, p.Terminate(ctx, "gputest-no-such-instance"), "terminating an unknown instance is not an error")
	})

	t.Run("LaunchUnknownOffer", func(t *testing.T) {
		t.Parallel()
		p := h.New(t)
		offer := cheapestAvailable(t, p, h.Query)
		offer.ID = "gputest-no-such-offer"
		_, err := p.Launch(context.Background(), gpu.LaunchRequest{Offer: offer, Name: "gputest-" + rand.Text()[:12], IDE: gpu.IDEJupyter})
		require.Error(t, err)
		require.False(t, errors.Is(err, gpu.ErrRateLimited) || errors.Is(err, gpu.ErrUnavailable),
			"a bad offer is not transient: %v", err)
	})
}

// launchJupyter launches a Jupyter instance with a secret and no keys under a fresh name.
func launchJupyter(t *testing.T, p gpu.Provider, q gpu.OfferQuery) *gpu.Instance {
	t.Helper()
	inst, err := p.Launch(context.Background(), gpu.LaunchRequest{Offer: cheapestAvailable(t, p, q), Name: "gputest-" + rand.Text()[:12],
		Image: "gpubroker/gputest:1", IDE: gpu.IDEJupyter, IDESecret: rand.Text()})
	require.NoError(t, err)
	return inst
}

// requireEnded checks that a terminated instance reads as ended or gone, is not found by
// name and is not listed.
func requireEnded(t *testing.T, p gpu.Provider, id, name string) {
	t.Helper()
	ctx := context.Background()
	after, err := p.GetInstance(ctx, id)
	if err != nil {
		require.ErrorIs(t, err, gpu.ErrNotFound)
	} else {
		require.False(t, after.State.Live(), "state after Terminate: %s", after.State)
	}
	_, err = gpu.FindInstance(ctx, p, name)
	require.ErrorIs(t, err, gpu.ErrNotFound, "a terminated instance must not be found by name")
	require.NotContains(t, listedIDs(t, p), id, "ListInstances must leave out a terminated instance")
}

// listedIDs returns the ids ListInstances reports, each checked to be live and ours.
func listedIDs(t *testing.T, p gpu.Provider) []string {
	t.Helper()
	list, err := p.ListInstances(context.Background())
	require.NoError(t, err)
	var ids []string
	for _, in := range list {
		require.True(t, in.State.Live(), "ListInstances listed %s in state %s", in.ID, in.State)
		require.Equal(t, p.Name(), in.Provider)
		ids = append(ids, in.ID)
	}
	return ids
}

func cheapestAvailable(t *testing.T, p gpu.Provider, q gpu.OfferQuery) gpu.Offer {
	t.Helper()
	offers, err := p.ListOffers(context.Background(), q)
	require.NoError(t, err)
	var best *gpu.Offer
	for i, o := range offers {
		if o.Available && (best == nil || o.CentsPerHour < best.CentsPerHour) {
			best = &offers[i]
		}
	}
	require.NotNil(t, best, "no available offer for %+v", q)
	return *best
}

func waitRunning(t *testing.T, p gpu.Provider, id string, within time.Duration) *gpu.Instance {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		inst, err := p.GetInstance(context.Background(), id)
		require.NoError(t, err)
		if inst.State == gpu.StateRunning {
			return inst
		}
		require.True(t, inst.State.Live(), "instance %s ended as %s (%s)", id, inst.State, inst.Error)
		require.True(t, time.Now().Before(deadline), "instance %s not running within %s (state %s)", id, within, inst.State)
		time.Sleep(10 * time.Millisecond)
	}
}
