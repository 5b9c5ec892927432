package gpu_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/sim"
)

var h100East = gpu.OfferQuery{GPU: "h100", Region: "us-east"}

func launchReq(name string) gpu.LaunchRequest {
	return gpu.LaunchRequest{Name: name, Image: "gpubroker/datascience:pytorch2-cuda12", IDE: gpu.IDEJupyter}
}

func quietBroker(providers ...gpu.Provider) *gpu.Broker {
	b := gpu.NewBroker(providers...)
	b.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return b
}

func offer(id string, cents int64) gpu.Offer {
	return gpu.Offer{ID: id, GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: cents, Available: true}
}

func TestBrokerLaunchesCheapest(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	b := quietBroker(s)
	inst, o, attempts, err := b.Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
	require.NoError(t, err)
	require.Empty(t, attempts)
	require.Equal(t, "h100-us-east-a", o.ID)
	require.Equal(t, int64(259), o.CentsPerHour)
	require.Equal(t, "sim", inst.Provider)
	require.Equal(t, "pod-1", inst.Name)
	require.Equal(t, "h100", inst.GPU)
	require.Equal(t, 1, s.Launches())
}

func TestBrokerFailsOverOnNoCapacity(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	s.SetNoCapacity("h100-us-east-a", true)
	b := quietBroker(s)
	inst, o, attempts, err := b.Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
	require.NoError(t, err)
	require.Equal(t, "h100-us-east-b", o.ID)
	require.Equal(t, int64(279), inst.CentsPerHour)
	require.Len(t, attempts, 1)
	require.Equal(t, "h100-us-east-a", attempts[0].Offer.ID)
	require.ErrorIs(t, attempts[0].Err, gpu.ErrNoCapacity)
	require.Equal(t, 1, s.Launches())
}

func TestBrokerFailsOverOnOfferGone(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	s.FailNext(sim.OpLaunch, fmt.Errorf("no_such_ask: %w", gpu.ErrOfferGone), 1)
	b := quietBroker(s)
	_, o, attempts, err := b.Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
	require.NoError(t, err)
	require.Equal(t, "h100-us-east-b", o.ID)
	require.Len(t, attempts, 1)
	require.ErrorIs(t, attempts[0].Err, gpu.ErrOfferGone)
}

func TestBrokerNoCapacityAnywhere(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	s.SetNoCapacityAll(true)
	b := quietBroker(s)
	inst, o, attempts, err := b.Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
	require.ErrorIs(t, err, gpu.ErrNoCapacity)
	require.Nil(t, inst)
	require.Nil(t, o)
	require.Len(t, attempts, 2)
	var le *gpu.LaunchError
	require.ErrorAs(t, err, &le)
	require.Equal(t, attempts, le.Attempts)
	require.False(t, gpu.Retryable(err), "no capacity is not fixed by retrying at once")
	require.True(t, gpu.Failover(err))
	require.Zero(t, s.Launches())
}

func TestBrokerNoMatchingOffer(t *testing.T) {
	t.Parallel()
	b := quietBroker(sim.New(sim.Options{}))
	_, _, attempts, err := b.Launch(context.Background(), gpu.OfferQuery{GPU: "h100", Region: "mars"}, launchReq("pod-1"), nil, nil)
	require.ErrorIs(t, err, gpu.ErrNoCapacity)
	require.Empty(t, attempts)
}

func TestBrokerSkipsExcluded(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	b := quietBroker(s)
	exclude := map[string]bool{"sim/h100-us-east-a": true}
	_, o, attempts, err := b.Launch(context.Background(), h100East, launchReq("pod-1"), exclude, nil)
	require.NoError(t, err)
	require.Equal(t, "h100-us-east-b", o.ID)
	require.Empty(t, attempts, "an excluded offer is not attempted")

	exclude["sim/h100-us-east-b"] = true
	_, _, attempts, err = b.Launch(context.Background(), h100East, launchReq("pod-2"), exclude, nil)
	require.ErrorIs(t, err, gpu.ErrNoCapacity)
	require.Empty(t, attempts)
	require.Equal(t, 1, s.Launches())
}

