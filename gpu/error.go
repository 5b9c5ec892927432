package gpu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Errors providers classify their failures into. Providers wrap them (fmt.Errorf("…: %w",
// ErrNoCapacity)) so the provider's own message survives for ops.
//
// The classes decide what the broker and the jobs do next:
//   - ErrNoCapacity, ErrOfferGone, ErrRefused: nothing was launched; try the next offer now
//     (Failover).
//   - ErrRateLimited, ErrUnavailable, timeouts: try again later (Retryable). Nothing is known
//     about whether a launch happened, so the retry must look for the instance first.
//   - ErrAuth, ErrInsufficientFunds: the provider will refuse everything until a human fixes
//     the account; skip the provider and tell ops (SkipProvider).
//   - ErrProviderConfig: our configuration of the provider is wrong (an SSH key name it does
//     not know); nothing was launched, every launch there will fail the same way until a human
//     fixes it, and other providers are unaffected: skip the provider, tell ops and try the
//     next offer now (both Failover and SkipProvider).
var (
	ErrNoCapacity        = errors.New("gpu: no capacity")
	ErrOfferGone         = errors.New("gpu: offer no longer exists")
	ErrAuth              = errors.New("gpu: provider rejected our credentials")
	ErrInsufficientFunds = errors.New("gpu: provider account has insufficient funds or quota")
	ErrNotFound          = errors.New("gpu: not found")
	// ErrProviderConfig is a fault in how we configured a provider (a wrong or deleted
	// LAMBDA_SSH_KEY_NAME: Lambda's global/object-does-not-exist on launch).
	ErrProviderConfig = errors.New("gpu: provider configuration error")
	// ErrRefused is a provider's deterministic refusal of this launch at this offer (Lambda's
	// global/invalid-parameters, RunPod's 422 on create): nothing launched and asking again
	// changes nothing, but another offer may take it, so it fails over (logged at error level:
	// a request of ours that a provider refuses is a bug to look at).
	ErrRefused = errors.New("gpu: provider refused the launch request")
	// ErrRateLimited is matched by every *RateLimitedError (errors.Is).
	ErrRateLimited = errors.New("gpu: rate limited")
	// ErrUnavailable is a transient provider failure: HTTP 5xx, Lambda's provider/* errors.
	ErrUnavailable = errors.New("gpu: provider temporarily unavailable")
)

// RateLimitedError is a provider's "slow down" (HTTP 429). RetryAfter is the provider's
// Retry-After, or zero when it gave none.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("gpu: rate limited, retry after %s", e.RetryAfter)
	}
	return "gpu: rate limited"
}

// Is makes errors.Is(err, ErrRateLimited) true for every *RateLimitedError.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// RetryAfter returns how long the provider asked us to wait, or zero.
func RetryAfter(err error) time.Duration {
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return rl.RetryAfter
	}
	return 0
}

// Failover reports whether err says this offer did not launch and the next offer may: no
// capacity, the offer was taken by someone else, or the provider is misconfigured.
func Failover(err error) bool {
	return errors.Is(err, ErrNoCapacity) || errors.Is(err, ErrOfferGone) || errors.Is(err, ErrProviderConfig) || errors.Is(err, ErrRefused)
}

// SkipProvider reports whether err says the provider will refuse every request until a human
// fixes our account or our configuration of it (bad key, no money, an unknown SSH key name),
// so its other offers are pointless and ops must know.
func SkipProvider(err error) bool {
	return errors.Is(err, ErrAuth) || errors.Is(err, ErrInsufficientFunds) || errors.Is(err, ErrProviderConfig)
}

// Retryable reports whether err is transient and the same call may succeed later: rate limits,
// provider 5xx, timeouts and dropped connections.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrRateLimited) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return true
	}
	// Dial and read failures (refused, reset) surface as *net.OpError inside *url.Error.
	var opErr *net.OpError
	return errors.As(err, &opErr)
}

// Attempt is one offer the broker tried to launch, and why it failed.
type Attempt struct {
	Offer Offer
	Err   error
}

// LaunchError is returned by Broker.Launch when no offer launched and nothing suggests trying
// the same offers again soon. It matches ErrNoCapacity, and also every attempt's error, so
// errors.Is(err, ErrAuth) tells a job that ops must look at a provider account.
type LaunchError struct {
	Attempts []Attempt
}

func (e *LaunchError) Error() string {
	if len(e.Attempts) == 0 {
		return "gpu: no capacity: no available offer matched"
	}
	msg := fmt.Sprintf("gpu: no capacity after %d attempt(s):", len(e.Attempts))
	for _, a := range e.Attempts {
		msg += fmt.Sprintf(" [%s: %v]", OfferKey(a.Offer), a.Err)
	}
	return msg
}

// Unwrap returns ErrNoCapacity followed by each attempt's error.
func (e *LaunchError) Unwrap() []error {
	errs := []error{ErrNoCapacity}
	for _, a := range e.Attempts {
		errs = append(errs, a.Err)
	}
	return errs
}
