package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/gpu/ready"
)

// readinessFunc is a Readiness made of a function.
type readinessFunc func(ctx context.Context, t ready.Target) error

func (f readinessFunc) Check(ctx context.Context, t ready.Target) error { return f(ctx, t) }

// A provisioning run racing a give-up (mutant m7's money bug at the jobs level: a guarded status
// move that does not check the status it moves from). One run finds the instance running and
// checks that the customer can use it; while it checks, another run, past the provisioning
// deadline and finding the IDE silent, gives the pod up: failed, its instance ended, the
// payment's refund queued. The first run's readiness then passes, and it must change nothing:
// the pod stays failed, with no start, no "your pod is ready" email and no end scheduled, so
// a refunded customer is never also told to use a pod (nor billed time on it).
func TestProvisionRunRacingAGiveUpLeavesThePodFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	_, podID, _, _, _ := b.launched(t, "race-give-up@example.com")

	late := *b.deps
	late.Now = func() time.Time { return time.Now().Add(late.ProvisionDeadline + time.Minute) }
	late.Ready = readinessFunc(func(context.Context, ready.Target) error { return errors.New("the IDE does not answer") })
	var gaveUp error = errors.New("the racing run never checked readiness")
	racing := *b.deps
	racing.Ready = readinessFunc(func(ctx context.Context, _ ready.Target) error {
		// The give-up run, while this run checks readiness (ctx carries River's client).
		job := &river.Job[ProvisionArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 40}, Args: ProvisionArgs{PodID: podID}}
		gaveUp = (&ProvisionWorker{d: &late}).Work(ctx, job)
		return nil
	})

	res := work(t, b, &ProvisionWorker{d: &racing}, ProvisionArgs{PodID: podID})
	require.NoError(t, gaveUp, "the give-up run")
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	pod := b.pod(t, podID)
	require.Equal(t, gpubroker.PodFailed, pod.Status)
	require.Nil(t, pod.StartedAt, "no paid time started")
	var ready int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM emails WHERE dedupe_key = 'pod_ready:' || $1`, podID).Scan(&ready))
	require.Zero(t, ready, "no ready email for a pod given up")
	require.Contains(t, b.enqueued(t), "refund")
	require.NotContains(t, b.enqueued(t), "terminate", "no end scheduled for a pod that never ran")
}
