package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/jobs"
	"gpubroker/postgres"
)

type uniqueArgs struct{}

func (uniqueArgs) Kind() string { return "unique_test" }
func (uniqueArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// The event and its job are stored together, once; the insert wakes River's workers.
func TestInsertStripeEvent(t *testing.T) {
	ctx := context.Background()
	pool, url := testdb.NewWithURL(t)
	listener, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer listener.Close(ctx)
	_, err = listener.Exec(ctx, `LISTEN "public.river_insert"`)
	require.NoError(t, err)

	ev := &gpubroker.WebhookEvent{ID: "evt_1", Type: "checkout.session.completed", ObjectID: "cs_1",
		ClientReferenceID: "6f1c2a9e-3b7d-4c2a-8e5f-0123456789ab", Payload: []byte(`{"id":"evt_1"}`)}
	inserted, err := postgres.InsertStripeEvent(ctx, pool, ev, jobs.StripeEventArgs{EventID: ev.ID})
	require.NoError(t, err)
	require.True(t, inserted)

	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wait)
	require.NoError(t, err)
	require.JSONEq(t, `{"queue":"default"}`, n.Payload)

	// A redelivery stores nothing and enqueues nothing.
	inserted, err = postgres.InsertStripeEvent(ctx, pool, ev, jobs.StripeEventArgs{EventID: ev.ID})
	require.NoError(t, err)
	require.False(t, inserted)

	var kind, queue, state, eventID string
	var priority, maxAttempts, jobsN int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) OVER (), kind, queue, state::text, priority, max_attempts, args->>'event_id' FROM river_job`).
		Scan(&jobsN, &kind, &queue, &state, &priority, &maxAttempts, &eventID))
	require.Equal(t, 1, jobsN)
	require.Equal(t, []any{"stripe_event", river.QueueDefault, "available", river.PriorityDefault, river.MaxAttemptsDefault, "evt_1"},
		[]any{kind, queue, state, priority, maxAttempts, eventID})
	got, err := postgres.GetStripeEvent(ctx, pool, "evt_1")
	require.NoError(t, err)
	require.Equal(t, ev.ClientReferenceID, got.ClientReferenceID)

	// Options the single-statement insert cannot honour are refused, not ignored.
	ev2 := *ev
	ev2.ID = "evt_2"
	_, err = postgres.InsertStripeEvent(ctx, pool, &ev2, uniqueArgs{})
	require.Error(t, err)
}

// Mutant m11 (a webhook batch de-duplicates by object id): Stripe sends several events about one
// object (checkout.session.completed, then checkout.session.async_payment_succeeded or expired
// for the same session). Two distinct events on one object in one batch are both new: each is
// stored with its own job, and neither is taken for a redelivery of the other.
func TestInsertStripeEventsKeepsTwoEventsOfOneObject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	batch := []postgres.EventJob{
		{Event: &gpubroker.WebhookEvent{ID: "evt_a", Type: "checkout.session.completed", ObjectID: "cs_same", Payload: []byte(`{}`)}, Job: jobs.StripeEventArgs{EventID: "evt_a"}},
		{Event: &gpubroker.WebhookEvent{ID: "evt_b", Type: "checkout.session.async_payment_succeeded", ObjectID: "cs_same", Payload: []byte(`{}`)}, Job: jobs.StripeEventArgs{EventID: "evt_b"}},
	}
	inserted, err := postgres.InsertStripeEvents(ctx, pool, batch)
	require.NoError(t, err)
	require.Equal(t, []bool{true, true}, inserted)

	var events int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM stripe_events WHERE object_id = 'cs_same'`).Scan(&events))
	require.Equal(t, 2, events)
	rows, err := pool.Query(ctx, `SELECT args->>'event_id' FROM river_job WHERE kind = 'stripe_event' ORDER BY 1`)
	require.NoError(t, err)
	jobIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"evt_a", "evt_b"}, jobIDs, "one job per event")
}