func TestBrokerSkipsUnavailable(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{Offers: []gpu.Offer{
		{ID: "cheap-gone", GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: 100, Available: false},
		offer("dear", 300),
	}})
	b := quietBroker(s)
	offers, err := b.Offers(context.Background(), h100East)
	require.NoError(t, err)
	require.Equal(t, []string{"dear", "cheap-gone"}, ids(offers), "unavailable offers go last")

	_, o, attempts, err := b.Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
	require.NoError(t, err)
	require.Equal(t, "dear", o.ID)
	require.Empty(t, attempts)
}

func TestBrokerRateLimitIsRetryable(t *testing.T) {
	t.Parallel()
	for name, injected := range map[string]error{
		"429": &gpu.RateLimitedError{RetryAfter: 12 * time.Second},
		"5xx": fmt.Errorf("HTTP 503: %w", gpu.ErrUnavailable),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := sim.New(sim.Options{})
			s.FailNext(sim.OpLaunch, injected, 1)
			b := quietBroker(s)
			_, o, attempts, err := b.Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
			require.Error(t, err)
			require.Nil(t, o)
			require.True(t, gpu.Retryable(err), "%v", err)
			require.False(t, gpu.Failover(err), "a transient error must not fail over: the launch may have happened")
			require.ErrorIs(t, err, injected)
			require.Len(t, attempts, 1, "the broker stops at the first transient error")
			require.Zero(t, s.Launches())
		})
	}
	s := sim.New(sim.Options{})
	s.FailNext(sim.OpLaunch, &gpu.RateLimitedError{RetryAfter: 12 * time.Second}, 1)
	_, _, _, err := quietBroker(s).Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
	require.Equal(t, 12*time.Second, gpu.RetryAfter(err), "the job snoozes for Retry-After")
}

// A crash right after launching surfaces as retryable; the retry finds the instance by name
// and so never launches twice.
func TestBrokerCrashAfterLaunchThenFind(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	s.FailAfterLaunch(1)
	b := quietBroker(s)
	ctx := context.Background()
	_, _, _, err := b.Launch(ctx, h100East, launchReq("pod-1"), nil, nil)
	require.True(t, gpu.Retryable(err))

	inst, err := b.FindInstance(ctx, "pod-1")
	require.NoError(t, err)
	require.Equal(t, "pod-1", inst.Name)
	require.Equal(t, 1, s.Launches())
}

func TestBrokerMergesProvidersByPrice(t *testing.T) {
	t.Parallel()
	a := sim.New(sim.Options{Name: "sim-a", Offers: []gpu.Offer{offer("a1", 270), offer("a2", 290)}})
	c := sim.New(sim.Options{Name: "sim-c", Offers: []gpu.Offer{offer("c1", 260), offer("c2", 280)}})
	b := quietBroker(a, c)
	ctx := context.Background()

	offers, err := b.Offers(ctx, h100East)
	require.NoError(t, err)
	require.Equal(t, []string{"c1", "a1", "c2", "a2"}, ids(offers))
	require.Equal(t, []string{"sim-c", "sim-a", "sim-c", "sim-a"}, providers(offers))

	c.SetNoCapacity("c1", true)
	inst, o, attempts, err := b.Launch(ctx, h100East, launchReq("pod-1"), nil, nil)
	require.NoError(t, err)
	require.Equal(t, "sim-a/a1", gpu.OfferKey(*o), "fails over across providers")
	require.Equal(t, "sim-a", inst.Provider)
	require.Len(t, attempts, 1)
	require.Equal(t, "sim-c/c1", gpu.OfferKey(attempts[0].Offer))

	p, ok := b.Provider(inst.Provider)
	require.True(t, ok)
	got, err := p.GetInstance(ctx, inst.ID)
	require.NoError(t, err)
	require.Equal(t, inst.ID, got.ID)
	_, ok = b.Provider("nope")
	require.False(t, ok)
}

