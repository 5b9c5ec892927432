package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stripe/stripe-go/v76/webhook"

	"gpubroker/billing"
	"gpubroker/jobs"
	"gpubroker/postgres"
)

// noopArgs is a job that does nothing: River's own ceiling on this database.
type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string { return "noop_bench" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// BenchmarkStripeEventBurst measures the job side of a burst: GPUBROKER_BURST (e.g. 2000) paid
// checkouts' checkout.session.completed events, stored with their stripe_event jobs in one
// commit, worked through River with the production client settings (the Stripe stand-in
// answering the Session and PaymentIntent fetches) until every order has its account; then
// as many no-op jobs, committed at once, through a River client with the same settings. It
// reports accounts/s, noop-jobs/s and their ratio. Skipped unless GPUBROKER_BURST is set:
// `make load` runs it on its durable cluster, which is where the figure means something.
func BenchmarkStripeEventBurst(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("GPUBROKER_BURST"))
	if n <= 0 {
		b.Skip("set GPUBROKER_BURST=2000 (make load runs this on a durable cluster)")
	}
	e := newEnv(b, envOpts{productionRiver: true})
	ctx := context.Background()
	pool := e.m.Pool

	// n paid checkouts whose webhooks are held back.
	e.m.StripeSim.PauseDelivery(true)
	for i := range n {
		_, sid := e.checkout(newBrowser(), fmt.Sprintf("burst%d@example.com", i))
		if _, err := e.m.StripeSim.Pay(ctx, sid, "4242424242424242"); err != nil {
			b.Fatal(err)
		}
	}
	var events [][]byte
	for _, ev := range e.m.StripeSim.Events() {
		if ev.Type == "checkout.session.completed" {
			events = append(events, ev.Raw)
		}
	}
	if len(events) != n {
		b.Fatalf("%d completed events for %d checkouts", len(events), n)
	}

	var accountsPerSec, noopPerSec float64
	// One burst whatever b.N (run with -benchtime 1x): the setup above is the slow part.
	b.ResetTimer()
	{
		// The burst: every event and its job committed at once, as the webhook stores them.
		start := time.Now()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for _, raw := range events {
				sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: raw, Secret: e.m.Config.StripeWebhookSecret, Timestamp: time.Now()}).Header
				ev, err := billing.ParseWebhook(raw, sig, e.m.Config.StripeWebhookSecret)
				if err != nil {
					return err
				}
				if _, err := postgres.InsertStripeEvent(ctx, tx, ev, jobs.StripeEventArgs{EventID: ev.ID}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		e.eventuallyWithin("every account", 10*time.Minute, func() bool {
			time.Sleep(10 * time.Millisecond)
			return e.count(`SELECT count(*) FROM orders WHERE account_id IS NOT NULL`) == n
		})
		accountsPerSec = float64(n) / time.Since(start).Seconds()

		// River's own rate: the production client stopped, a no-op worker on the same queue
		// with the same settings (worker.NewClient's), n jobs committed at once.
		if err := e.m.River.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		workers := river.NewWorkers()
		river.AddWorker(workers, &noopWorker{})
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 50}},
			Workers:              workers,
			Logger:               e.m.Logger,
			JobTimeout:           time.Minute,
			RescueStuckJobsAfter: 5 * time.Minute,
			FetchCooldown:        20 * time.Millisecond,
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := client.Start(ctx); err != nil {
			b.Fatal(err)
		}
		params := make([]river.InsertManyParams, n)
		for i := range params {
			params[i] = river.InsertManyParams{Args: noopArgs{N: i}}
		}
		start = time.Now()
		if _, err := client.InsertMany(ctx, params); err != nil {
			b.Fatal(err)
		}
		e.eventuallyWithin("every no-op job", 10*time.Minute, func() bool {
			time.Sleep(10 * time.Millisecond)
			return e.count(`SELECT count(*) FROM river_job WHERE kind = 'noop_bench' AND state = 'completed'`) == n
		})
		noopPerSec = float64(n) / time.Since(start).Seconds()
		_ = client.Stop(ctx)
	}
	b.ReportMetric(accountsPerSec, "accounts/s")
	b.ReportMetric(noopPerSec, "noop-jobs/s")
	b.ReportMetric(accountsPerSec/noopPerSec, "ratio")
}
