// Package gputest is the conformance suite every gpu.Provider passes: the simulator, and each
// real provider against a fake of its API. It checks the contract the broker and the jobs rely
// on — offers carry prices, a launched instance can be found again by name, termination is
// idempotent, unknown instances are gpu.ErrNotFound — so a new provider is proven by one line.
package gputest

import (
	"context"
	"crypto/rand"
	"errors"
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

		found, err := p.FindInstance(ctx, name)
		require.NoError(t, err)
		require.Equal(t, inst.ID, found.ID, "FindInstance must find the launched instance by name")

		if h.RunningWithin > 0 {
			running := waitRunning(t, p, inst.ID, h.RunningWithin)
			require.NotEmpty(t, running.SSHHost)
			require.NotEmpty(t, running.SSHUser)
			require.Positive(t, running.SSHPort)
			require.NotEmpty(t, running.JupyterURL, "a jupyter launch must report a Jupyter URL")
		}

		require.NoError(t, p.Terminate(ctx, inst.ID))
		require.NoError(t, p.Terminate(ctx, inst.ID), "Terminate must be idempotent")

		after, err := p.GetInstance(ctx, inst.ID)
		if err != nil {
			require.ErrorIs(t, err, gpu.ErrNotFound)
		} else {
			require.False(t, after.State.Live(), "state after Terminate: %s", after.State)
		}
		_, err = p.FindInstance(ctx, name)
		require.ErrorIs(t, err, gpu.ErrNotFound, "a terminated instance must not be found by name")
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		p := h.New(t)
		_, err := p.GetInstance(ctx, "gputest-no-such-instance")
		require.ErrorIs(t, err, gpu.ErrNotFound)
		_, err = p.FindInstance(ctx, "gputest-no-such-name-"+rand.Text()[:12])
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
