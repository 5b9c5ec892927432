package chaos

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// retriedKinds are the finished jobs ops retry after the run: every job that moves money,
// launches or ends an instance, or sends an email. Each must see that its work is done.
var retriedKinds = []string{"capture", "release_hold", "refund", "unused_hours_refund", "send_email", "stripe_event", "provision", "terminate",
	"terminate_instance", "create_account", "pod_ending"}

// opsRetry presses Retry, as ops do in the River UI, on every completed job of those kinds, and
// returns how many.
func (r *run) opsRetry(ctx context.Context) (int, error) {
	client, err := river.NewClient[pgx.Tx](riverpgxv5.New(r.pool), &river.Config{})
	if err != nil {
		return 0, err
	}
	rows, err := r.pool.Query(ctx, `SELECT id FROM river_job WHERE state = 'completed' AND kind = ANY($1)`, retriedKinds)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, err := client.JobRetry(ctx, id); err != nil {
			return 0, fmt.Errorf("retrying job %d: %w", id, err)
		}
	}
	r.logf("ops retried %d finished jobs from the River UI", len(ids))
	return len(ids), nil
}
