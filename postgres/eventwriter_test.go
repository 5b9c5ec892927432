package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/jobs"
	"gpubroker/postgres"
)

type insertResult struct {
	id       string
	inserted bool
	err      error
}

func testEvent(id, payload string) *gpubroker.WebhookEvent {
	return &gpubroker.WebhookEvent{ID: id, Type: "checkout.session.completed", ObjectID: "cs_" + id, Payload: []byte(payload)}
}

// blockWriter keeps w writing: its next event waits on a row lock the test holds
// until release is called. The blocked caller's result arrives on the returned channel.
func blockWriter(t *testing.T, pool *pgxpool.Pool, w *postgres.EventWriter, id string) (release func(), blocked <-chan insertResult) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO stripe_events (id, type, object_id, payload) VALUES ($1, 'x', 'x', '{}')`, id)
	require.NoError(t, err)
	waiting := func() (n int) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n))
		return n
	}
	before := waiting()
	res := make(chan insertResult, 1)
	insertAsync(ctx, w, testEvent(id, `{}`), res)
	waitFor(t, "the first event to wait on the test's lock", func() bool { return waiting() == before+1 })
	return func() { require.NoError(t, tx.Rollback(ctx)) }, res
}

// insertAsync calls w.Insert for e (nil: a nil event) in a goroutine and sends its result to res.
func insertAsync(ctx context.Context, w *postgres.EventWriter, e *gpubroker.WebhookEvent, res chan<- insertResult) {
	go func() {
		var args jobs.StripeEventArgs
		if e != nil {
			args.EventID = e.ID
		}
		ins, err := w.Insert(ctx, e, args)
		res <- insertResult{args.EventID, ins, err}
	}()
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// queueEvents starts one caller per event and returns once all are queued in w, after the
// already queued ones.
func queueEvents(t *testing.T, w *postgres.EventWriter, evs []*gpubroker.WebhookEvent, already int) <-chan insertResult {
	res := make(chan insertResult, len(evs))
	for _, e := range evs {
		insertAsync(context.Background(), w, e, res)
	}
	waitFor(t, "the events to queue", func() bool {
		return w.Queued() == already+len(evs)
	})
	return res
}

// Events queued behind a running statement are stored together, in one transaction, each with one
// job; a redelivery in the same batch is acknowledged as a duplicate without a second job.
func TestEventWriterSharesACommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	w := postgres.NewEventWriter(pool)
	release, blocked := blockWriter(t, pool, w, "evt_block")

	var evs []*gpubroker.WebhookEvent
	for i := range 10 {
		evs = append(evs, testEvent(fmt.Sprintf("evt_%d", i), `{"n":1}`))
	}
	evs = append(evs, testEvent("evt_3", `{"n":1}`), testEvent("evt_7", `{"n":1}`)) // redeliveries
	res := queueEvents(t, w, evs, 0)
	release()

	b := <-blocked
	require.NoError(t, b.err)
	require.True(t, b.inserted, "the test's row was rolled back, so the writer's is new")
	firsts := map[string]int{}
	for range evs {
		r := <-res
		require.NoError(t, r.err)
		if r.inserted {
			firsts[r.id]++
		}
	}
	require.Len(t, firsts, 10, "each event is new exactly once")
	for id, n := range firsts {
		require.Equal(t, 1, n, id)
	}

	var events, commits, jobRows, jobIDs int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT xmin::text) FROM stripe_events WHERE id LIKE 'evt\_%' AND id <> 'evt_block'`).Scan(&events, &commits))
	require.Equal(t, 10, events)
	require.Equal(t, 1, commits, "the ten queued events share one transaction")
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT args->>'event_id') FROM river_job WHERE kind = 'stripe_event'`).Scan(&jobRows, &jobIDs))
	require.Equal(t, 11, jobRows)
	require.Equal(t, 11, jobIDs)
}

// An event Postgres cannot store fails only its own caller: the rest of its batch is stored.
// One kind has a payload jsonb refuses (a 400 for Stripe); the other an id too long for the
// primary key's index (a 500, which Stripe retries).
func TestEventWriterIsolatesABadEvent(t *testing.T) {
	t.Parallel()
	random := make([]byte, 6000)
	_, _ = rand.Read(random)
	longID := "evt_" + hex.EncodeToString(random) // past btree's 2704-byte limit even compressed
	for _, tc := range []struct {
		name string
		bad  *gpubroker.WebhookEvent
		is   func(error) bool
	}{
		{"payload", testEvent("evt_bad", `{"text":"\u0000"}`), postgres.InvalidInput}, // jsonb refuses NUL: 22P05
		{"id", testEvent(longID, `{}`), func(err error) bool { return !postgres.InvalidInput(err) && !postgres.Unavailable(err) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := testdb.New(t)
			w := postgres.NewEventWriter(pool)
			release, blocked := blockWriter(t, pool, w, "evt_block")
			evs := []*gpubroker.WebhookEvent{testEvent("evt_a", `{"ok":true}`), tc.bad, testEvent("evt_b", `{"ok":true}`)}
			res := queueEvents(t, w, evs, 0)
			release()
			require.NoError(t, (<-blocked).err)
			for range evs {
				r := <-res
				if r.id == tc.bad.ID {
					require.Error(t, r.err)
					require.True(t, tc.is(r.err), "the wrong kind of error: %v", r.err)
					continue
				}
				require.NoError(t, r.err, r.id)
				require.True(t, r.inserted, r.id)
			}
			rows, err := pool.Query(ctx, `SELECT e.id FROM stripe_events e JOIN river_job j ON j.args->>'event_id' = e.id ORDER BY e.id`)
			require.NoError(t, err)
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Equal(t, []string{"evt_a", "evt_b", "evt_block"}, ids)
		})
	}
}

// Many callers over shared and repeated ids, all at once, through two writers (two API
// processes, whose statements run side by side): each id is stored once with one job, and
// exactly one of its callers hears it was new.
func TestEventWriterConcurrentRedeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	writers := []*postgres.EventWriter{postgres.NewEventWriter(pool), postgres.NewEventWriter(pool)}
	const callers, ids, copies = 32, 200, 3
	var (
		mu  sync.Mutex
		new = map[string]int{}
		wg  sync.WaitGroup
	)
	for c := range callers {
		wg.Go(func() {
			for k := c; k < ids*copies; k += callers {
				id := fmt.Sprintf("evt_%03d", k%ids)
				ins, err := writers[k%2].Insert(ctx, testEvent(id, `{}`), jobs.StripeEventArgs{EventID: id})
				if err != nil {
					t.Error(err)
					return
				}
				if ins {
					mu.Lock()
					new[id]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	require.Len(t, new, ids)
	for id, n := range new {
		require.Equal(t, 1, n, id)
	}
	var events, jobRows, jobIDs int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM stripe_events), count(*), count(DISTINCT args->>'event_id') FROM river_job`).Scan(&events, &jobRows, &jobIDs))
	require.Equal(t, []int{ids, ids, ids}, []int{events, jobRows, jobIDs})
}

