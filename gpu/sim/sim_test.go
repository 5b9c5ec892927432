package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/gputest"
	"gpubroker/gpu/sim"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	gputest.Run(t, gputest.Harness{
		New:           func(t *testing.T) gpu.Provider { return sim.New(sim.Options{}) },
		Query:         gpu.OfferQuery{GPU: "h100", Region: "us-east"},
		RunningWithin: time.Second,
		Asked: func(t *testing.T, p gpu.Provider, name string) gputest.Asked {
			for _, r := range p.(*sim.Sim).Records() {
				if r.Name == name {
					require.NotEqual(t, gpu.StateFailed, r.Status, r.Error)
					return gputest.Asked{SSHAuthorizedKeys: r.SSHAuthorizedKeys, IDE: r.IDE, IDESecret: r.IDESecret,
						WorkspaceURL: r.Workspace.URL, WorkspaceSHA256: r.Workspace.SHA256, WorkspacePath: r.Workspace.Path}
				}
			}
			t.Fatalf("no instance named %s", name)
			return gputest.Asked{}
		},
		Kill: func(t *testing.T, p gpu.Provider, id string) {
			require.True(t, p.(*sim.Sim).Fail(id, "the host failed"))
		},
	})
}

// fakeClock is a settable clock for boot delays.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testBundle struct {
	sim   *sim.Sim
	clock *fakeClock
	offer gpu.Offer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	s := sim.New(sim.Options{BootDelay: 90 * time.Second, Now: clock.Now})
	offers, err := s.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a10", Region: "us-east"})
	require.NoError(t, err)
	require.Len(t, offers, 2)
	return &testBundle{sim: s, clock: clock, offer: offers[0]}
}

func launch(t *testing.T, b *testBundle, name, ide string) *gpu.Instance {
	t.Helper()
	inst, err := b.sim.Launch(context.Background(), gpu.LaunchRequest{Offer: b.offer, Name: name, IDE: ide, Image: "img"})
	require.NoError(t, err)
	return inst
}

// Every GPU × region we sell has at least two seed offers, each at or below our price for it,
// so development never shows a loss and failover always has a second offer.
func TestSeedOffersMatchCatalog(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../site/data/gpus.json")
	require.NoError(t, err)
	var catalog []struct {
		GPU     string `json:"gpu"`
		Regions []struct {
			Region      string `json:"region"`
			HourlyCents int64  `json:"hourly_cents"`
		} `json:"regions"`
	}
	require.NoError(t, json.Unmarshal(raw, &catalog))

	price := map[string]int64{}
	for _, g := range catalog {
		for _, r := range g.Regions {
			price[g.GPU+"/"+r.Region] = r.HourlyCents
		}
	}
	count := map[string]int{}
	ids := map[string]bool{}
	for _, o := range sim.SeedOffers("sim") {
		pair := o.GPU + "/" + o.Region
		catalogPrice, sold := price[pair]
		require.True(t, sold, "seed offer %s is for %s, which the catalog does not sell", o.ID, pair)
		require.LessOrEqual(t, o.CentsPerHour, catalogPrice, "seed offer %s costs more than we charge", o.ID)
		require.False(t, ids[o.ID], "duplicate offer id %s", o.ID)
		ids[o.ID] = true
		count[pair]++
	}
	for pair := range price {
		require.GreaterOrEqual(t, count[pair], 2, "catalog pair %s needs two seed offers", pair)
	}
}

func TestBootDelay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	inst := launch(t, b, "pod-1", gpu.IDEJupyter)
	require.Equal(t, gpu.StateBooting, inst.State)
	require.Empty(t, inst.SSHHost, "no connection details while booting")

	b.clock.Advance(89 * time.Second)
	got, err := b.sim.GetInstance(ctx, inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateBooting, got.State)

	b.clock.Advance(time.Second)
	got, err = b.sim.GetInstance(ctx, inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateRunning, got.State)
	require.Equal(t, "127.0.0.1", got.SSHHost)
	require.Equal(t, "ubuntu", got.SSHUser)
	require.Positive(t, got.SSHPort)
	require.Equal(t, "https://"+inst.ID+"-8888.sim.gpubroker.dev/", got.JupyterURL, "a link without the secret")
	require.Empty(t, got.CodeServerURL)
	require.Equal(t, b.offer.CentsPerHour, got.CentsPerHour)
	require.Equal(t, "a10", got.GPU)
	require.Equal(t, "us-east", got.Region)
}

