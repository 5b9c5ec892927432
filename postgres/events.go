package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"

	"gpubroker"
)

// InsertStripeEvent stores a verified webhook event under its id and, only when the event is
// new, the River job that processes it, in one statement: one round trip and one commit per
// event (the webhook's floor), both rows or neither. It reports false for an event already
// stored (a redelivery), which the caller acknowledges without a new job.
//
// The job row is written here rather than through River's InsertTx, which would need its own
// transaction around BEGIN, the event, the job and COMMIT: four round trips, three of them
// pure overhead, and most of the webhook's cost under load. River's InsertTx stays the way
// every other job is enqueued; this one honours the kind, queue, priority and max attempts of
// job (its InsertOpts over River's defaults) and refuses options it cannot apply (unique,
// scheduled, pending, tags), so a later change to the kind's options fails loudly instead of
// being ignored. The rest of the row (state available, scheduled now) is River's column
// defaults. Inserts are announced to River's workers as River does (see notifyRiverInsert).
func InsertStripeEvent(ctx context.Context, q Querier, e *gpubroker.WebhookEvent, job river.JobArgs) (bool, error) {
	var opts river.InsertOpts
	if o, ok := job.(river.JobArgsWithInsertOpts); ok {
		opts = o.InsertOpts()
	}
	u := opts.UniqueOpts
	if u.ByArgs || u.ByPeriod != 0 || u.ByQueue || len(u.ByState) > 0 || u.ExcludeKind || !opts.ScheduledAt.IsZero() || opts.Pending || len(opts.Tags) > 0 || len(opts.Metadata) > 0 {
		return false, fmt.Errorf("postgres: job %s has insert options InsertStripeEvent cannot apply", job.Kind())
	}
	args, err := json.Marshal(job)
	if err != nil {
		return false, err
	}
	queue := cmp.Or(opts.Queue, river.QueueDefault)
	tag, err := q.Exec(ctx, `WITH event AS (
			INSERT INTO stripe_events (id, type, object_id, order_id, payload)
			VALUES ($1, $2, $3, NULLIF($4, '')::uuid, $5) ON CONFLICT (id) DO NOTHING
			RETURNING id)
		INSERT INTO river_job (args, kind, queue, priority, max_attempts)
		SELECT $6, $7, $8, $9, $10 FROM event`,
		e.ID, e.Type, e.ObjectID, uuidOrEmpty(e.ClientReferenceID), e.Payload,
		args, job.Kind(), queue, cmp.Or(opts.Priority, river.PriorityDefault), cmp.Or(opts.MaxAttempts, river.MaxAttemptsDefault))
	if err != nil || tag.RowsAffected() != 1 {
		return false, err
	}
	notifyRiverInsert(ctx, q, queue)
	return true, nil
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
