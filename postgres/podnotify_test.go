package postgres_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// accountPod is a Pro order's pod, authorized and attached to an account of its own; it
// returns the pod's, order's and account's ids.
func accountPod(t *testing.T, pool *pgxpool.Pool, email string) (podID, orderID, accountID string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		o, id, err := postgres.CreateOrder(ctx, tx, quote(t, "pro", email))
		if err != nil {
			return err
		}
		podID, orderID = id, o.ID
		if _, err := postgres.AuthorizeOrder(ctx, tx, o.ID, "cs_"+o.ID, "pi_"+o.ID, now, now.Add(gpubroker.CardHoldLifetime)); err != nil {
			return err
		}
		a, _, err := postgres.UpsertAccount(ctx, tx, email, "Ada", o.ID)
		if err != nil {
			return err
		}
		accountID = a.ID
		return postgres.AttachOrder(ctx, tx, o.ID, a.ID)
	}))
	return podID, orderID, accountID
}

// startListener runs a PodListener on pool's database until the test ends.
func startListener(t *testing.T, pool *pgxpool.Pool) *postgres.PodListener {
	t.Helper()
	l := postgres.NewPodListener(pool.Config().ConnConfig, slog.New(slog.DiscardHandler))
	l.MinBackoff, l.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

func signalled(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no signal: %s", what)
	}
}

func quiet(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("a signal: %s", what)
	case <-time.After(300 * time.Millisecond):
	}
}

// A change reaches the pod's subscribers when its transaction commits, and never after a
// rollback; another pod's subscribers hear nothing.
func TestPodListenerSignalsCommitsNotRollbacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	podID, _, _ := accountPod(t, pool, "notify@example.com")
	otherID, _, _ := accountPod(t, pool, "other@example.com")
	l := startListener(t, pool)
	changed, stop := l.Subscribe(podID)
	defer stop()
	other, stopOther := l.Subscribe(otherID)
	defer stopOther()
	signalled(t, changed, "listening tells every subscriber to read (changes before it are unseen)")
	signalled(t, other, "listening tells every subscriber to read")

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE pods SET status = 'deploying' WHERE id = $1`, podID)
	require.NoError(t, err)
	quiet(t, changed, "before the commit")
	require.NoError(t, tx.Rollback(ctx))
	quiet(t, changed, "after a rollback")

	_, err = pool.Exec(ctx, `UPDATE pods SET status = 'deploying' WHERE id = $1`, podID)
	require.NoError(t, err)
	signalled(t, changed, "after the commit")
	quiet(t, other, "another pod's subscriber")

	stop()
	_, err = pool.Exec(ctx, `UPDATE pods SET status = 'provisioning' WHERE id = $1`, podID)
	require.NoError(t, err)
	quiet(t, changed, "after the subscription ended")
	require.Zero(t, l.Subscribers()-1, "only the other pod's subscription is left")
}

// Every table the pod JSON reads notifies its pod, and writes it does not show do not.
func TestPodChangesNotify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	podID, orderID, _ := accountPod(t, pool, "tables@example.com")
	l := startListener(t, pool)
	changed, stop := l.Subscribe(podID)
	defer stop()
	signalled(t, changed, "listening")
	for _, c := range []struct {
		what   string
		sql    string
		notify bool
	}{
		{"the reconciler's mark on the order", `UPDATE orders SET reconciled_at = now() WHERE id = $1`, false},
		{"a write that changes nothing", `UPDATE pods SET id = id WHERE order_id = $1`, false},
		{"the account activated", `UPDATE accounts SET status = 'active' WHERE id = (SELECT account_id FROM orders WHERE id = $1)`, true},
		{"the order captured", `UPDATE orders SET status = 'captured' WHERE id = $1`, true},
		{"a payment", `INSERT INTO payments (order_id, kind, payment_intent_id, amount_cents, hours) VALUES ($1, 'order', 'pi_x', 5000, 1)`, true},
		{"a boot step", `INSERT INTO boot_steps (pod_id, step, ok) SELECT id, 'sshd', true FROM pods WHERE order_id = $1`, true},
		{"an extension", `INSERT INTO extensions (pod_id, order_id, hours, amount_cents) SELECT id, order_id, 1, 179 FROM pods WHERE order_id = $1`, true},
		{"an extension paid", `UPDATE extensions SET status = 'paid' WHERE order_id = $1`, true},
		{"a refund planned", `INSERT INTO refunds (payment_id, amount_cents, idempotency_key, reason) SELECT id, 100, 'refund-x-1', 'early_stop' FROM payments WHERE order_id = $1`, true},
		{"a refund made", `UPDATE refunds SET stripe_refund_id = 're_1' WHERE payment_id IN (SELECT id FROM payments WHERE order_id = $1)`, true},
	} {
		_, err := pool.Exec(ctx, c.sql, orderID)
		require.NoError(t, err, c.what)
		if c.notify {
			signalled(t, changed, c.what)
		} else {
			quiet(t, changed, c.what)
		}
	}
}

// After its connection is killed the listener connects again and tells every subscriber to
// read (it missed what was sent meanwhile), then delivers changes again.
func TestPodListenerRecoversLostConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	podID, _, _ := accountPod(t, pool, "recover@example.com")
	l := startListener(t, pool)
	changed, stop := l.Subscribe(podID)
	defer stop()
	signalled(t, changed, "listening")

	var killed int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, postgres.PodListenerName).Scan(&killed))
	require.Equal(t, 1, killed, "one listening connection, not from the pool")
	signalled(t, changed, "listening again after the connection was killed")

	_, err := pool.Exec(ctx, `UPDATE pods SET status = 'deploying' WHERE id = $1`, podID)
	require.NoError(t, err)
	signalled(t, changed, "a change after the reconnection")
}
