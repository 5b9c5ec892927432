package jobs

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/gpu"
	"gpubroker/gpu/runpod"
	"gpubroker/gpu/runpod/runpodsim"
	"gpubroker/gpu/sim"
	"gpubroker/internal/httpjson"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// countingProvider is a simulator that counts what the health watch asks it.
type countingProvider struct {
	*sim.Sim
	lists, gets atomic.Int64
}

func counting(s *sim.Sim) *countingProvider { return &countingProvider{Sim: s} }

func (c *countingProvider) ListInstances(ctx context.Context) ([]gpu.Instance, error) {
	c.lists.Add(1)
	return c.Sim.ListInstances(ctx)
}

func (c *countingProvider) GetInstance(ctx context.Context, id string) (*gpu.Instance, error) {
	c.gets.Add(1)
	return c.Sim.GetInstance(ctx, id)
}

// fleet launches n instances at p, each under the name of a new pod, and stores those pods as
// running there (in SQL, with a captured order each: the journey to running is the other
// tests'). It returns the pods' ids and their instances' ids, in the same order.
func fleet(tb testing.TB, pool *pgxpool.Pool, p gpu.Provider, n int) (podIDs, instanceIDs []string) {
	tb.Helper()
	return fleetOf(tb, pool, p, n, gpu.LaunchRequest{Image: "img", IDE: gpu.IDEJupyter})
}

// fleetOf is fleet launching each instance as req asks.
func fleetOf(tb testing.TB, pool *pgxpool.Pool, p gpu.Provider, n int, req gpu.LaunchRequest) (podIDs, instanceIDs []string) {
	tb.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT gen_random_uuid()::text FROM generate_series(1, $1)`, n)
	require.NoError(tb, err)
	podIDs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(tb, err)
	offers, err := p.ListOffers(ctx, gpu.OfferQuery{})
	require.NoError(tb, err)
	var offer gpu.Offer
	for _, o := range offers {
		if o.Available {
			offer = o
			break
		}
	}
	require.NotEmpty(tb, offer.ID, "an available offer")
	// Launched 16 at a time: through a client over HTTP, one by one takes long under -race.
	instanceIDs = make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, id := range podIDs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := req
			r.Offer, r.Name = offer, InstanceName(id)
			in, err := p.Launch(ctx, r)
			if errs[i] = err; err == nil {
				instanceIDs[i] = in.ID
			}
		})
	}
	wg.Wait()
	require.NoError(tb, errors.Join(errs...))
	_, err = pool.Exec(ctx, `INSERT INTO orders (id, email, name, plan, template, gpu, region, hours, hourly_cents, amount_cents, status, captured_at)
		SELECT id, 'fleet-' || id || '@example.com', 'Fleet', 'pro', 'data-science', 'a100', 'us-east', 2, 179, 358, 'captured', now()
		FROM unnest($1::uuid[]) AS t(id)`, podIDs)
	require.NoError(tb, err)
	_, err = pool.Exec(ctx, `INSERT INTO pods (id, order_id, status, gpu, region, hours, template, provider, instance_id, captured_at, launched_at, started_at, ends_at)
		SELECT id, id, 'running', 'a100', 'us-east', 2, 'data-science', $3, instance_id, now(), now(), now(), now() + interval '2 hours'
		FROM unnest($1::uuid[], $2::text[]) AS t(id, instance_id)`, podIDs, instanceIDs, p.Name())
	require.NoError(tb, err)
	return podIDs, instanceIDs
}

// withProviders is the bundle's worker with another broker.
func withProviders(b *testBundle, providers ...gpu.Provider) *PodHealthWorker {
	d := *b.deps
	d.Broker = gpu.NewBroker(providers...)
	return &PodHealthWorker{d: &d}
}

func (b *testBundle) healthFailures(t *testing.T, podID string) int {
	t.Helper()
	return b.count(t, `SELECT health_failures FROM pods WHERE id = $1`, podID)
}

// Issue 24.3: a pass asks each provider that has running pods for its instances once, whatever
// the fleet's size, and never one pod at a time; a provider without running pods is not asked.
func TestPodHealthListsOncePerProvider(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, other, idle := counting(b.sim), counting(sim.New(sim.Options{Name: "sim2"})), counting(sim.New(sim.Options{Name: "idle"}))
	podsA, _ := fleet(t, b.pool, a, 40)
	podsB, _ := fleet(t, b.pool, other, 25)
	w := withProviders(b, a, other, idle)

	for pass := int64(1); pass <= 2; pass++ {
		work(t, b, w, PodHealthArgs{})
		require.Equal(t, pass, a.lists.Load())
		require.Equal(t, pass, other.lists.Load())
		require.Zero(t, idle.lists.Load(), "no running pods there: not asked")
		require.Zero(t, a.gets.Load()+other.gets.Load()+idle.gets.Load(), "never one pod at a time")
	}
	require.Equal(t, len(podsA)+len(podsB), b.count(t, `SELECT count(*) FROM pods WHERE status = 'running' AND health_failures = 0`))
}

// A provider whose list call fails (an outage, a rate limit) says nothing about its pods: no
// dead check counts and none clears, however many passes in a row, while the other provider's
// pods are checked as usual. Once it answers again, its dead instance counts as before.
func TestPodHealthListOutageIsNoStrike(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, other := counting(b.sim), counting(sim.New(sim.Options{Name: "sim2"}))
	_, podA, _ := b.running(t, "outage-a@example.com")
	podsB, instancesB := fleet(t, b.pool, other, 1)
	podB := podsB[0]
	w := withProviders(b, a, other)

	require.True(t, a.Fail(*b.pod(t, podA).InstanceID, "the host failed"))
	require.True(t, other.Fail(instancesB[0], "the host failed"))
	a.FailNext(sim.OpInstances, gpu.ErrUnavailable, 2)
	a.FailNext(sim.OpInstances, &gpu.RateLimitedError{RetryAfter: time.Second}, 1)

	work(t, b, w, PodHealthArgs{})
	require.Zero(t, b.healthFailures(t, podA), "its provider could not list: unknown")
	require.Equal(t, 1, b.healthFailures(t, podB))
	work(t, b, w, PodHealthArgs{})
	require.Equal(t, gpubroker.PodFailed, b.pod(t, podB).Status, "two dead checks")
	work(t, b, w, PodHealthArgs{})
	require.Equal(t, gpubroker.PodRunning, b.pod(t, podA).Status, "three passes without an answer fail nothing")
	require.Zero(t, b.healthFailures(t, podA))

	work(t, b, w, PodHealthArgs{})
	require.Equal(t, 1, b.healthFailures(t, podA), "answering again: dead")
	work(t, b, w, PodHealthArgs{})
	require.Equal(t, gpubroker.PodFailed, b.pod(t, podA).Status)
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'unused_hours_refund' AND args->>'pod_id' = $1 AND args->>'reason' = 'pod_died'`, podA))
	require.Zero(t, a.gets.Load()+other.gets.Load())
}

