package jobs

import (
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
)

// Terminations retry at least every 10 minutes however often they failed; other kinds back
// off like River; a test delay replaces both.
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	job := func(kind string, attempt int) *rivertype.JobRow {
		return &rivertype.JobRow{Kind: kind, Attempt: attempt, AttemptedAt: &now, Errors: make([]rivertype.AttemptError, attempt-1)}
	}
	p := RetryPolicy{}
	for _, kind := range []string{"terminate", "terminate_instance"} {
		next := p.NextRetry(job(kind, 20))
		require.WithinDuration(t, now.Add(maxTerminateBackoff), next, 2*time.Second, kind)
		require.Less(t, p.NextRetry(job(kind, 1)).Sub(now), time.Minute, "early attempts back off like River")
	}
	require.Greater(t, p.NextRetry(job("capture", 20)).Sub(now), 24*time.Hour, "20⁴ s: River's backoff")
	// Provisioning: a customer is waiting and the deadline bounds the whole; a chaos run saw a
	// pod wait six minutes after four transient provider errors (1, 16, 81, 256 s).
	require.LessOrEqual(t, p.NextRetry(job("provision", 5)).Sub(now), maxProvisionBackoff+time.Second)
	require.Less(t, p.NextRetry(job("provision", 2)).Sub(now), maxProvisionBackoff)
	require.WithinDuration(t, now.Add(time.Second), RetryPolicy{Delay: time.Second}.NextRetry(job("terminate", 20)), time.Second)
}

// A periodic job whose worker was killed mid-run is rescued as a failed attempt: with one
// attempt it would be discarded, and a discarded job pages ops (GPUBrokerJobDiscarded) for
// nothing. Every periodic kind may be retried (found by make chaos).
func TestPeriodicJobsSurviveARescue(t *testing.T) {
	t.Parallel()
	for _, args := range []interface {
		Kind() string
		InsertOpts() river.InsertOpts
	}{PodHealthArgs{}, ReconcileArgs{}, RefreshOffersArgs{}, RetentionArgs{}} {
		require.Greater(t, args.InsertOpts().MaxAttempts, 1, args.Kind())
	}
	require.Len(t, PeriodicJobs(0, 0), 4, "every periodic job is listed above")
}
