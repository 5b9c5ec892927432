package jobs

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing/stripesim"
	"gpubroker/postgres"
)

// workAgain runs a job that already ran once (as River does on a retry): its attempt counts
// up from the row's, so the worker sees job.Attempt > 1.
func workAgain[T river.JobArgs](t *testing.T, b *testBundle, w river.Worker[T], job *rivertype.JobRow) *rivertest.WorkResult {
	t.Helper()
	ctx := context.Background()
	tw := rivertest.NewWorker(t, riverpgxv5.New(b.pool), &river.Config{Logger: slog.New(slog.DiscardHandler)}, w)
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	res, err := tw.WorkJob(ctx, t, tx, job)
	if res == nil {
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
	return res
}

// captureCalls are the capture requests that reached the Stripe stand-in for pi.
func (b *testBundle) captureCalls(pi string) []stripesim.Call {
	var out []stripesim.Call
	for _, c := range b.stripe.Calls() {
		if c.Method == "POST" && c.Path == "/v1/payment_intents/"+pi+"/capture" {
			out = append(out, c)
		}
	}
	return out
}

// Mutant m2 (provisioning with no captured payment): a retry that finds the PaymentIntent still
// requires_capture must capture before anything else. Here its capture fails too, so the pod
// stays deploying with no provision job and the order authorized; only the attempt whose
// capture succeeds hands the pod to provisioning. Treating requires_capture as captured would
// launch a GPU on a payment never taken.
func TestCaptureRetryOnAnUncapturedHoldProvisionsNothingBeforeCapturing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	w := &CaptureWorker{d: b.deps}
	orderID, podID, pi := b.authorized(t, "retry-uncaptured@example.com")
	b.stripe.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/payment_intents/*/capture", Mode: stripesim.FailBefore, Times: 2})

	res := work(t, b, w, CaptureArgs{PodID: podID})
	require.Equal(t, river.EventKindJobFailed, res.EventKind, "first capture answered 500")

	res = workAgain(t, b, w, res.Job)
	require.Equal(t, 2, res.Job.Attempt)
	require.Equal(t, gpubroker.PIRequiresCapture, b.stripe.PaymentIntent(pi).Status)
	require.Equal(t, gpubroker.PodDeploying, b.pod(t, podID).Status, "not provisioning on an uncaptured hold")
	require.NotContains(t, b.enqueued(t), "provision")
	require.Equal(t, river.EventKindJobFailed, res.EventKind, "the retry's own capture answered 500")
	o, err := postgres.GetOrder(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.Equal(t, gpubroker.OrderAuthorized, o.Status)
	require.Len(t, b.captureCalls(pi), 2, "the retry captured (under a new key) after asking")

	res = workAgain(t, b, w, res.Job)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, gpubroker.PISucceeded, b.stripe.PaymentIntent(pi).Status)
	require.Equal(t, 1, b.stripe.CaptureCount(pi))
	require.Equal(t, gpubroker.PodProvisioning, b.pod(t, podID).Status)
	require.Equal(t, []string{"provision"}, b.enqueued(t))
}

// Mutant m1 (a capture retry skips the state re-check): Stripe captured but the answer was lost;
// the retry asks Stripe first, sees the capture and provisions without sending a second capture
// (which, under a new key, could take the money twice from a processor that allowed it).
func TestCaptureRetryAfterALostAnswerAsksInsteadOfCapturingAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := &CaptureWorker{d: b.deps}
	_, podID, pi := b.authorized(t, "retry-lost@example.com")
	b.stripe.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/payment_intents/*/capture", Mode: stripesim.LoseAnswer, Times: 1})

	res := work(t, b, w, CaptureArgs{PodID: podID})
	require.Equal(t, river.EventKindJobFailed, res.EventKind, "the capture's answer was lost")
	require.Equal(t, gpubroker.PodDeploying, b.pod(t, podID).Status)

	res = workAgain(t, b, w, res.Job)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, gpubroker.PodProvisioning, b.pod(t, podID).Status)
	require.Equal(t, 1, b.stripe.CaptureCount(pi))
	calls := b.captureCalls(pi)
	require.Len(t, calls, 1, "the retry asked Stripe instead of capturing again: %v", calls)
	require.True(t, strings.HasPrefix(calls[0].IdempotencyKey, "capture-"))
}
