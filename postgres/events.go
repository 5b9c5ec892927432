package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
)

// InsertStripeEvent stores a verified webhook event under its id and, only when the event is
// new, the River job that processes it: InsertStripeEvents with one event.
func InsertStripeEvent(ctx context.Context, q Querier, e *gpubroker.WebhookEvent, job river.JobArgs) (bool, error) {
	inserted, err := InsertStripeEvents(ctx, q, []EventJob{{Event: e, Job: job}})
	if err != nil {
		return false, err
	}
	return inserted[0], nil
}

// EventJob is a verified webhook event and the job that processes it.
type EventJob struct {
	Event *gpubroker.WebhookEvent
	Job   river.JobArgs
}

// InsertStripeEvents stores verified webhook events under their ids and, for each event that
// is new, the River job that processes it, in one statement: one round trip and one commit
// for the lot, each event with its job or neither. inserted[i] is false for an event already
// stored (a redelivery, or a repeat of an earlier event in the same call), which the caller
// acknowledges without a new job.
//
// The job rows are written here rather than through River's InsertTx, which would need its
// own transaction around BEGIN, the event, the job and COMMIT: four round trips, three of them
// pure overhead, and most of the webhook's cost under load. River's InsertTx stays the way
// every other job is enqueued; this one honours each job's kind, queue, priority and max
// attempts (its InsertOpts over River's defaults) and refuses options it cannot apply (unique,
// scheduled, pending, tags), so a later change to the kind's options fails loudly instead of
// being ignored. The rest of the row (state available, scheduled now) is River's column
// defaults. Inserts are announced to River's workers as River does (see notifyRiverInsert).
func InsertStripeEvents(ctx context.Context, q Querier, batch []EventJob) (inserted []bool, err error) {
	n := len(batch)
	var (
		ids, types, objects, orders, queues, kinds = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		payloads, args                             = make([]json.RawMessage, 0, n), make([]json.RawMessage, 0, n)
		priorities, attempts                       = make([]int32, 0, n), make([]int32, 0, n)
		first                                      = make(map[string]int, n) // event id -> its first index in batch
	)
	// Rows go in id order, so two statements sharing redelivered ids take their locks in
	// the same order and cannot deadlock.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(batch[a].Event.ID, batch[b].Event.ID) })
	for _, i := range order {
		e, job := batch[i].Event, batch[i].Job
		if _, seen := first[e.ID]; seen {
			continue
		}
		first[e.ID] = i
		var opts river.InsertOpts
		if o, ok := job.(river.JobArgsWithInsertOpts); ok {
			opts = o.InsertOpts()
		}
		u := opts.UniqueOpts
		if u.ByArgs || u.ByPeriod != 0 || u.ByQueue || len(u.ByState) > 0 || u.ExcludeKind || !opts.ScheduledAt.IsZero() || opts.Pending || len(opts.Tags) > 0 || len(opts.Metadata) > 0 {
			return nil, fmt.Errorf("postgres: job %s has insert options InsertStripeEvents cannot apply", job.Kind())
		}
		a, err := json.Marshal(job)
		if err != nil {
			return nil, err
		}
		ids, types, objects, orders = append(ids, e.ID), append(types, e.Type), append(objects, e.ObjectID), append(orders, uuidOrEmpty(e.ClientReferenceID))
		payloads, args, kinds = append(payloads, e.Payload), append(args, a), append(kinds, job.Kind())
		queues = append(queues, cmp.Or(opts.Queue, river.QueueDefault))
		priorities = append(priorities, int32(cmp.Or(opts.Priority, river.PriorityDefault)))
		attempts = append(attempts, int32(cmp.Or(opts.MaxAttempts, river.MaxAttemptsDefault)))
	}
	if len(ids) == 1 {
		// The common case when events are not arriving together, in the statement that costs
		// the database least: at 1 sender make load measured about a tenth less database CPU
		// per event, and 10-15% more events/s, than with the unnest below for one row.
		tag, err := q.Exec(ctx, `WITH event AS (
				INSERT INTO stripe_events (id, type, object_id, order_id, payload)
				VALUES ($1, $2, $3, NULLIF($4, '')::uuid, $5) ON CONFLICT (id) DO NOTHING
				RETURNING id)
			INSERT INTO river_job (args, kind, queue, priority, max_attempts)
			SELECT $6, $7, $8, $9, $10 FROM event`,
			ids[0], types[0], objects[0], orders[0], payloads[0], args[0], kinds[0], queues[0], priorities[0], attempts[0])
		if err != nil {
			return nil, err
		}
		inserted = make([]bool, n)
		if tag.RowsAffected() == 1 {
			inserted[first[ids[0]]] = true
			notifyRiverInsert(ctx, q, queues[0])
		}
		return inserted, nil
	}
	rows, err := q.Query(ctx, `WITH input AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::text[], $8::text[], $9::int[], $10::int[])
				AS i (id, type, object_id, order_id, payload, args, kind, queue, priority, max_attempts)),
		event AS (
			INSERT INTO stripe_events (id, type, object_id, order_id, payload)
			SELECT id, type, object_id, NULLIF(order_id, '')::uuid, payload FROM input
			ON CONFLICT (id) DO NOTHING
			RETURNING id),
		job AS (
			INSERT INTO river_job (args, kind, queue, priority, max_attempts)
			SELECT i.args, i.kind, i.queue, i.priority, i.max_attempts FROM input i JOIN event USING (id))
		SELECT id FROM event`,
		ids, types, objects, orders, payloads, args, kinds, queues, priorities, attempts)
	if err != nil {
		return nil, err
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	inserted = make([]bool, n)
	for _, id := range stored {
		inserted[first[id]] = true
	}
	for i, queue := range queues {
		if len(stored) > 0 && !slices.Contains(queues[:i], queue) {
			notifyRiverInsert(ctx, q, queue)
		}
	}
	return inserted, nil
}

// riverNotified is when (unix nanoseconds) the last insert notification went out. It is per
// process, as a process has one database (tests running several only poll sooner for it).
var riverNotified atomic.Int64

// notifyRiverInsert wakes River's workers for queue, as River's own InsertTx does: a
// notification on River's insert topic, at most one per riverNotifyEvery (River's default
// FetchCooldown and the limit its insert-only client applies), so a burst costs a handful
// of notifications and commits stay concurrent (NOTIFY serialises the commits that send one).
// Workers also poll, so a failed notification only delays a job; it is not an error.
func notifyRiverInsert(ctx context.Context, q Querier, queue string) {
	now, last := time.Now().UnixNano(), riverNotified.Load()
	if now-last < int64(riverNotifyEvery) || !riverNotified.CompareAndSwap(last, now) {
		return
	}
	_, _ = q.Exec(ctx, `SELECT pg_notify(current_schema() || '.river_insert', json_build_object('queue', $1::text)::text)`, queue)
}

const riverNotifyEvery = 100 * time.Millisecond

// GetStripeEvent returns a stored event.
func GetStripeEvent(ctx context.Context, q Querier, id string) (*gpubroker.WebhookEvent, error) {
	var e gpubroker.WebhookEvent
	var orderID *string
	err := q.QueryRow(ctx, `SELECT id, type, object_id, order_id::text, payload FROM stripe_events WHERE id = $1`, id).
		Scan(&e.ID, &e.Type, &e.ObjectID, &orderID, &e.Payload)
	if orderID != nil {
		e.ClientReferenceID = *orderID
	}
	return &e, notFound(err, "stripe event")
}

// MarkStripeEventProcessed records when an event's job finished.
func MarkStripeEventProcessed(ctx context.Context, q Querier, id string, now time.Time) error {
	_, err := q.Exec(ctx, `UPDATE stripe_events SET processed_at = $2 WHERE id = $1`, id, now)
	return err
}

// uuidOrEmpty keeps only a well-formed uuid, so a foreign client_reference_id cannot make the
// insert fail.
func uuidOrEmpty(s string) string {
	if len(s) != 36 {
		return ""
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return ""
			}
		case (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'):
		default:
			return ""
		}
	}
	return s
}
