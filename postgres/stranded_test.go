package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// A pod that never started is settled when its order moves to a final status other than
// captured (refunded, released), in the move's transaction, and is then never a stranded pod;
// a failed pod of a captured order with no refund is one, and so is one stuck provisioning.
// (StrandedPods reads pods_stranded_idx, which leaves the settled pods out.)
func TestStrandedPodsLeaveOutSettledPods(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now()
	stranded := newPaidRental(t, pool, "ada@example.com", "Aa")
	refunded := newPaidRental(t, pool, "bob@example.com", "Bb")
	stuck := newPaidRental(t, pool, "cy@example.com", "Cc")
	var released *gpubroker.Order
	var releasedPod string
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if released, releasedPod, err = postgres.CreateOrder(ctx, tx, quote(t, "pro", "dee@example.com")); err != nil {
			return err
		}
		if _, err := postgres.AuthorizeOrder(ctx, tx, released.ID, "cs_test_Rel1", "pi_3Rel1", now, now.Add(gpubroker.CardHoldLifetime)); err != nil {
			return err
		}
		_, err = postgres.MoveOrder(ctx, tx, released.ID, gpubroker.OrderAuthorized, gpubroker.OrderReleased, now)
		return err
	}))
	for _, p := range []string{stranded.podID, refunded.podID, releasedPod} {
		_, err := pool.Exec(ctx, `UPDATE pods SET status = 'failed', captured_at = $2 WHERE id = $1`, p, now.Add(-time.Hour))
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, `UPDATE pods SET status = 'provisioning', captured_at = $2 WHERE id = $1`, stuck.podID, now.Add(-time.Hour))
	require.NoError(t, err)
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		moved, err := postgres.MoveOrder(ctx, tx, refunded.order.ID, gpubroker.OrderCaptured, gpubroker.OrderRefunded, now)
		require.True(t, moved)
		return err
	}))

	settled := map[string]bool{}
	rows, err := pool.Query(ctx, `SELECT id::text, settled_at IS NOT NULL FROM pods`)
	require.NoError(t, err)
	var id string
	var s bool
	_, err = pgx.ForEachRow(rows, []any{&id, &s}, func() error { settled[id] = s; return nil })
	require.NoError(t, err)
	require.Equal(t, map[string]bool{stranded.podID: false, refunded.podID: true, stuck.podID: false, releasedPod: true}, settled)

	list, err := postgres.StrandedPods(ctx, pool, now.Add(-30*time.Minute))
	require.NoError(t, err)
	got := map[string]gpubroker.PodStatus{}
	for _, p := range list {
		got[p.PodID] = p.Status
	}
	require.Equal(t, map[string]gpubroker.PodStatus{stranded.podID: gpubroker.PodFailed, stuck.podID: gpubroker.PodProvisioning}, got)
	// Not stuck yet: provisioning since an hour ago, the deadline two hours.
	list, err = postgres.StrandedPods(ctx, pool, now.Add(-2*time.Hour))
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, stranded.podID, list[0].PodID)
}
