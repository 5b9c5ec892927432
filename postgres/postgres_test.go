package postgres_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
	"gpubroker/site"
)

func quote(t *testing.T, plan, email string) *gpubroker.Quote {
	t.Helper()
	cat, err := site.Catalog()
	require.NoError(t, err)
	gpu, region := "h100", "us-east"
	if plan == "free" {
		gpu, region = "rtx4090", "us-east"
	}
	q, err := cat.Quote(gpubroker.OrderRequest{Email: email, Name: "Ada", Plan: plan, Template: "developer", GPU: gpu, Region: region, Hours: 1})
	require.NoError(t, err)
	return q
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	require.NoError(t, postgres.Migrate(context.Background(), pool, slog.New(slog.DiscardHandler)))
}

func TestOrderLifecycleIsOneWay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now()
	var order *gpubroker.Order
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		order, _, err = postgres.CreateOrder(ctx, tx, quote(t, "pro", "ada@example.com"))
		return err
	}))
	require.Equal(t, int64(4900+299), order.AmountCents)
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		ok, err := postgres.AuthorizeOrder(ctx, tx, order.ID, "cs_1", "pi_1", now, now.Add(gpubroker.CardHoldLifetime))
		require.True(t, ok)
		return err
	}))
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		ok, err := postgres.AuthorizeOrder(ctx, tx, order.ID, "cs_1", "pi_1", now, now.Add(gpubroker.CardHoldLifetime))
		require.False(t, ok, "a second authorization changes nothing")
		require.NoError(t, err)
		ok, err = postgres.MoveOrder(ctx, tx, order.ID, gpubroker.OrderCheckoutPending, gpubroker.OrderExpired, now)
		require.False(t, ok, "an authorized order cannot expire")
		return err
	}))
}

func TestTrialOncePerEmail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	create := func() error {
		return postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
			_, _, err := postgres.CreateOrder(ctx, tx, quote(t, "free", "Bob@Example.com"))
			return err
		})
	}
	require.NoError(t, create())
	err := create()
	require.Equal(t, "trial_used", gpubroker.ErrorReason(err))
}

func TestTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	now := time.Now()
	var secret, expired string
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		a, created, err := postgres.UpsertAccount(ctx, tx, "c@example.com", "C", "")
		require.NoError(t, err)
		require.True(t, created)
		a2, created, err := postgres.UpsertAccount(ctx, tx, "c@example.com", "C2", "")
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, a.ID, a2.ID)
		secret, err = postgres.IssueToken(ctx, tx, a.ID, "activation", now)
		require.NoError(t, err)
		expired, err = postgres.IssueToken(ctx, tx, a.ID, "activation", now.Add(-25*time.Hour))
		return err
	}))
	consume := func(s string) error {
		return postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
			_, err := postgres.ConsumeToken(ctx, tx, s, "activation", now)
			return err
		})
	}
	require.NoError(t, consume(secret))
	require.Equal(t, "token_used", gpubroker.ErrorReason(consume(secret)))
	require.Equal(t, "token_expired", gpubroker.ErrorReason(consume(expired)))
	require.Equal(t, "token_invalid", gpubroker.ErrorReason(consume("nope")))
}

// MovePod refuses a move the transition table does not have before touching the row, moves
// only from the expected status, and applies its typed update in the same statement.
func TestMovePodChecksTheTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	var podID string
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		_, podID, err = postgres.CreateOrder(ctx, tx, quote(t, "pro", "pods@example.com"))
		return err
	}))
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		ok, err := postgres.MovePod(ctx, tx, podID, gpubroker.PodConfigured, gpubroker.PodRunning, gpubroker.PodUpdate{})
		require.ErrorContains(t, err, "configured -> running is not allowed")
		require.False(t, ok)
		ok, err = postgres.MovePod(ctx, tx, podID, gpubroker.PodProvisioning, gpubroker.PodRunning, gpubroker.PodUpdate{})
		require.NoError(t, err)
		require.False(t, ok, "not provisioning: nothing moves")
		now := time.Now().UTC().Truncate(time.Microsecond)
		ok, err = postgres.MovePod(ctx, tx, podID, gpubroker.PodConfigured, gpubroker.PodDeploying, gpubroker.PodUpdate{DeployRequestedAt: &now, Error: gpubroker.Ptr("old")})
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = postgres.MovePod(ctx, tx, podID, gpubroker.PodDeploying, gpubroker.PodDeploying, gpubroker.PodUpdate{Error: gpubroker.Ptr("")})
		require.NoError(t, err)
		require.True(t, ok, "from == to updates while in that status")
		p, err := postgres.GetPod(ctx, tx, podID)
		require.NoError(t, err)
		require.Equal(t, gpubroker.PodDeploying, p.Status)
		require.Nil(t, p.Error, `Error "" clears it`)
		require.True(t, now.Equal(*p.DeployRequestedAt))
		return nil
	}))
}
