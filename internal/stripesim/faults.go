package stripesim

import (
	"path"
	"time"
)

// FaultMode says when an injected fault strikes.
type FaultMode int

const (
	// FailBefore answers 500 without acting, as when Stripe fails while executing. Like
	// Stripe, the 500 is stored under the request's idempotency key and replayed for it.
	FailBefore FaultMode = iota
	// FailAfter applies the action, then answers 500 (stored under the key and replayed):
	// Stripe did it but said it failed.
	FailAfter
	// LoseAnswer applies the action and stores the real answer under the key, then drops
	// the connection without answering, as a timeout or a network failure would: Stripe did
	// it and the caller never heard.
	LoseAnswer
)

// Fault makes the next Times REST calls matching Method and Path fail as Mode says.
type Fault struct {
	// Method is the HTTP method; empty matches any.
	Method string
	// Path is a path.Match pattern on the Stripe path without the mount prefix, e.g.
	// "/v1/payment_intents/*/capture" ("*" matches one path segment).
	Path  string
	Mode  FaultMode
	Times int
}

// InjectFault adds a fault. Faults are checked in the order they were added; each matching
// call uses up one of a fault's Times. An idempotent replay of a stored answer is not a call
// that reaches the endpoint, so it neither triggers nor uses up a fault.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times > 0 {
		fc := f
		s.faults = append(s.faults, &fc)
	}
}

// ClearFaults removes every injected fault that has not struck yet.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// SetHoldLifetime sets how long holds authorized from now on last (default HoldLifetime),
// e.g. 4 days 18 hours for a Visa merchant-initiated payment. The deadline is shown as the
// charge's payment_method_details.card.capture_before, and the hold lapses then.
func (s *Server) SetHoldLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdLifetime = d
}

// takeFaultLocked returns the mode of the first fault matching the call and uses it up.
func (s *Server) takeFaultLocked(method, p string) (FaultMode, bool) {
	for i, f := range s.faults {
		if f.Method != "" && f.Method != method {
			continue
		}
		if ok, _ := path.Match(f.Path, p); !ok {
			continue
		}
		f.Times--
		if f.Times <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return f.Mode, true
	}
	return 0, false
}

func internalError() *apiError {
	return &apiError{status: 500, Type: typeAPI,
		Message: "An unknown error occurred (injected by the Stripe stand-in)."}
}