// A caller that stops waiting gets its context's error; its event is still stored with the
// batch it joined, so Stripe's redelivery is a duplicate, not a second job.
func TestEventWriterCallerGivesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	w := postgres.NewEventWriter(pool)
	release, blocked := blockWriter(t, pool, w, "evt_block")
	cctx, cancel := context.WithCancel(ctx)
	res := make(chan insertResult, 1)
	insertAsync(cctx, w, testEvent("evt_gone", `{}`), res)
	waitFor(t, "the event to queue", func() bool {
		return w.Queued() == 1
	})
	cancel()
	require.ErrorIs(t, (<-res).err, context.Canceled)
	release()
	require.NoError(t, (<-blocked).err)
	waitFor(t, "the abandoned event to be stored", func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE args->>'event_id' = 'evt_gone'`).Scan(&n))
		return n == 1
	})
	ins, err := w.Insert(ctx, testEvent("evt_gone", `{}`), jobs.StripeEventArgs{EventID: "evt_gone"})
	require.NoError(t, err)
	require.False(t, ins)
}

// Two processes' batches holding the same redelivered events in opposite orders both commit:
// rows are inserted in id order, so neither waits on a row the other will wait behind.
func TestEventWritersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	w1, w2 := postgres.NewEventWriter(pool), postgres.NewEventWriter(pool)
	release1, blocked1 := blockWriter(t, pool, w1, "evt_block1")
	release2, blocked2 := blockWriter(t, pool, w2, "evt_block2")
	var res []<-chan insertResult
	for _, q := range []struct {
		w   *postgres.EventWriter
		ids []string
	}{{w1, []string{"evt_a", "evt_b", "evt_c"}}, {w2, []string{"evt_c", "evt_b", "evt_a"}}} {
		for i, id := range q.ids { // one at a time, so the queue holds them in this order
			res = append(res, queueEvents(t, q.w, []*gpubroker.WebhookEvent{testEvent(id, `{}`)}, i))
		}
	}
	release1()
	release2()
	require.NoError(t, (<-blocked1).err)
	require.NoError(t, (<-blocked2).err)
	for _, r := range res {
		require.NoError(t, (<-r).err)
	}
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&n))
	require.Equal(t, 5, n)
}

// A batch that panics (here a nil event) fails its callers with an error, and the writer
// goes on storing: it is not left marked as writing with nobody to write.
func TestEventWriterSurvivesAPanic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	w := postgres.NewEventWriter(pool)
	res := make(chan insertResult, 1)
	insertAsync(ctx, w, nil, res)
	select {
	case r := <-res:
		require.ErrorContains(t, r.err, "panic")
	case <-time.After(time.Minute):
		t.Fatal("the panicking insert never returned")
	}
	ictx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ins, err := w.Insert(ictx, testEvent("evt_after", `{}`), jobs.StripeEventArgs{EventID: "evt_after"})
	require.NoError(t, err)
	require.True(t, ins)
}
