package stripesim

import (
	"fmt"
	"path"
	"slices"
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
	// Hang applies the action and stores the real answer under the key, then answers nothing
	// until the caller gives up (its timeout, a job's deadline) or two minutes pass: a call
	// that timed out after Stripe acted.
	Hang
)

// String names the mode for reports.
func (m FaultMode) String() string {
	switch m {
	case FailBefore:
		return "stored_5xx"
	case FailAfter:
		return "5xx_after_acting"
	case LoseAnswer:
		return "lost_answer"
	case Hang:
		return "timeout"
	}
	return fmt.Sprintf("FaultMode(%d)", int(m))
}

// Fault makes the next Times REST calls matching Method and Path fail as Mode says.
type Fault struct {
	// Method is the HTTP method; empty matches any.
	Method string
	// Path is a path.Match pattern on the Stripe path without the mount prefix, e.g.
	// "/v1/payment_intents/*/capture" ("*" matches one path segment).
	Path string
	// Form, when set, aims the fault: each parameter must have this value in the request's
	// body, e.g. {"payment_intent": "pi_…"} for one customer's refund.
	Form  map[string]string
	Mode  FaultMode
	Times int
	// Strike, when set, runs once the action is applied and stored, before the answer
	// (LoseAnswer, Hang, FailAfter): the chaos run kills the calling worker there.
	Strike func()

	struck int // calls it has struck (under the server's lock)
}

// Armed is an injected fault, to ask later whether it struck.
type Armed struct {
	s *Server
	f *Fault
}

// Struck is how many calls the fault has struck so far.
func (a *Armed) Struck() int {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	return a.f.struck
}

// InjectFault adds a fault. Faults are checked in the order they were added; each matching
// call uses up one of a fault's Times. An idempotent replay of a stored answer is not a call
// that reaches the endpoint, so it neither triggers nor uses up a fault.
func (s *Server) InjectFault(f Fault) *Armed {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc := f
	fc.struck = 0
	if f.Times > 0 {
		s.faults = append(s.faults, &fc)
	}
	return &Armed{s: s, f: &fc}
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

// takeFaultLocked returns the first fault matching the call and uses it up.
func (s *Server) takeFaultLocked(method, p string, params form) (*Fault, bool) {
	for i, f := range s.faults {
		if f.Method != "" && f.Method != method {
			continue
		}
		if ok, _ := path.Match(f.Path, p); !ok {
			continue
		}
		if !formMatches(params, f.Form) {
			continue
		}
		f.Times--
		f.struck++
		if f.Times <= 0 {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
		}
		return f, true
	}
	return nil, false
}

// formMatches says whether every wanted top-level parameter has its value in params.
func formMatches(params form, want map[string]string) bool {
	for k, v := range want {
		if got, _ := params[k].(string); got != v {
			return false
		}
	}
	return true
}

func internalError() *apiError {
	return &apiError{status: 500, Type: typeAPI,
		Message: "An unknown error occurred (injected by the Stripe stand-in)."}
}

// Disarm removes the fault if it has not used up its Times yet; other faults stay.
func (a *Armed) Disarm() {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	a.s.faults = slices.DeleteFunc(a.s.faults, func(f *Fault) bool { return f == a.f })
}
