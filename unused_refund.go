package gpubroker

import "time"

// BoughtPayment is a captured payment with the hours it bought the pod (none for an extension
// refunded in full because it extended nothing).
type BoughtPayment struct {
	Payment
	Hours int
}

// UnusedRefund is the refund of a paid pod's unused minutes, as the rental rule gives it.
type UnusedRefund struct {
	// MinutesUsed and MinutesBought are the rule's counts; Minutes = bought − used, 0 if none.
	MinutesUsed, MinutesBought int
	// Cents is what comes back: UnusedMinutesCents, less NotPlacedCents.
	Cents int64
	// Shares spread Cents over the payments, newest first (SpreadRefund).
	Shares []RefundShare
	// NotPlacedCents is what the payments could no longer refund (zero unless the ledger is off).
	NotPlacedCents int64
}

// Minutes is how many bought minutes the refund pays back.
func (u UnusedRefund) Minutes() int { return max(0, u.MinutesBought-u.MinutesUsed) }

// UnusedHoursRefund applies the rental rule to a pod that ran from started to stopped at
// hourlyCents an hour, bought by payments: minutes used by this clock, minutes bought from the
// payments' hours, the unused ones at the rate rounded down to the cent, spread over the
// payments. It decides the amount the terminate request plans, and the one a running pod's JSON
// says Stop would give back: one function, so the two cannot differ.
func (c RentalClock) UnusedHoursRefund(started, stopped time.Time, hourlyCents int64, payments []BoughtPayment) UnusedRefund {
	var u UnusedRefund
	ps := make([]Payment, 0, len(payments))
	for _, p := range payments {
		u.MinutesBought += MinutesBought(p.Hours)
		ps = append(ps, p.Payment)
	}
	u.MinutesUsed = c.MinutesUsed(started, stopped)
	amount := UnusedMinutesCents(u.MinutesBought, u.MinutesUsed, hourlyCents)
	if amount == 0 {
		return u
	}
	u.Shares, u.NotPlacedCents = SpreadRefund(ps, amount)
	u.Cents = amount - u.NotPlacedCents
	return u
}
