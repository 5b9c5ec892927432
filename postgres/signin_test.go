package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/migrations"
	"gpubroker/postgres"
)

// A session opened by paying is only for the account that order created, only while it is
// pending, and it stops working once the account is active.
func TestCheckoutSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now()
	var first, second *gpubroker.Order
	var acct *gpubroker.Account
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if first, _, err = postgres.CreateOrder(ctx, tx, quote(t, "pro", "s@example.com")); err != nil {
			return err
		}
		if second, _, err = postgres.CreateOrder(ctx, tx, quote(t, "pro", "s@example.com")); err != nil {
			return err
		}
		// The second order is attached first: it created the account, although it is newer.
		var created bool
		acct, created, err = postgres.UpsertAccount(ctx, tx, "s@example.com", "S", second.ID)
		require.True(t, created)
		if err != nil {
			return err
		}
		again, created, err := postgres.UpsertAccount(ctx, tx, "s@example.com", "S", first.ID)
		require.False(t, created)
		require.Equal(t, acct.ID, again.ID)
		return err
	}))
	open := func(orderID string) (string, bool) {
		var secret string
		var ok bool
		require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
			var err error
			secret, _, ok, err = postgres.CreateCheckoutSession(ctx, tx, acct.ID, orderID, now)
			return err
		}))
		return secret, ok
	}
	_, ok := open(first.ID)
	require.False(t, ok, "the older order did not create the account")
	secret, ok := open(second.ID)
	require.True(t, ok)
	a, err := postgres.SessionAccount(ctx, pool, secret, now)
	require.NoError(t, err)
	require.Equal(t, acct.ID, a.ID)

	// However the account became active, the provisional session no longer works; a session
	// opened by a sign-in link does.
	_, err = pool.Exec(ctx, `UPDATE accounts SET status = 'active' WHERE id = $1`, acct.ID)
	require.NoError(t, err)
	_, err = postgres.SessionAccount(ctx, pool, secret, now)
	require.Equal(t, gpubroker.EUNAUTHORIZED, gpubroker.ErrorCode(err))
	_, ok = open(second.ID)
	require.False(t, ok, "no checkout session for an active account")
	plain, _, err := postgres.CreateSession(ctx, pool, acct.ID, now)
	require.NoError(t, err)
	_, err = postgres.SessionAccount(ctx, pool, plain, now)
	require.NoError(t, err)
}

// Migration 003 re-keys existing trial claims by gpubroker.Mailbox and records the order that
// created each existing account from the audit log.
func TestMigration003(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 2)
	require.NoError(t, err)

	emails := []string{"a+1@gmail.com", "a.1@googlemail.com", "a@gmail.com", "o.ther+x@example.com", "other@example.com", "+x@example.com"}
	orders := map[string]string{}
	for i, email := range emails {
		var id string
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO orders (email, name, plan, template, gpu, region, hours, hourly_cents, amount_cents, status, created_at)
			VALUES ($1, 'A', 'free', 'developer', 'rtx4090', 'us-east', 1, 0, 0, 'free', $2) RETURNING id`, email, time.Now().Add(time.Duration(i)*time.Minute)).Scan(&id))
		_, err := pool.Exec(ctx, `INSERT INTO trial_claims (email, order_id, created_at) VALUES ($1, $2, $3)`, email, id, time.Now().Add(time.Duration(i)*time.Minute))
		require.NoError(t, err)
		orders[email] = id
	}
	var acctID string
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO accounts (email, name) VALUES ('a+1@gmail.com', 'A') RETURNING id`).Scan(&acctID))
	require.NoError(t, postgres.Audit(ctx, pool, postgres.AuditEvent{AccountID: acctID, OrderID: orders["a.1@googlemail.com"], Action: "order.attached"}))
	require.NoError(t, postgres.Audit(ctx, pool, postgres.AuditEvent{AccountID: acctID, OrderID: orders["a+1@gmail.com"], Action: "account.created"}))

	pending, _, err := postgres.CreateSession(ctx, pool, acctID, time.Now())
	require.NoError(t, err)

	_, err = p.UpTo(ctx, 3)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE accounts SET status = 'active' WHERE id = $1`, acctID)
	require.NoError(t, err)
	_, err = postgres.SessionAccount(ctx, pool, pending, time.Now())
	require.Equal(t, gpubroker.EUNAUTHORIZED, gpubroker.ErrorCode(err), "a pending account's old session was opened by paying")
	rows, err := pool.Query(ctx, `SELECT email, mailbox FROM trial_claims ORDER BY created_at`)
	require.NoError(t, err)
	kept := map[string]string{}
	for rows.Next() {
		var email, mailbox string
		require.NoError(t, rows.Scan(&email, &mailbox))
		require.Equal(t, gpubroker.Mailbox(email), mailbox, "SQL and Go agree on %s", email)
		kept[email] = mailbox
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]string{"a+1@gmail.com": "a@gmail.com", "a.1@googlemail.com": "a1@gmail.com", "o.ther+x@example.com": "o.ther@example.com",
		"other@example.com": "other@example.com", "+x@example.com": "@example.com"}, kept, "the first claim on a mailbox stays")
	var createdBy string
	require.NoError(t, pool.QueryRow(ctx, `SELECT created_by_order_id::text FROM accounts WHERE id = $1`, acctID).Scan(&createdBy))
	require.Equal(t, orders["a+1@gmail.com"], createdBy)

	// And back down again.
	_, err = p.DownTo(ctx, 2)
	require.NoError(t, err)
	_, err = p.Up(ctx)
	require.NoError(t, err)
}
