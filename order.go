package gpubroker

import "time"

// Currency is the only currency GPU Broker charges in.
const Currency = "usd"

// Order is one purchase: a plan and a pod configuration with its computed price.
type Order struct {
	ID              string
	AccountID       *string
	Email           string
	Name            string
	Plan            string
	Template        string
	GPU             string
	Region          string
	Hours           int
	AmountCents     int64
	Currency        string
	Status          OrderStatus
	StripeSessionID *string
	PaymentIntentID *string
	AuthorizedAt    *time.Time
	HoldExpiresAt   *time.Time
	CapturedAt      *time.Time
	CreatedAt       time.Time
}

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

// OrderMove is an order's move from one status to another.
type OrderMove struct{ From, To OrderStatus }

// orderMoves is the order transition table: every move an order may make, with the audit action
// that records it (lifecycle.MoveOrder writes one with the other).
var orderMoves = map[OrderMove]AuditAction{
	{OrderCheckoutPending, OrderAuthorized}: ActionOrderAuthorized,
	{OrderCheckoutPending, OrderExpired}:    ActionOrderExpired,
	{OrderCheckoutPending, OrderReleased}:   ActionOrderReleased, // the hold cancelled before the session was processed
	{OrderAuthorized, OrderCaptured}:        ActionOrderCaptured,
	{OrderAuthorized, OrderReleased}:        ActionOrderReleased,
	{OrderCaptured, OrderRefunded}:          ActionOrderRefunded,
}

// OrderMoveAction is the audit action of a move in the table, and whether the table has it.
func OrderMoveAction(from, to OrderStatus) (AuditAction, bool) {
	a, ok := orderMoves[OrderMove{from, to}]
	return a, ok
}

// CanMoveTo reports whether an order may move from s to to.
func (s OrderStatus) CanMoveTo(to OrderStatus) bool {
	_, ok := orderMoves[OrderMove{s, to}]
	return ok
}

// OrderStatuses lists every order status.
var OrderStatuses = []OrderStatus{OrderCheckoutPending, OrderFree, OrderAuthorized, OrderCaptured, OrderRefunded, OrderExpired, OrderReleased}

func allowed[S comparable](list []S, to S) bool {
	for _, s := range list {
		if s == to {
			return true
		}
	}
	return false
}
