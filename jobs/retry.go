package jobs

import (
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// RetryPolicy is when a failed job runs again: River's backoff (attempt⁴ seconds, with
// jitter), capped for the kinds that cannot wait that long, and Delay, when set, replaces it
// (tests):
//   - the kinds that end instances retry at least every 10 minutes (an instance left running
//     costs money every hour);
//   - provisioning retries at least every 30 seconds: a customer is watching the pod start,
//     its failures are a provider's 5xx or a lost answer, and its own deadline (20 minutes from
//     the capture) bounds the whole before it refunds.
type RetryPolicy struct {
	Delay time.Duration
}

var _ river.ClientRetryPolicy = RetryPolicy{}

const (
	maxTerminateBackoff = 10 * time.Minute
	maxProvisionBackoff = 30 * time.Second
)

// backoffCaps is the longest wait before the next attempt, per kind.
var backoffCaps = map[string]time.Duration{
	TerminateArgs{}.Kind():         maxTerminateBackoff,
	TerminateInstanceArgs{}.Kind(): maxTerminateBackoff,
	ProvisionArgs{}.Kind():         maxProvisionBackoff,
}

// NextRetry implements river.ClientRetryPolicy.
func (p RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	now := time.Now().UTC()
	if p.Delay > 0 {
		return now.Add(p.Delay)
	}
	next := (&river.DefaultClientRetryPolicy{}).NextRetry(job)
	if limit, ok := backoffCaps[job.Kind]; ok && next.After(now.Add(limit)) {
		return now.Add(limit)
	}
	return next
}
