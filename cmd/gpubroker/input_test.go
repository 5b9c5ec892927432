package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/gpu"
	"gpubroker/gpu/sim"
	"gpubroker/jobs"
)

// Another integration on the same Stripe account creates its own Checkout Sessions, with a
// client_reference_id that is not one of our order ids (not even a uuid). Its completed event
// is "not ours": the job logs it and completes on its first attempt, creating nothing.
func TestForeignCheckoutSessionIsNotOurs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	sess, err := e.m.JobDeps.Payments.CreateCheckout(ctx, gpubroker.CheckoutParams{
		OrderID: "crm-order-4711", Email: "someone@example.com", Currency: gpubroker.Currency,
		LineItems:  []gpubroker.LineItem{{Name: "Another product", UnitAmountCent: 1500, Quantity: 1}},
		SuccessURL: e.url + "/elsewhere/", CancelURL: e.url + "/elsewhere/", ExpiresAt: time.Now().Add(31 * time.Minute),
		IdempotencyKey: "crm-checkout-4711",
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusSeeOther, e.pay(sess.ID, "4242424242424242").StatusCode)

	var state string
	var attempt, errs int
	e.eventually("the stripe_event job to finish or fail", func() bool {
		err := e.m.Pool.QueryRow(ctx, `SELECT state, attempt, coalesce(array_length(errors, 1), 0) FROM river_job
			WHERE kind = 'stripe_event' AND args->>'event_id' IN (SELECT id FROM stripe_events WHERE type = 'checkout.session.completed')`).
			Scan(&state, &attempt, &errs)
		return err == nil && (state == "completed" || errs > 0)
	})
	require.Equal(t, "completed", state, "attempt %d, %d errors", attempt, errs)
	require.Equal(t, 1, attempt)
	require.Equal(t, 0, errs)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM stripe_events WHERE processed_at IS NOT NULL AND order_id IS NULL`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM orders`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM accounts`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM emails`))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM audit_events`))
}

// The cheapest offer is at a provider whose configuration is wrong (Lambda's
// object-does-not-exist for a deleted LAMBDA_SSH_KEY_NAME): the pod still runs, at the next
// provider, and ops can count the fault in the audit log.
func TestMisconfiguredProviderFailsOver(t *testing.T) {
	t.Parallel()
	lambdaSim := sim.New(sim.Options{Name: "lambda", Offers: []gpu.Offer{
		{ID: "gpu_1x_a100_sxm4_80gb@us-east-1", GPU: "a100", Region: "us-east", GPUCount: 1, CentsPerHour: 120, Available: true},
	}})
	lambdaSim.FailNext(sim.OpLaunch, fmt.Errorf("lambda: launch with SSH key %q: HTTP 404 global/object-does-not-exist: Specified SSH key does not exist.: %w", "deleted-key", gpu.ErrProviderConfig), 1000)
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, tune: func(d *jobs.Deps) {
		standIn, _ := d.Broker.Provider("sim")
		b := gpu.NewBroker(lambdaSim, standIn)
		b.Logger = d.Logger
		d.Broker = b
	}})
	c, podID := e.signUp("misconfigured@example.com")
	e.deploy(c, podID)
	p := e.waitPod(c, podID, "running")
	require.Equal(t, "sim", p.Provider)
	require.Equal(t, 0, lambdaSim.Launches())
	require.Equal(t, 1, e.m.Sim.Launches())
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE action = 'provider.config_error'
		AND pod_id = $1 AND detail->>'provider' = 'lambda' AND detail->>'error' LIKE '%object-does-not-exist%'`, podID))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM orders WHERE status = 'refunded'`))
}