// An instance the provider no longer lists is dead (terminated ones are not listed), even when
// another instance is listed under the pod's name: a duplicate launch is not what the pod runs
// (the reconciler ends it). A healthy pod beside it is left alone.
func TestPodHealthMissingFromTheListIsDead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, podID, _ := b.running(t, "missing@example.com")
	_, healthyID, _ := b.running(t, "present@example.com")
	pod := b.pod(t, podID)
	require.NoError(t, b.sim.Terminate(ctx, *pod.InstanceID))
	offers, err := b.sim.ListOffers(ctx, gpu.OfferQuery{GPU: pod.GPU})
	require.NoError(t, err)
	dup, err := b.sim.Launch(ctx, gpu.LaunchRequest{Offer: offers[0], Name: InstanceName(podID), Image: "img"})
	require.NoError(t, err)
	require.NotEqual(t, *pod.InstanceID, dup.ID)
	w := &PodHealthWorker{d: b.deps}

	work(t, b, w, PodHealthArgs{})
	require.Equal(t, 1, b.healthFailures(t, podID))
	work(t, b, w, PodHealthArgs{})
	require.Equal(t, gpubroker.PodFailed, b.pod(t, podID).Status)
	require.Equal(t, gpubroker.PodRunning, b.pod(t, healthyID).Status)
	require.Zero(t, b.healthFailures(t, healthyID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE pod_id = $1 AND action = 'pod.died' AND detail->>'why' LIKE '%no longer lists%'`, podID))
}

// Each pass is recorded for the ops collector: how long it took, the running pods it looked at
// by outcome, the list calls made and the providers that could not answer.
func TestPodHealthPassIsRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	a, other := counting(b.sim), counting(sim.New(sim.Options{Name: "sim2"}))
	_, instancesA := fleet(t, b.pool, a, 3)
	fleet(t, b.pool, other, 2)
	w := withProviders(b, a, other)

	last, err := postgres.LastHealthPass(ctx, b.pool)
	require.NoError(t, err)
	require.Nil(t, last, "no pass yet")

	require.True(t, a.Fail(instancesA[0], "the host failed"))
	other.FailNext(sim.OpInstances, gpu.ErrUnavailable, 1)
	before := time.Now()
	work(t, b, w, PodHealthArgs{})
	last, err = postgres.LastHealthPass(ctx, b.pool)
	require.NoError(t, err)
	require.NotNil(t, last)
	require.WithinRange(t, last.StartedAt, before.Add(-time.Second), time.Now())
	require.Positive(t, last.Seconds)
	require.Equal(t, postgres.HealthPass{StartedAt: last.StartedAt, Seconds: last.Seconds,
		Pods: 5, Healthy: 2, Dead: 1, Unknown: 2, ListCalls: 2, FailedProviders: []string{"sim2"}}, *last)

	work(t, b, w, PodHealthArgs{})
	again, err := postgres.LastHealthPass(ctx, b.pool)
	require.NoError(t, err)
	require.True(t, again.StartedAt.After(last.StartedAt), "the last pass replaces the one before")
	require.Equal(t, 4, again.Healthy)
	require.Empty(t, again.FailedProviders)
}

// The measure: one pass over 10,000 running pods at one provider whose list call takes
// 200 ms (as a real one may) is one call, checks every pod, and is recorded. How long it takes
// is BenchmarkPodHealthPass10000's to say; this asserts the calls, not a time.
func TestPodHealthPassOver10000Pods(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := counting(sim.New(sim.Options{Name: "fleet", NoSSHServers: true}))
	fleet(t, b.pool, p, 10_000)
	p.Hang(sim.OpInstances, 200*time.Millisecond)
	w := withProviders(b, p)

	work(t, b, w, PodHealthArgs{})
	require.EqualValues(t, 1, p.lists.Load())
	require.Zero(t, p.gets.Load())
	last, err := postgres.LastHealthPass(context.Background(), b.pool)
	require.NoError(t, err)
	require.Equal(t, 10_000, last.Pods)
	require.Equal(t, 10_000, last.Healthy)
	t.Logf("pass over %d pods: %.3f s, %d list call(s)", last.Pods, last.Seconds, last.ListCalls)
}

// BenchmarkPodHealthPass10000 is one health pass over 10,000 running pods at one simulated
// provider that takes 200 ms to list them: the interval (1 minute) must hold it many times over.
//
//	DATABASE_URL=$(scripts/pg.sh) go test -run '^$' -bench PodHealthPass -benchtime 20x ./jobs/
func BenchmarkPodHealthPass10000(b *testing.B) {
	pool := testdb.New(b)
	gpus := counting(sim.New(sim.Options{NoSSHServers: true}))
	fleet(b, pool, gpus, 10_000)
	gpus.Hang(sim.OpInstances, 200*time.Millisecond)
	d := (&Deps{Pool: pool, Broker: gpu.NewBroker(gpus), Logger: slog.New(slog.DiscardHandler)}).withDefaults()
	tw := rivertest.NewWorker(b, riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)}, river.Worker[PodHealthArgs](&PodHealthWorker{d: d}))
	ctx := context.Background()
	passes := 0
	for b.Loop() {
		passes++
		tx, err := pool.Begin(ctx)
		require.NoError(b, err)
		res, err := tw.Work(ctx, b, tx, PodHealthArgs{}, nil)
		require.NoError(b, err)
		require.Equal(b, river.EventKindJobCompleted, res.EventKind)
		require.NoError(b, tx.Commit(ctx))
	}
	b.ReportMetric(float64(gpus.lists.Load())/float64(passes), "lists/op")
	b.ReportMetric(float64(gpus.gets.Load())/float64(passes), "gets/op")
	require.Zero(b, gpus.gets.Load())
}

// customerKey is an RSA 4096 public key, as customers commonly register: RunPod's pod JSON
// carries it twice (PUBLIC_KEY and SSH_PUBLIC_KEY in env).
var customerKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAACAQ" + strings.Repeat("x7Kq", 171) + " ada@laptop"

// runpodFleet is RunPod's stand-in holding n running pods of ours, launched through the real
// RunPod client as provisioning launches them (the bootstrap command, the customer's key, the
// IDE and boot secrets: what makes a pod's JSON its real size) and seeded as fleet does; the
// client is returned. requests counts what reached the stand-in after the launches, lists
// counts GET /v2/pods.
func runpodFleet(tb testing.TB, pool *pgxpool.Pool, n int) (c *runpod.Client, rs *runpodsim.Server, requests, lists *atomic.Int64) {
	tb.Helper()
	rs = runpodsim.New(runpodsim.Options{APIKey: "rp-key", NoSSHServers: true})
	requests, lists = new(atomic.Int64), new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Method == http.MethodGet && r.URL.Path == "/v2/pods" {
			lists.Add(1)
			cw := &countingWriter{ResponseWriter: w}
			rs.ServeHTTP(cw, r)
			lastListBytes.Store(cw.n)
			return
		}
		rs.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	c = runpod.New(runpod.Config{APIKey: "rp-key", BaseURL: srv.URL, BootstrapURL: "https://gpubroker.example/boot/gpubroker-start.sh"})
	fleetOf(tb, pool, c, n, gpu.LaunchRequest{Image: sim.PublicImages[0], IDE: gpu.IDEJupyter, SSHPublicKeys: []string{customerKey},
		IDESecret: strings.Repeat("s", 43), BootURL: "https://gpubroker.example/api/pods/boot", BootSecret: strings.Repeat("b", 43)})
	requests.Store(0)
	lists.Store(0)
	return c, rs, requests, lists
}

// lastListBytes is the length of the last GET /v2/pods answer a runpodFleet served.
var lastListBytes atomic.Int64

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// The pass through the real RunPod client and its stand-in: one GET /v2/pods (RunPod's list is
// not paged) carries every pod, about 3 KB each, and each is found healthy. 2,000 pods are over
// 6 MB, past the 4 MiB every other answer is held to, which left the watch blind to a RunPod
// fleet of more than some 1,300 pods (BenchmarkPodHealthPass10000RunPod runs 10,000).
func TestPodHealthPassOverARunPodFleet(t *testing.T) {
	t.Parallel()
	const pods = 2000
	b := setup(t)
	c, _, requests, lists := runpodFleet(t, b.pool, pods)
	w := withProviders(b, c)

	work(t, b, w, PodHealthArgs{})
	require.EqualValues(t, 1, requests.Load())
	require.EqualValues(t, 1, lists.Load())
	last, err := postgres.LastHealthPass(context.Background(), b.pool)
	require.NoError(t, err)
	require.Empty(t, last.FailedProviders)
	require.Equal(t, pods, last.Healthy)
	require.Greater(t, lastListBytes.Load(), int64(httpjson.MaxAnswer))
	t.Logf("pass over %d RunPod pods: %.3f s, %d request(s), %d bytes listed", last.Pods, last.Seconds, requests.Load(), lastListBytes.Load())
}

// BenchmarkPodHealthPass10000RunPod is BenchmarkPodHealthPass10000 through the real RunPod
// client over HTTP (the list's JSON encoded by the stand-in and decoded by the client), with
// the stand-in's list taking 200 ms more.
func BenchmarkPodHealthPass10000RunPod(b *testing.B) {
	pool := testdb.New(b)
	c, rs, requests, lists := runpodFleet(b, pool, 10_000)
	rs.Sim.Hang(sim.OpInstances, 200*time.Millisecond)
	d := (&Deps{Pool: pool, Broker: gpu.NewBroker(c), Logger: slog.New(slog.DiscardHandler)}).withDefaults()
	tw := rivertest.NewWorker(b, riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)}, river.Worker[PodHealthArgs](&PodHealthWorker{d: d}))
	ctx := context.Background()
	passes := 0
	for b.Loop() {
		passes++
		tx, err := pool.Begin(ctx)
		require.NoError(b, err)
		res, err := tw.Work(ctx, b, tx, PodHealthArgs{}, nil)
		require.NoError(b, err)
		require.Equal(b, river.EventKindJobCompleted, res.EventKind)
		require.NoError(b, tx.Commit(ctx))
	}
	last, err := postgres.LastHealthPass(ctx, pool)
	require.NoError(b, err)
	require.Equal(b, 10_000, last.Healthy, "every pod found: %+v", last)
	b.ReportMetric(float64(requests.Load())/float64(passes), "requests/op")
	b.ReportMetric(float64(lists.Load())/float64(passes), "lists/op")
}

// A provider whose list hangs gets half of what is left of the job's time: the pass still notes
// what the other provider answered, and completes, well within the job's timeout.
func TestPodHealthOutlivesAHangingProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	hung, other := counting(sim.New(sim.Options{Name: "hung"})), counting(sim.New(sim.Options{Name: "sim2"}))
	podsH, _ := fleet(t, b.pool, hung, 2)
	podsO, instancesO := fleet(t, b.pool, other, 2)
	hung.Hang(sim.OpInstances, time.Minute)
	require.True(t, other.Fail(instancesO[0], "the host failed"))
	tw := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{Logger: slog.New(slog.DiscardHandler), JobTimeout: 2 * time.Second},
		river.Worker[PodHealthArgs](withProviders(b, hung, other)))

	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	began := time.Now()
	res, err := tw.Work(ctx, t, tx, PodHealthArgs{}, nil)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Less(t, time.Since(began), 2*time.Second)
	require.Equal(t, 1, b.healthFailures(t, podsO[0]))
	require.Zero(t, b.healthFailures(t, podsO[1]))
	require.Zero(t, b.healthFailures(t, podsH[0]))
	last, err := postgres.LastHealthPass(ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, []string{"hung"}, last.FailedProviders)
	require.Equal(t, 2, last.Unknown)
}
