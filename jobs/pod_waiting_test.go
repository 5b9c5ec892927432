package jobs

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/postgres"
)

// Issue 25 item 7: a returning customer whose new paid order lands on their existing, active
// account is told, once, that the pod is waiting and by when to deploy it (the hold's release
// time, the pod JSON's deploy_by), with a link to the dashboard. A new account gets its
// activation email only.
func TestReturningCustomerIsToldThePodIsWaiting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const email = "returning@example.com"
	b.authorized(t, email) // the first order made the account and it was activated

	orderID, podID := b.order(t, "pro", email)
	cs := b.paidOrderSession(t, orderID)
	b.sessionCompleted(t, cs.ID)

	o, err := postgres.GetOrder(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.NotNil(t, o.HoldExpiresAt)
	deployBy := b.deps.Clock.HoldReleaseAt(*o.HoldExpiresAt).UTC().Format("Mon 2 Jan 2006, 15:04 UTC")

	var n int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM emails WHERE to_email = $1 AND dedupe_key LIKE '%'||$2||'%'`, email, orderID).Scan(&n))
	require.Equal(t, 1, n, "one email for the returning customer's new order")
	var kind, subject, text, html string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT kind, subject, text_body, html_body FROM emails WHERE to_email = $1 AND dedupe_key LIKE '%'||$2||'%'`, email, orderID).Scan(&kind, &subject, &text, &html))
	require.Equal(t, "pod_waiting", kind)
	require.Contains(t, subject, "Your pod is waiting")
	require.Contains(t, text, "deploy it by "+deployBy)
	require.Contains(t, text, b.deps.PublicURL+"/dashboard/")
	require.Contains(t, text, "Pod:        "+podID+"\n")
	require.Contains(t, html, b.deps.PublicURL+"/dashboard/")
	require.NotContains(t, text, "activat")

	// Redelivered: the webhook again under a new event id, and the attachment redone.
	ev := &gpubroker.WebhookEvent{ID: "evt_again_" + cs.ID, Type: "checkout.session.completed", ObjectID: cs.ID, Payload: []byte(`{}`)}
	inserted, err := postgres.InsertStripeEvent(ctx, b.pool, ev, StripeEventArgs{EventID: ev.ID})
	require.NoError(t, err)
	require.True(t, inserted)
	require.Equal(t, river.EventKindJobCompleted, work(t, b, &StripeEventWorker{d: b.deps}, StripeEventArgs{EventID: ev.ID}).EventKind)
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		o, err := postgres.GetOrderForUpdate(ctx, tx, orderID)
		if err != nil {
			return err
		}
		return attachAccount(ctx, tx, b.inserter, b.deps, o)
	}))
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM emails WHERE to_email = $1 AND dedupe_key LIKE '%'||$2||'%'`, email, orderID).Scan(&n))
	require.Equal(t, 1, n, "exactly one email per order, redelivered or not")
}

// A new customer's paid order creates a pending account: the activation email alone.
func TestNewCustomerGetsTheActivationEmailOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	const email = "first-time@example.com"
	orderID, _ := b.order(t, "pro", email)
	cs := b.paidOrderSession(t, orderID)
	b.sessionCompleted(t, cs.ID)
	rows, err := b.pool.Query(ctx, `SELECT kind FROM emails WHERE to_email = $1 ORDER BY id`, email)
	require.NoError(t, err)
	kinds, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"activation"}, kinds)
}