func TestConnectionDetails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := launch(t, b, "pod-a", gpu.IDECodeServer)
	c := launch(t, b, "pod-c", gpu.IDEJupyter)
	b.clock.Advance(time.Hour)

	ga, err := b.sim.GetInstance(ctx, a.ID)
	require.NoError(t, err)
	gc, err := b.sim.GetInstance(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, "https://"+a.ID+"-8080.sim.gpubroker.dev/", ga.CodeServerURL)
	require.Empty(t, ga.JupyterURL)
	require.NotEqual(t, ga.SSHPort, gc.SSHPort, "each instance gets its own SSH port")
	require.NotEqual(t, a.ID, c.ID)
}

func TestTerminateIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	inst := launch(t, b, "pod-1", gpu.IDEJupyter)
	require.NoError(t, b.sim.Terminate(ctx, inst.ID))
	require.NoError(t, b.sim.Terminate(ctx, inst.ID))
	require.NoError(t, b.sim.Terminate(ctx, "never-launched"))
	require.Equal(t, 1, b.sim.Terminations())

	got, err := b.sim.GetInstance(ctx, inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateTerminated, got.State)
	require.Empty(t, got.SSHHost)
}

func TestNoCapacity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	req := gpu.LaunchRequest{Offer: b.offer, Name: "pod-1", IDE: gpu.IDEJupyter}

	b.sim.SetNoCapacity(b.offer.ID, true)
	_, err := b.sim.Launch(ctx, req)
	require.ErrorIs(t, err, gpu.ErrNoCapacity)
	offers, err := b.sim.ListOffers(ctx, gpu.OfferQuery{GPU: "a10", Region: "us-east"})
	require.NoError(t, err)
	require.True(t, offers[0].Available, "capacity reports lag behind real capacity")

	b.sim.SetNoCapacity(b.offer.ID, false)
	b.sim.SetNoCapacityAll(true)
	_, err = b.sim.Launch(ctx, req)
	require.ErrorIs(t, err, gpu.ErrNoCapacity)

	b.sim.SetNoCapacityAll(false)
	_, err = b.sim.Launch(ctx, req)
	require.NoError(t, err)
	require.Equal(t, 1, b.sim.Launches())

	req.Offer.ID = "no-such-offer"
	_, err = b.sim.Launch(ctx, req)
	require.ErrorIs(t, err, gpu.ErrOfferGone)
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.sim.FailNext(sim.OpLaunch, &gpu.RateLimitedError{RetryAfter: 12 * time.Second}, 1)
	b.sim.FailNext(sim.OpLaunch, gpu.ErrUnavailable, 1)
	req := gpu.LaunchRequest{Offer: b.offer, Name: "pod-1"}

	_, err := b.sim.Launch(ctx, req)
	require.ErrorIs(t, err, gpu.ErrRateLimited)
	require.Equal(t, 12*time.Second, gpu.RetryAfter(err))
	_, err = b.sim.Launch(ctx, req)
	require.ErrorIs(t, err, gpu.ErrUnavailable)
	_, err = b.sim.Launch(ctx, req)
	require.NoError(t, err)
	require.Equal(t, 1, b.sim.Launches(), "failed calls launch nothing")

	for _, op := range []string{sim.OpList, sim.OpGet, sim.OpInstances, sim.OpTerminate} {
		b.sim.FailNext(op, gpu.ErrUnavailable, 2)
	}
	for range 2 {
		_, err = b.sim.ListOffers(ctx, gpu.OfferQuery{})
		require.ErrorIs(t, err, gpu.ErrUnavailable)
		_, err = b.sim.GetInstance(ctx, "x")
		require.ErrorIs(t, err, gpu.ErrUnavailable)
		_, err = b.sim.ListInstances(ctx)
		require.ErrorIs(t, err, gpu.ErrUnavailable)
		require.ErrorIs(t, b.sim.Terminate(ctx, "x"), gpu.ErrUnavailable)
	}
	_, err = b.sim.ListOffers(ctx, gpu.OfferQuery{})
	require.NoError(t, err)

	require.Panics(t, func() { b.sim.FailNext("lunch", gpu.ErrUnavailable, 1) })
}

