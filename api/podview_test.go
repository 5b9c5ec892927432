package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

type testPod struct {
	id, orderID, accountID, session string
}

// paidPod is a Pro order of hours of an A100 in us-east ($1.79/h, $49 fee: $49 + hours ×
// $1.79), captured and in the ledger, whose pod has been running for ran, owned by a
// signed-in, active account.
func (ts *testServer) paidPod(email string, hours int, ran time.Duration) testPod {
	ts.t.Helper()
	p := ts.authorizedPod(email, hours)
	ctx := context.Background()
	now := time.Now()
	require.NoError(ts.t, postgres.Tx(ctx, ts.pool, func(tx pgx.Tx) error {
		if _, err := postgres.MoveOrder(ctx, tx, p.orderID, gpubroker.OrderAuthorized, gpubroker.OrderCaptured, now.Add(-ran)); err != nil {
			return err
		}
		o, err := postgres.GetOrder(ctx, tx, p.orderID)
		if err != nil {
			return err
		}
		if err := postgres.RecordPayment(ctx, tx, o.ID, gpubroker.PaymentOrder, *o.PaymentIntentID, o.AmountCents, o.Hours, o.Currency, now.Add(-ran)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE pods SET status = 'running', started_at = $2, ends_at = $2::timestamptz + make_interval(hours => hours) WHERE id = $1`, p.id, now.Add(-ran))
		return err
	}))
	return p
}

// authorizedPod is a Pro order whose card is authorized and whose pod waits for Deploy, owned
// by a signed-in, active account.
func (ts *testServer) authorizedPod(email string, hours int) testPod {
	ts.t.Helper()
	p := testPod{session: ts.signIn(email)}
	ctx := context.Background()
	q, err := ts.s.Catalog.Quote(gpubroker.OrderRequest{Email: email, Name: "Ada", Plan: "pro", Template: "developer", GPU: "a100", Region: "us-east", Hours: hours})
	require.NoError(ts.t, err)
	now := time.Now()
	require.NoError(ts.t, postgres.Tx(ctx, ts.pool, func(tx pgx.Tx) error {
		o, podID, err := postgres.CreateOrder(ctx, tx, q)
		if err != nil {
			return err
		}
		p.id, p.orderID = podID, o.ID
		if _, err := postgres.AuthorizeOrder(ctx, tx, o.ID, "cs_test_"+o.ID, "pi_"+o.ID, now, now.Add(gpubroker.CardHoldLifetime)); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `UPDATE accounts SET status = 'active' WHERE email = $1 RETURNING id`, email).Scan(&p.accountID); err != nil {
			return err
		}
		return postgres.AttachOrder(ctx, tx, o.ID, p.accountID)
	}))
	return p
}

func (ts *testServer) pod(p testPod) map[string]any {
	ts.t.Helper()
	code, out := ts.call("GET", "/api/pods/"+p.id, nil, p.session)
	require.Equal(ts.t, http.StatusOK, code, out)
	return out
}

// The pod JSON says what the dashboard shows, so the page decides nothing: whether Deploy may
// be pressed and why not, what Stop would refund now (by the rule the terminate request plans
// with), what is owed and not yet paid back, and how many hours may still be bought.
func TestPodJSONCarriesTheServersDecisions(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()

	// Deploy: allowed for an active account's authorized hold; refused, with the reason the
	// deploy request gives, otherwise.
	a := ts.authorizedPod("deploy@example.com", 1)
	pod := ts.pod(a)
	require.Nil(t, pod["deploy_blocked"])
	require.Contains(t, pod, "deploy_blocked")
	require.EqualValues(t, 0, pod["extendable_hours"], "not running")
	require.EqualValues(t, 0, pod["refund_if_stopped_cents"])
	require.EqualValues(t, 0, pod["refund_due_cents"])
	require.EqualValues(t, 4900, pod["plan_fee_cents"])
	_, err := ts.pool.Exec(ctx, `UPDATE accounts SET status = 'pending' WHERE id = $1`, a.accountID)
	require.NoError(t, err)
	blocked := ts.pod(a)["deploy_blocked"].(map[string]any)
	require.Equal(t, "account_inactive", blocked["reason"])
	require.NotEmpty(t, blocked["message"])
	code, res := ts.call("POST", "/api/pods/"+a.id+"/deploy", nil, a.session)
	require.Equal(t, http.StatusForbidden, code)
	require.Equal(t, blocked["reason"], res["error"], "the reason is the deploy request's")
	_, err = ts.pool.Exec(ctx, `UPDATE accounts SET status = 'active' WHERE id = $1`, a.accountID)
	require.NoError(t, err)
	_, err = ts.pool.Exec(ctx, `UPDATE orders SET status = 'released' WHERE id = $1`, a.orderID)
	require.NoError(t, err)
	blocked = ts.pod(a)["deploy_blocked"].(map[string]any)
	require.Equal(t, "hold_released", blocked["reason"])
	code, res = ts.call("POST", "/api/pods/"+a.id+"/deploy", nil, a.session)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, blocked["reason"], res["error"])

	// Running 10 minutes (less 30 s) of 3 hours: Stop gives back 170 minutes × $1.79 / 60 =
	// $5.07 (the worked example); 165 more hours may be bought.
	p := ts.paidPod("run@example.com", 3, 10*time.Minute-30*time.Second)
	pod = ts.pod(p)
	require.Equal(t, "running", pod["status"])
	require.Equal(t, "running", pod["deploy_blocked"].(map[string]any)["reason"])
	require.EqualValues(t, 507, pod["refund_if_stopped_cents"])
	require.EqualValues(t, 170, pod["refund_if_stopped_minutes"])
	require.EqualValues(t, 0, pod["refund_due_cents"])
	require.EqualValues(t, 165, pod["extendable_hours"])
	require.EqualValues(t, 4900, pod["plan_fee_cents"])
	// The same list through GET /api/me.
	code, me := ts.call("GET", "/api/me", nil, p.session)
	require.Equal(t, http.StatusOK, code)
	require.EqualValues(t, 507, me["pods"].([]any)[0].(map[string]any)["refund_if_stopped_cents"])

	// An open extension checkout counts against the plan's limit, as the extend request counts
	// it.
	code, res = ts.call("POST", "/api/pods/"+p.id+"/extend", map[string]any{"hours": 5}, p.session)
	require.Equal(t, http.StatusCreated, code, res)
	pod = ts.pod(p)
	require.EqualValues(t, 160, pod["extendable_hours"])
	require.EqualValues(t, 507, pod["refund_if_stopped_cents"], "an unpaid extension refunds nothing")

	// Stop: the refund planned is the one shown, and it is due until Stripe has made it.
	code, _ = ts.call("POST", "/api/pods/"+p.id+"/terminate", nil, p.session)
	require.Equal(t, http.StatusAccepted, code)
	var planned int64
	require.NoError(t, ts.pool.QueryRow(ctx, `SELECT sum(amount_cents) FROM refunds WHERE pod_id = $1`, p.id).Scan(&planned))
	require.EqualValues(t, 507, planned, "Stop refunds what the pod said it would")
	pod = ts.pod(p)
	require.Equal(t, "terminating", pod["status"])
	require.EqualValues(t, 507, pod["refund_due_cents"])
	require.EqualValues(t, 0, pod["refund_if_stopped_cents"])
	require.EqualValues(t, 0, pod["extendable_hours"])
	_, err = ts.pool.Exec(ctx, `UPDATE refunds SET stripe_refund_id = 're_test', refunded_at = now() WHERE pod_id = $1`, p.id)
	require.NoError(t, err)
	pod = ts.pod(p)
	require.EqualValues(t, 0, pod["refund_due_cents"])
	require.EqualValues(t, 507, pod["refunded_cents"])

	// A pod that died: its refund is due from the moment its job is queued, before the job has
	// planned it (the amount by the same rule, to the first check that found it dead).
	d := ts.paidPod("died@example.com", 3, 70*time.Minute-30*time.Second)
	stopped := time.Now()
	_, err = ts.pool.Exec(ctx, `UPDATE pods SET status = 'failed', terminated_at = $2 WHERE id = $1`, d.id, stopped)
	require.NoError(t, err)
	require.EqualValues(t, 0, ts.pod(d)["refund_due_cents"], "no refund job: nothing due")
	require.NoError(t, postgres.Tx(ctx, ts.pool, func(tx pgx.Tx) error {
		_, err := ts.s.Jobs.InsertTx(ctx, tx, tasks.UnusedHoursRefundArgs{PodID: d.id, Reason: gpubroker.RefundPodDied, StoppedAt: stopped}, nil)
		return err
	}))
	pod = ts.pod(d)
	require.EqualValues(t, 328, pod["refund_due_cents"], "110 minutes × $1.79 / 60")
	require.EqualValues(t, 0, pod["refund_if_stopped_cents"])
	// It ran, then died: it did start (issue 25: "could not be started" was said of it too).
	require.Equal(t, "This pod stopped working.", pod["deploy_blocked"].(map[string]any)["message"])

	// A pod that could not start after its capture is refunded in full: due until made.
	f := ts.paidPod("failed@example.com", 2, 0)
	_, err = ts.pool.Exec(ctx, `UPDATE pods SET status = 'failed', started_at = NULL, ends_at = NULL WHERE id = $1`, f.id)
	require.NoError(t, err)
	pod = ts.pod(f)
	require.EqualValues(t, 4900+2*179, pod["refund_due_cents"])
	require.Equal(t, "failed", pod["deploy_blocked"].(map[string]any)["reason"])
	require.Equal(t, "This pod could not be started.", pod["deploy_blocked"].(map[string]any)["message"])
}
