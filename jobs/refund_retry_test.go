package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing/stripesim"
	"gpubroker/postgres"
)

// Mutant m3 (an early-stop refund retried without looking for the refund already made). Stripe
// made the refund of a pod stopped 30 minutes in, but its answer was lost; the retry finds the
// refund by its key and records it instead of refunding again under a new idempotency key,
// which would pay the customer's unused minutes twice.
func TestEarlyStopRefundRetryAfterALostAnswerRefundsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, podID, pi := b.running(t, "refund-lost@example.com")
	pod := b.pod(t, podID)
	b.stripe.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/refunds", Mode: stripesim.LoseAnswer, Times: 1})
	w := &UnusedHoursRefundWorker{d: b.deps}

	res := work(t, b, w, UnusedHoursRefundArgs{PodID: podID, Reason: gpubroker.RefundEarlyStop, StoppedAt: pod.StartedAt.Add(30 * time.Minute)})
	require.Equal(t, river.EventKindJobFailed, res.EventKind, "the refund's answer was lost")
	require.Equal(t, 1, b.stripe.RefundCount(pi), "Stripe made it")

	res = workAgain(t, b, w, res.Job)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, 1, b.stripe.RefundCount(pi), "refunded once")
	refunds, err := postgres.PodRefunds(ctx, b.pool, podID, gpubroker.RefundEarlyStop)
	require.NoError(t, err)
	require.Len(t, refunds, 1)
	require.NotNil(t, refunds[0].StripeRefundID, "the refund found is recorded")
	require.Equal(t, gpubroker.UnusedMinutesCents(120, 30, pod.HourlyCents), refunds[0].AmountCents)
	ch := b.stripe.Charge(*b.stripe.PaymentIntent(pi).LatestCharge)
	require.Equal(t, refunds[0].AmountCents, ch.AmountRefunded)
}