// A crash right after the launch call: the instance exists, the caller saw an error, and the
// retry finds the instance by name instead of launching again.
func TestFailAfterLaunch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.sim.FailAfterLaunch(1)
	_, err := b.sim.Launch(ctx, gpu.LaunchRequest{Offer: b.offer, Name: "pod-1"})
	require.Error(t, err)
	require.True(t, gpu.Retryable(err))
	require.Equal(t, 1, b.sim.Launches())

	found, err := gpu.FindInstance(ctx, b.sim, "pod-1")
	require.NoError(t, err)
	require.Equal(t, "pod-1", found.Name)
	require.Len(t, b.sim.Instances(), 1)
}

func TestHang(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sim.Hang(sim.OpGet, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := b.sim.GetInstance(ctx, "x")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.True(t, gpu.Retryable(err))

	b.sim.Hang(sim.OpGet, 0)
	_, err = b.sim.GetInstance(context.Background(), "x")
	require.ErrorIs(t, err, gpu.ErrNotFound)

	b.sim.Hang(sim.OpInstances, time.Millisecond) // a short hang just delays the call
	_, err = gpu.FindInstance(context.Background(), b.sim, "x")
	require.ErrorIs(t, err, gpu.ErrNotFound)
}

func TestOptions(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{
		Name:   "sim-b",
		Host:   "10.0.0.7",
		Offers: []gpu.Offer{{ID: "x", GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: 100, Available: true}},
	})
	require.Equal(t, "sim-b", s.Name())
	offers, err := s.ListOffers(context.Background(), gpu.OfferQuery{})
	require.NoError(t, err)
	require.Equal(t, []gpu.Offer{{Provider: "sim-b", ID: "x", GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: 100, Available: true}}, offers)
	inst, err := s.Launch(context.Background(), gpu.LaunchRequest{Offer: offers[0], Name: "p"})
	require.NoError(t, err)
	require.Equal(t, gpu.StateRunning, inst.State, "zero boot delay runs at once")
	require.Equal(t, "10.0.0.7", inst.SSHHost)
	require.Equal(t, "sim-b-0001", inst.ID)
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	ctx := context.Background()
	offers, err := s.ListOffers(ctx, gpu.OfferQuery{GPU: "rtx4090"})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			s.SetNoCapacity(offers[0].ID, i%2 == 0)
			s.FailNext(sim.OpGet, gpu.ErrUnavailable, 1)
			inst, err := s.Launch(ctx, gpu.LaunchRequest{Offer: offers[1], Name: "pod"})
			if err != nil {
				return
			}
			_, _ = s.GetInstance(ctx, inst.ID)
			_, _ = gpu.FindInstance(ctx, s, "pod")
			_ = s.Terminate(ctx, inst.ID)
			_ = s.Instances()
		})
	}
	wg.Wait()
	require.Equal(t, 16, s.Launches())
	require.Equal(t, 16, s.Terminations())
}

// NoSSHServers: a fleet of thousands without a listening socket each. Instances still run,
// report port 22 on Host, list and terminate as any other.
func TestNoSSHServers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := sim.New(sim.Options{NoSSHServers: true})
	offers, err := s.ListOffers(ctx, gpu.OfferQuery{})
	require.NoError(t, err)
	var ids []string
	for i := range 3000 {
		in, err := s.Launch(ctx, gpu.LaunchRequest{Offer: offers[0], Name: fmt.Sprintf("pod-%d", i), Image: "img"})
		require.NoError(t, err)
		ids = append(ids, in.ID)
	}
	list, err := s.ListInstances(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3000)
	require.Equal(t, gpu.StateRunning, list[0].State)
	require.Equal(t, 22, list[0].SSHPort)
	require.NoError(t, s.Terminate(ctx, ids[0]))
	list, err = s.ListInstances(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2999)
}
