package jobs

import (
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// RetryPolicy is when a failed job runs again: River's backoff (attempt⁴ seconds, with
// jitter), except that the kinds that end instances never wait more than 10 minutes (an
// instance left running costs money every hour), and Delay, when set, replaces both (tests).
type RetryPolicy struct {
	Delay time.Duration
}

var _ river.ClientRetryPolicy = RetryPolicy{}

// cappedKinds retry at least every maxTerminateBackoff.
var cappedKinds = map[string]bool{TerminateArgs{}.Kind(): true, TerminateInstanceArgs{}.Kind(): true}

const maxTerminateBackoff = 10 * time.Minute

// NextRetry implements river.ClientRetryPolicy.
func (p RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	now := time.Now().UTC()
	if p.Delay > 0 {
		return now.Add(p.Delay)
	}
	next := (&river.DefaultClientRetryPolicy{}).NextRetry(job)
	if cappedKinds[job.Kind] && next.After(now.Add(maxTerminateBackoff)) {
		return now.Add(maxTerminateBackoff)
	}
	return next
}
