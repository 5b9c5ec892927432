package gpubroker

import "time"

// The rental rule: a pod is bought by the whole hour, and an hour is used once it has started.
//
// A running pod stopped early by its owner is refunded the whole hours it did not start:
//
//	refund = (hours bought − hours started) × hourly rate,  hours started = ⌈seconds run / 3600⌉, at least 1
//
// and a pod that died under the customer (item 3) is refunded every hour it did not complete:
//
//	refund = (hours bought − whole hours run) × hourly rate
//
// The plan fee is never refunded. Example: 3 hours of an A100 at $1.79/h on Pro ($49 fee, $54.37
// paid), stopped 10 minutes in: 1 hour started, 2 refunded, 2 × $1.79 = $3.58 back.

// HoursStarted is how many hours of a pod that started at started and stopped at stopped have
// begun: ⌈seconds / 3600⌉, at least 1.
func HoursStarted(started, stopped time.Time) int {
	d := stopped.Sub(started)
	if d <= 0 {
		return 1
	}
	n := int((d + time.Hour - 1) / time.Hour)
	if n < 1 {
		n = 1
	}
	return n
}

// HoursCompleted is how many whole hours a pod ran between started and stopped.
func HoursCompleted(started, stopped time.Time) int {
	d := stopped.Sub(started)
	if d <= 0 {
		return 0
	}
	return int(d / time.Hour)
}

// UnusedCents is what (bought − used) hours at hourlyCents come to, zero when none are unused.
func UnusedCents(bought, used int, hourlyCents int64) int64 {
	if used >= bought || hourlyCents <= 0 {
		return 0
	}
	return int64(bought-used) * hourlyCents
}

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
	ps := append([]Payment(nil), payments...)
	// newest first; stable on ties so the result does not depend on the input order of equals
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].CapturedAt.After(ps[j-1].CapturedAt); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
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
