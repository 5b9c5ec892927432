package jobs

import (
	"time"

	"gpubroker"

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
//     the capture) bounds the whole before it refunds;
//   - Caps adds the limits that follow from configuration (ConfiguredCaps).
type RetryPolicy struct {
	Delay time.Duration
	Caps  map[string]time.Duration
}

// releaseRetries is how many retries of a hold's release at least fit in its margin.
const releaseRetries = 10

// ConfiguredCaps are the backoff caps that follow from the rental clock: a hold's release
// retries at least releaseRetries times within its margin. Its deadline is the card network's,
// and River's backoff (attempt⁴ s: 1, 16, 81, 256 s …) outgrows a margin after a few failures;
// a chaos run with a 150 s margin saw a release, failed by a stored 5xx and a killed worker,
// come after the hold had lapsed.
func ConfiguredCaps(clock gpubroker.RentalClock) map[string]time.Duration {
	return map[string]time.Duration{
		ReleaseHoldArgs{}.Kind(): clock.ReleaseMarginLength() / releaseRetries,
	}
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
	for _, caps := range []map[string]time.Duration{backoffCaps, p.Caps} {
		if limit, ok := caps[job.Kind]; ok && limit > 0 && next.After(now.Add(limit)) {
			next = now.Add(limit)
		}
	}
	return next
}
