package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"gpubroker/feedback"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

func TestFeedbackStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := &postgres.FeedbackStore{Pool: pool}
	count := func(sql string) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, sql).Scan(&n))
		return n
	}
	bounce := feedback.Feedback{ID: "fb-1", Kind: feedback.KindBounce, BounceType: feedback.BouncePermanent, Recipients: []string{"gone@example.com"}}
	complaint := feedback.Feedback{ID: "fb-2", Kind: feedback.KindComplaint, Recipients: []string{"angry@example.com"}}
	transient := feedback.Feedback{ID: "fb-3", Kind: feedback.KindBounce, BounceType: feedback.BounceTransient, Recipients: []string{"full@example.com"}}
	for _, f := range []feedback.Feedback{bounce, complaint, transient, bounce, complaint} { // the last two are redeliveries
		require.NoError(t, store.Apply(ctx, f))
	}
	require.Equal(t, 3, count(`SELECT count(*) FROM email_feedback`))
	require.Equal(t, 2, count(`SELECT count(*) FROM suppressions`))
	require.Equal(t, 2, count(`SELECT count(*) FROM audit_events WHERE action = 'email.suppressed'`))
	for addr, want := range map[string]bool{"gone@example.com": true, "angry@example.com": true, "full@example.com": false} {
		reason, err := postgres.Suppressed(ctx, pool, addr)
		require.NoError(t, err)
		require.Equal(t, want, reason != "", addr)
	}
}
