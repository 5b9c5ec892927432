package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// CountJobs counts every job still to run, running, retryable, discarded or cancelled, and
// the completed ones of the last hour; a kind whose only jobs completed earlier keeps a row
// (completed 0), so its series stay.
func TestCountJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	for _, j := range []struct {
		kind, state, finalized string
		n                      int
	}{
		{"capture", "completed", "now()", 2},
		{"capture", "completed", "now() - interval '2 hours'", 3},
		{"capture", "discarded", "now() - interval '20 days'", 1},
		{"capture", "available", "NULL", 4},
		{"refund", "retryable", "NULL", 1},
		{"refund", "cancelled", "now() - interval '3 days'", 1},
		{"provision", "completed", "now() - interval '3 days'", 5},
		{"send_email", "scheduled", "NULL", 2},
	} {
		_, err := pool.Exec(ctx, `INSERT INTO river_job (args, kind, queue, max_attempts, state, finalized_at)
			SELECT '{}', $1, 'default', 25, $2::river_job_state, `+j.finalized+` FROM generate_series(1, $3)`, j.kind, j.state, j.n)
		require.NoError(t, err)
	}
	got, err := postgres.CountJobs(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, []postgres.JobCount{
		{Kind: "capture", State: "available", Count: 4},
		{Kind: "capture", State: "completed", Count: 2},
		{Kind: "capture", State: "discarded", Count: 1},
		{Kind: "provision", State: "completed", Count: 0},
		{Kind: "refund", State: "cancelled", Count: 1},
		{Kind: "refund", State: "retryable", Count: 1},
		{Kind: "send_email", State: "scheduled", Count: 2},
	}, got)
}