func TestBrokerSkipsProviderOnAuth(t *testing.T) {
	t.Parallel()
	for name, injected := range map[string]error{"auth": gpu.ErrAuth, "funds": gpu.ErrInsufficientFunds} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := sim.New(sim.Options{Name: "sim-a", Offers: []gpu.Offer{offer("a1", 250), offer("a2", 260)}})
			c := sim.New(sim.Options{Name: "sim-c", Offers: []gpu.Offer{offer("c1", 270)}})
			a.FailNext(sim.OpLaunch, injected, 5)
			_, o, attempts, err := quietBroker(a, c).Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
			require.NoError(t, err)
			require.Equal(t, "sim-c/c1", gpu.OfferKey(*o))
			require.Len(t, attempts, 1, "the provider's other offers are skipped")
			require.ErrorIs(t, attempts[0].Err, injected)

			c.SetNoCapacityAll(true)
			_, _, _, err = quietBroker(a, c).Launch(context.Background(), h100East, launchReq("pod-2"), nil, nil)
			require.ErrorIs(t, err, gpu.ErrNoCapacity)
			require.ErrorIs(t, err, injected, "ops can tell the account needs attention")
			require.True(t, gpu.SkipProvider(err))
		})
	}
}

func TestBrokerUnknownErrorStops(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	boom := errors.New("HTTP 400: invalid parameters")
	s.FailNext(sim.OpLaunch, boom, 1)
	_, _, attempts, err := quietBroker(s).Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
	require.ErrorIs(t, err, boom)
	require.Len(t, attempts, 1)
	require.Zero(t, s.Launches(), "an unclassified error is not failed over: the launch may have happened")
}

func TestBrokerRejectsNamelessLaunch(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	_, _, _, err := quietBroker(s).Launch(context.Background(), h100East, gpu.LaunchRequest{IDE: gpu.IDEJupyter}, nil, nil)
	require.Error(t, err)
	require.Zero(t, s.Launches())
}

func TestBrokerMaxPrice(t *testing.T) {
	t.Parallel()
	s := sim.New(sim.Options{})
	b := quietBroker(s)
	q := h100East
	q.MaxCentsPerHour = 260
	offers, err := b.Offers(context.Background(), q)
	require.NoError(t, err)
	require.Equal(t, []string{"h100-us-east-a"}, ids(offers))
	q.MaxCentsPerHour = 200
	_, _, _, err = b.Launch(context.Background(), q, launchReq("pod-1"), nil, nil)
	require.ErrorIs(t, err, gpu.ErrNoCapacity, "never launch above what the customer pays")
}

func TestBrokerOffersSurvivesOneFailingProvider(t *testing.T) {
	t.Parallel()
	a := sim.New(sim.Options{Name: "sim-a"})
	c := sim.New(sim.Options{Name: "sim-c"})
	a.FailNext(sim.OpList, gpu.ErrUnavailable, 1)
	b := quietBroker(a, c)
	offers, err := b.Offers(context.Background(), h100East)
	require.NoError(t, err)
	require.Equal(t, []string{"sim-c", "sim-c"}, providers(offers))

	a.FailNext(sim.OpList, gpu.ErrUnavailable, 1)
	c.FailNext(sim.OpList, gpu.ErrAuth, 1)
	_, err = b.Offers(context.Background(), h100East)
	require.ErrorIs(t, err, gpu.ErrUnavailable)
	require.ErrorIs(t, err, gpu.ErrAuth)

	_, err = gpu.NewBroker().Offers(context.Background(), h100East)
	require.Error(t, err)
}

func TestBrokerFindInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := sim.New(sim.Options{Name: "sim-a"})
	c := sim.New(sim.Options{Name: "sim-c"})
	b := quietBroker(a, c)
	_, err := b.FindInstance(ctx, "pod-1")
	require.ErrorIs(t, err, gpu.ErrNotFound)

	offers, err := c.ListOffers(ctx, h100East)
	require.NoError(t, err)
	launched, err := c.Launch(ctx, launchReqOn("pod-1", offers[0]))
	require.NoError(t, err)
	found, err := b.FindInstance(ctx, "pod-1")
	require.NoError(t, err)
	require.Equal(t, launched.ID, found.ID)
	require.Equal(t, "sim-c", found.Provider)

	// A provider that cannot answer must not be read as "not launched there".
	require.NoError(t, c.Terminate(ctx, launched.ID))
	a.FailNext(sim.OpInstances, gpu.ErrUnavailable, 1)
	_, err = b.FindInstance(ctx, "pod-1")
	require.ErrorIs(t, err, gpu.ErrUnavailable)
	require.NotErrorIs(t, err, gpu.ErrNotFound)
}

// gpu.FindInstance looks a name up in the provider's live instances: a failed instance is
// found (it may still bill, so a retried job must end it), a terminated one is not, and a list
// the provider could not give is its error, never ErrNotFound.
func TestFindInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := sim.New(sim.Options{})
	_, err := gpu.FindInstance(ctx, s, "pod-1")
	require.ErrorIs(t, err, gpu.ErrNotFound)

	offers, err := s.ListOffers(ctx, h100East)
	require.NoError(t, err)
	first, err := s.Launch(ctx, launchReqOn("pod-1", offers[0]))
	require.NoError(t, err)
	_, err = s.Launch(ctx, launchReqOn("pod-2", offers[0]))
	require.NoError(t, err)
	require.True(t, s.Fail(first.ID, "host failure"))
	found, err := gpu.FindInstance(ctx, s, "pod-1")
	require.NoError(t, err)
	require.Equal(t, first.ID, found.ID, "a failed instance is still found")
	require.Equal(t, gpu.StateFailed, found.State)

	require.NoError(t, s.Terminate(ctx, first.ID))
	second, err := s.Launch(ctx, launchReqOn("pod-1", offers[0]))
	require.NoError(t, err)
	found, err = gpu.FindInstance(ctx, s, "pod-1")
	require.NoError(t, err)
	require.Equal(t, second.ID, found.ID, "a terminated instance is not")
	require.NoError(t, s.Terminate(ctx, second.ID))
	_, err = gpu.FindInstance(ctx, s, "pod-1")
	require.ErrorIs(t, err, gpu.ErrNotFound, "none left live")

	s.FailNext(sim.OpInstances, gpu.ErrUnavailable, 1)
	_, err = gpu.FindInstance(ctx, s, "pod-1")
	require.ErrorIs(t, err, gpu.ErrUnavailable)
	require.NotErrorIs(t, err, gpu.ErrNotFound)
}

func launchReqOn(name string, o gpu.Offer) gpu.LaunchRequest {
	r := launchReq(name)
	r.Offer = o
	return r
}

func TestNewBrokerRejectsDuplicateNames(t *testing.T) {
	t.Parallel()
	require.Panics(t, func() { gpu.NewBroker(sim.New(sim.Options{}), sim.New(sim.Options{})) })
}

