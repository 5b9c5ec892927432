package gpubroker

// ExtensionStatus is where hours bought on a running pod stand:
//
//	checkout_pending ──► paid        (the pod's end moved by its hours)
//	      │      └─────► over_limit  (paid past the plan's max_hours: refunded in full)
//	      └────────────► expired     (its Checkout Session was never paid)
//
// A payment that arrives after the pod stopped is refunded in full too (RefundLateExtension);
// the extension is then paid and its refund in the ledger.
type ExtensionStatus string

// Extension statuses (stored as text).
const (
	ExtensionPending ExtensionStatus = "checkout_pending"
	ExtensionPaid    ExtensionStatus = "paid"
	ExtensionExpired ExtensionStatus = "expired"
	// ExtensionOverLimit: paid, but its pod's total would have passed the plan's max_hours, so
	// it extended nothing and its payment is refunded in full (RefundOverLimit).
	ExtensionOverLimit ExtensionStatus = "over_limit"
)

var extensionTransitions = map[ExtensionStatus][]ExtensionStatus{
	ExtensionPending: {ExtensionPaid, ExtensionOverLimit, ExtensionExpired},
}

// CanMoveTo reports whether an extension may move from s to to.
func (s ExtensionStatus) CanMoveTo(to ExtensionStatus) bool {
	return allowed(extensionTransitions[s], to)
}
