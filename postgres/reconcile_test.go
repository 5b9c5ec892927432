package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// The reconciler takes the paid orders of the last 35 days not compared since dueBefore: never
// compared first, oldest first (orders_reconcile_idx, migration 023), then the window swept in
// creation order from where the last sweep stopped, starting over at its beginning
// (orders_sweep_idx and reconcile_sweep, migration 029).
func TestOrdersToReconcileOrderAndWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now()
	old := newPaidRental(t, pool, "old@example.com", "Ol")           // created 40 days ago: out of the window
	checked := newPaidRental(t, pool, "checked@example.com", "Ch")   // compared 2 hours ago
	checked2 := newPaidRental(t, pool, "checked2@example.com", "Cx") // compared 3 hours ago
	never := newPaidRental(t, pool, "never@example.com", "Nv")       // never compared
	never2 := newPaidRental(t, pool, "never2@example.com", "Nw")     // never compared, newer
	fresh := newPaidRental(t, pool, "fresh@example.com", "Fr")       // compared since dueBefore
	aged := newPaidRental(t, pool, "aged@example.com", "Ag")         // created 40 days ago, last compared 36 days ago
	month := newPaidRental(t, pool, "month@example.com", "Mo")       // created 34 days ago, last compared 33 days ago
	for id, age := range map[string]time.Duration{old.order.ID: 40 * 24 * time.Hour, checked.order.ID: 48 * time.Hour,
		checked2.order.ID: 24 * time.Hour, never.order.ID: 72 * time.Hour, never2.order.ID: 36 * time.Hour, fresh.order.ID: 96 * time.Hour,
		aged.order.ID: 40 * 24 * time.Hour, month.order.ID: 34 * 24 * time.Hour} {
		_, err := pool.Exec(ctx, `UPDATE orders SET created_at = $2 WHERE id = $1`, id, now.Add(-age))
		require.NoError(t, err)
	}
	require.NoError(t, postgres.MarkReconciled(ctx, pool, checked.order.ID, "", now.Add(-2*time.Hour)))
	require.NoError(t, postgres.MarkReconciled(ctx, pool, checked2.order.ID, "", now.Add(-3*time.Hour)))
	require.NoError(t, postgres.MarkReconciled(ctx, pool, fresh.order.ID, "", now))
	require.NoError(t, postgres.MarkReconciled(ctx, pool, aged.order.ID, "", now.Add(-36*24*time.Hour)))
	require.NoError(t, postgres.MarkReconciled(ctx, pool, month.order.ID, "", now.Add(-33*24*time.Hour)))
	dueBefore := now.Add(-5 * time.Minute)
	ids := func(limit int) []string {
		got, err := postgres.OrdersToReconcile(ctx, pool, dueBefore, limit)
		require.NoError(t, err)
		var out []string
		for _, o := range got {
			out = append(out, o.ID)
		}
		return out
	}
	// Never compared first, then the window swept in creation order.
	require.Equal(t, []string{never.order.ID, never2.order.ID, month.order.ID, checked.order.ID, checked2.order.ID}, ids(10))
	require.Equal(t, []string{never.order.ID, never2.order.ID}, ids(2))
	require.Equal(t, []string{never.order.ID, never2.order.ID, month.order.ID}, ids(3))
	// The sweep goes on from where it stopped, and starts over at the window's beginning.
	require.NoError(t, postgres.AdvanceSweep(ctx, pool, now.Add(-34*24*time.Hour)))
	require.Equal(t, []string{never.order.ID, never2.order.ID, checked.order.ID, checked2.order.ID, month.order.ID}, ids(10))
	require.NoError(t, postgres.AdvanceSweep(ctx, pool, now.Add(-48*time.Hour)))
	require.Equal(t, []string{never.order.ID, never2.order.ID, checked2.order.ID, month.order.ID, checked.order.ID}, ids(10))
	require.Equal(t, []string{never.order.ID, never2.order.ID, checked2.order.ID}, ids(3))
}

// An order that a capture, refund, release or provisioning job is working on (by its pod's id
// or its own) is left out; a scheduled job is not working yet, and other kinds do not count.
func TestOrdersToReconcileLeavesOutBusyOrders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	byPod := newPaidRental(t, pool, "bypod@example.com", "Bp")
	byOrder := newPaidRental(t, pool, "byorder@example.com", "Bo")
	scheduled := newPaidRental(t, pool, "scheduled@example.com", "Sc")
	mail := newPaidRental(t, pool, "mail@example.com", "Ml")
	job := func(kind, state string, args map[string]any) {
		_, err := pool.Exec(ctx, `INSERT INTO river_job (args, kind, queue, max_attempts, state, scheduled_at) VALUES ($1, $2, 'default', 25, $3, now() + interval '1 day')`, args, kind, state)
		require.NoError(t, err)
	}
	job("capture", "running", map[string]any{"pod_id": byPod.podID})
	job("release_hold", "retryable", map[string]any{"order_id": byOrder.order.ID})
	job("release_hold", "scheduled", map[string]any{"order_id": scheduled.order.ID})
	job("send_email", "available", map[string]any{"order_id": mail.order.ID, "pod_id": mail.podID})
	got, err := postgres.OrdersToReconcile(ctx, pool, time.Now(), 10)
	require.NoError(t, err)
	var ids []string
	for _, o := range got {
		ids = append(ids, o.ID)
	}
	require.ElementsMatch(t, []string{scheduled.order.ID, mail.order.ID}, ids)
}