func TestBrokerConcurrentLaunches(t *testing.T) {
	t.Parallel()
	a := sim.New(sim.Options{Name: "sim-a"})
	c := sim.New(sim.Options{Name: "sim-c"})
	b := quietBroker(a, c)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if i%3 == 0 {
				a.SetNoCapacity("h100-us-east-a", i%2 == 0)
			}
			name := fmt.Sprintf("pod-%d", i)
			inst, _, _, err := b.Launch(ctx, h100East, launchReq(name), nil, nil)
			if err != nil {
				t.Errorf("launch %s: %v", name, err)
				return
			}
			found, err := b.FindInstance(ctx, name)
			if err != nil || found.ID != inst.ID {
				t.Errorf("find %s: %v", name, err)
				return
			}
			p, _ := b.Provider(inst.Provider)
			if err := p.Terminate(ctx, inst.ID); err != nil {
				t.Errorf("terminate %s: %v", name, err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, 20, a.Launches()+c.Launches())
	require.Equal(t, 20, a.Terminations()+c.Terminations())
}

func ids(offers []gpu.Offer) []string {
	var out []string
	for _, o := range offers {
		out = append(out, o.ID)
	}
	return out
}

func providers(offers []gpu.Offer) []string {
	var out []string
	for _, o := range offers {
		out = append(out, o.Provider)
	}
	return out
}

// A provider configuration fault (Lambda's object-does-not-exist for a deleted SSH key name)
// fails every launch at that provider until a human fixes it, but says nothing about the
// others: the broker tries that provider once, skips the rest of its offers, logs an error
// and launches at the next provider.
func TestBrokerSkipsProviderOnConfigError(t *testing.T) {
	t.Parallel()
	misconfigured := sim.New(sim.Options{Name: "lambda", Offers: []gpu.Offer{offer("cheapest", 200), offer("cheaper", 210)}})
	misconfigured.FailNext(sim.OpLaunch, fmt.Errorf("lambda: HTTP 404 global/object-does-not-exist: SSH key not found: %w", gpu.ErrProviderConfig), 10)
	healthy := sim.New(sim.Options{Name: "runpod", Offers: []gpu.Offer{offer("dearer", 300)}})
	var logs syncBuffer
	b := gpu.NewBroker(misconfigured, healthy)
	b.Logger = slog.New(slog.NewTextHandler(&logs, nil))

	inst, o, attempts, err := b.Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
	require.NoError(t, err)
	require.Equal(t, "runpod", inst.Provider)
	require.Equal(t, "dearer", o.ID)
	require.Len(t, attempts, 1, "the misconfigured provider is tried once, not once per offer")
	require.Equal(t, "lambda", attempts[0].Offer.Provider)
	require.ErrorIs(t, attempts[0].Err, gpu.ErrProviderConfig)
	require.True(t, gpu.Failover(attempts[0].Err))
	require.Zero(t, misconfigured.Launches())
	require.Equal(t, 1, healthy.Launches())
	require.Contains(t, logs.String(), "level=ERROR")
	require.Contains(t, logs.String(), "provider=lambda")

	// With nothing else to try it is a LaunchError (no capacity), never a stop that retries.
	_, _, attempts, err = quietBroker(misconfigured).Launch(context.Background(), h100East, launchReq("pod-2"), nil, nil)
	require.ErrorIs(t, err, gpu.ErrNoCapacity)
	require.ErrorIs(t, err, gpu.ErrProviderConfig)
	require.Len(t, attempts, 1)
}

type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

// Issue 20.5: a deterministic refusal (RunPod's 422, Lambda's invalid-parameters) stopped
// failover, as an unknown error whose launch may have happened does. Nothing launched, so the
// broker logs it at error level and tries the next offer.
func TestBrokerFailsOverARefusal(t *testing.T) {
	t.Parallel()
	refusing := sim.New(sim.Options{Name: "runpod", Offers: []gpu.Offer{offer("cheapest", 200)}})
	refusing.FailNext(sim.OpLaunch, fmt.Errorf("runpod: HTTP 422: Request validation failed: %w", gpu.ErrRefused), 1)
	other := sim.New(sim.Options{Name: "lambda", Offers: []gpu.Offer{offer("dearer", 300)}})
	var logs syncBuffer
	b := gpu.NewBroker(refusing, other)
	b.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	inst, o, attempts, err := b.Launch(context.Background(), h100East, launchReq("pod-1"), nil, nil)
	require.NoError(t, err)
	require.Equal(t, "lambda", inst.Provider)
	require.Equal(t, "dearer", o.ID)
	require.Len(t, attempts, 1)
	require.ErrorIs(t, attempts[0].Err, gpu.ErrRefused)
	require.Contains(t, logs.String(), "level=ERROR")
}
