package gpubroker

// OrderStatus is where an order's money stands. Orders move one way only:
//
//	checkout_pending ──► authorized ──► captured ──► refunded
//	      │                  │
//	      ├──► expired       └──► released   (hold cancelled, lapsed or never deployed)
//	      └──► released      (hold cancelled before the session was processed)
//	free                     (free trial: no money moves)
//
// A declined card is not a status: Checkout keeps the session open for another card, and a
// session never paid expires.
//
// Every move is checked against this table (CanMoveTo) and guarded in SQL
// (UPDATE … WHERE status = <from>), so a duplicated or late job cannot move it backwards.
type OrderStatus string

// Order statuses (stored as text).
const (
	OrderCheckoutPending OrderStatus = "checkout_pending"
	OrderFree            OrderStatus = "free"
	OrderAuthorized      OrderStatus = "authorized"
	OrderCaptured        OrderStatus = "captured"
	OrderRefunded        OrderStatus = "refunded"
	OrderExpired         OrderStatus = "expired"
	OrderReleased        OrderStatus = "released"
)

var orderTransitions = map[OrderStatus][]OrderStatus{
	OrderCheckoutPending: {OrderAuthorized, OrderExpired, OrderReleased},
	OrderAuthorized:      {OrderCaptured, OrderReleased},
	OrderCaptured:        {OrderRefunded},
}

// CanMoveTo reports whether an order may move from s to to.
func (s OrderStatus) CanMoveTo(to OrderStatus) bool { return allowed(orderTransitions[s], to) }

// OrderStatuses lists every order status.
var OrderStatuses = []OrderStatus{OrderCheckoutPending, OrderFree, OrderAuthorized, OrderCaptured, OrderRefunded, OrderExpired, OrderReleased}

// PodStatus is where a pod stands:
//
//	configured ──► deploying ──► provisioning ──► running ──► terminating ──► terminated
//	    ▲  │           │  │            │
//	    └──┼───────────┘  │            │          (deploying → configured: the capture kept
//	       │              │            │           failing; the hold stands, Deploy again)
//	       └──────────────┴────────────┴──► failed (hold released, no GPU could be started:
//	                                                refunded, or refund pending)
//	                                   running ──► failed (the instance died at the provider:
//	                                                the unused minutes are refunded)
//
// Every move is checked against this table (CanMoveTo) and guarded in SQL.
type PodStatus string

// Pod statuses (stored as text).
const (
	PodConfigured   PodStatus = "configured"
	PodDeploying    PodStatus = "deploying"
	PodProvisioning PodStatus = "provisioning"
	PodRunning      PodStatus = "running"
	PodTerminating  PodStatus = "terminating"
	PodTerminated   PodStatus = "terminated"
	PodFailed       PodStatus = "failed"
)

// PodMove is a pod's move from one status to another (or an update within one, From == To).
type PodMove struct{ From, To PodStatus }

// podMoves is the pod transition table: every move a pod may make, with the audit action that
// records it (lifecycle.MovePod writes one with the other).
var podMoves = map[PodMove]string{
	{PodConfigured, PodDeploying}:   "pod.deploy_requested",
	{PodConfigured, PodFailed}:      "pod.hold_released", // never deployed: its hold went back
	{PodDeploying, PodProvisioning}: "pod.provisioning",  // the capture succeeded
	{PodDeploying, PodConfigured}:   "pod.capture_failed",
	{PodDeploying, PodFailed}:       "pod.failed",
	{PodProvisioning, PodRunning}:   "pod.running",
	{PodProvisioning, PodFailed}:    "pod.failed",
	{PodRunning, PodRunning}:        "pod.extended",
	{PodRunning, PodTerminating}:    "pod.terminate_requested",
	{PodRunning, PodFailed}:         "pod.died",
	{PodTerminating, PodTerminated}: "pod.terminated",
	{PodFailed, PodFailed}:          "pod.outcome_noted", // its note says how it ended (refunded, released)
}

// PodMoveAction is the audit action of a move in the table, and whether the table has it.
func PodMoveAction(from, to PodStatus) (string, bool) {
	a, ok := podMoves[PodMove{from, to}]
	return a, ok
}

// CanMoveTo reports whether a pod may move from s to another status to.
func (s PodStatus) CanMoveTo(to PodStatus) bool {
	_, ok := podMoves[PodMove{s, to}]
	return ok && s != to
}

// Ended reports whether the pod is over: nothing will run on it again.
func (s PodStatus) Ended() bool { return s == PodTerminated || s == PodFailed }

// PodStatuses lists every pod status.
var PodStatuses = []PodStatus{PodConfigured, PodDeploying, PodProvisioning, PodRunning, PodTerminating, PodTerminated, PodFailed}

func allowed[S comparable](list []S, to S) bool {
	for _, s := range list {
		if s == to {
			return true
		}
	}
	return false
}
