package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// ownRental gives a paid rental's order and pod to a new account and returns its id.
func ownRental(t *testing.T, pool *pgxpool.Pool, r *paidRental) string {
	t.Helper()
	ctx := context.Background()
	var acct *gpubroker.Account
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		acct, _, err = postgres.UpsertAccount(ctx, tx, r.order.Email, "Ada", r.order.ID)
		if err != nil {
			return err
		}
		return postgres.AttachOrder(ctx, tx, r.order.ID, acct.ID)
	}))
	return acct.ID
}

// Issue 15.6: one receipt per payment of the account (the order's capture, each paid
// extension), newest first, with what Stripe has refunded of each (a refund only planned is not
// money back yet); the pod's hours and payments add its extensions up.
func TestAccountReceipts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	r := newPaidRental(t, pool, "receipts@example.com", "r1")
	acct := ownRental(t, pool, r)
	other := ownRental(t, pool, newPaidRental(t, pool, "other@example.com", "r2"))
	_, err := pool.Exec(ctx, `UPDATE payments SET captured_at = captured_at - interval '1 hour' WHERE id = $1`, r.orderPay)
	require.NoError(t, err)

	list, err := postgres.ListAccountReceipts(ctx, pool, acct)
	require.NoError(t, err)
	require.Len(t, list, 2)
	ext, order := list[0], list[1]
	require.Equal(t, r.extPay, ext.ID, "newest first")
	require.Equal(t, gpubroker.PaymentExtension, ext.Kind)
	require.Equal(t, 2, ext.Hours)
	require.EqualValues(t, 358, ext.AmountCents)
	require.Equal(t, r.orderPay, order.ID)
	require.Equal(t, gpubroker.PaymentOrder, order.Kind)
	require.Equal(t, r.podID, order.PodID)
	require.Equal(t, "pro", order.Plan)
	require.Equal(t, "h100", order.GPU)
	require.Equal(t, "us-east", order.Region)
	require.Equal(t, 1, order.Hours)
	require.EqualValues(t, 299, order.HourlyCents)
	require.EqualValues(t, 4900+299, order.AmountCents)
	require.Equal(t, "usd", order.Currency)
	require.WithinDuration(t, time.Now().Add(-time.Hour), order.PaidAt, time.Minute)
	for _, x := range list {
		require.Zero(t, x.RefundedCents)
	}

	p, err := postgres.GetPod(ctx, pool, r.podID)
	require.NoError(t, err)
	require.Equal(t, 1, p.Hours)
	require.Equal(t, 3, p.HoursTotal, "the order's hour and the paid extension's 2")
	require.EqualValues(t, 4900+299+358, p.PaidCents)

	// A refund counts once Stripe made it.
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		return postgres.PlanRefunds(ctx, tx, r.podID, gpubroker.RefundEarlyStop, []gpubroker.RefundShare{{PaymentID: r.extPay, AmountCents: 179}})
	}))
	list, err = postgres.ListAccountReceipts(ctx, pool, acct)
	require.NoError(t, err)
	require.Zero(t, list[0].RefundedCents, "planned, not made")
	refunds, err := postgres.PodRefunds(ctx, pool, r.podID, gpubroker.RefundEarlyStop)
	require.NoError(t, err)
	require.NoError(t, postgres.MarkRefundMade(ctx, pool, refunds[0].ID, "re_1", time.Now()))
	list, err = postgres.ListAccountReceipts(ctx, pool, acct)
	require.NoError(t, err)
	require.EqualValues(t, 179, list[0].RefundedCents)
	require.Zero(t, list[1].RefundedCents)

	// Only the owner finds a payment's PaymentIntent.
	pi, err := postgres.AccountPaymentIntent(ctx, pool, acct, r.orderPay)
	require.NoError(t, err)
	require.Equal(t, r.pi, pi)
	_, err = postgres.AccountPaymentIntent(ctx, pool, other, r.orderPay)
	require.Equal(t, gpubroker.ENOTFOUND, gpubroker.ErrorCode(err))
	_, err = postgres.AccountPaymentIntent(ctx, pool, acct, "not-a-uuid")
	require.Equal(t, gpubroker.ENOTFOUND, gpubroker.ErrorCode(err))
	others, err := postgres.ListAccountReceipts(ctx, pool, other)
	require.NoError(t, err)
	require.Len(t, others, 2)
	require.NotContains(t, []string{others[0].ID, others[1].ID}, r.orderPay)
}

// An extension paid after its pod stopped extends nothing (it is refunded in full): it is a
// payment, with its receipt, but no hours.
func TestLateExtensionAddsNoHours(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	r := newPaidRental(t, pool, "late@example.com", "r3")
	require.NoError(t, postgres.Tx(ctx, pool, func(tx pgx.Tx) error {
		return postgres.PlanRefunds(ctx, tx, r.podID, gpubroker.RefundLateExtension, []gpubroker.RefundShare{{PaymentID: r.extPay, AmountCents: 358}})
	}))
	p, err := postgres.GetPod(ctx, pool, r.podID)
	require.NoError(t, err)
	require.Equal(t, 1, p.HoursTotal)
	require.EqualValues(t, 4900+299+358, p.PaidCents, "paid, and refunded (refunded_cents)")
	list, err := postgres.ListAccountReceipts(ctx, pool, ownRental(t, pool, r))
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, x := range list {
		if x.ID == r.extPay {
			require.Equal(t, gpubroker.RefundLateExtension, x.Refused, "its receipt says it bought nothing")
		} else {
			require.Empty(t, x.Refused)
		}
	}
}
