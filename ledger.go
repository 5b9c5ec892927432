package gpubroker

import (
	"slices"
	"time"
)

// PaymentKind is what a captured payment in the ledger paid for.
type PaymentKind string

// Payment kinds (stored as text).
const (
	PaymentOrder     PaymentKind = "order"     // the order's own capture: plan fee and hours
	PaymentExtension PaymentKind = "extension" // hours bought on a running pod
)

// RefundReason is why money goes back, stored with every refund in the ledger.
type RefundReason string

// Refund reasons (stored as text).
const (
	RefundEarlyStop  RefundReason = "early_stop"  // the owner stopped a running pod early
	RefundPodDied    RefundReason = "pod_died"    // the pod's instance died under it
	RefundNotStarted RefundReason = "not_started" // the pod could not be started: refunded in full
	// RefundLateExtension: an extension paid after its pod stopped, refunded in full.
	RefundLateExtension RefundReason = "late_extension"
	// RefundOverLimit: an extension whose payment would have taken its pod past the plan's
	// max_hours (another was paid first), refunded in full.
	RefundOverLimit RefundReason = "over_limit"
)

// Payment is one captured payment of an order: the order's own capture or a paid extension.
type Payment struct {
	ID              string
	OrderID         string
	PaymentIntentID string
	AmountCents     int64
	// RefundedCents is what the ledger has refunded (or is refunding) of it.
	RefundedCents int64
	CapturedAt    time.Time
}

// Refundable is what may still be refunded of the payment.
func (p Payment) Refundable() int64 {
	if r := p.AmountCents - p.RefundedCents; r > 0 {
		return r
	}
	return 0
}

// RefundShare is the part of a refund one payment bears.
type RefundShare struct {
	PaymentID   string
	AmountCents int64
}

// SpreadRefund spreads amount over payments newest first (the extensions before the order's
// own payment), never taking more from a payment than Refundable. It returns the shares and
// what could not be placed (zero unless amount exceeds everything refundable).
func SpreadRefund(payments []Payment, amount int64) ([]RefundShare, int64) {
	// Newest first; stable on ties, so the result does not depend on the input order of equals.
	ps := slices.Clone(payments)
	slices.SortStableFunc(ps, func(a, b Payment) int { return b.CapturedAt.Compare(a.CapturedAt) })
	var out []RefundShare
	for _, p := range ps {
		if amount <= 0 {
			break
		}
		n := min(p.Refundable(), amount)
		if n <= 0 {
			continue
		}
		out = append(out, RefundShare{PaymentID: p.ID, AmountCents: n})
		amount -= n
	}
	return out, max(amount, 0)
}
