// Package gpubroker holds the domain of GPU Broker: accounts, orders, pods, the catalog, money,
// state transitions and error codes, plus the small interfaces of the outside services the
// domain needs (payments, mail, GPU providers). It imports no database or vendor SDK; each
// outside service has its own package implementing these interfaces.
package gpubroker

import "time"

// Currency is the only currency GPU Broker charges in.
const Currency = "usd"

// Order statuses. Transitions are one-way (see OrderTransitions) and guarded in SQL.
const (
	OrderCheckoutPending = "checkout_pending"
	OrderFree            = "free"
	OrderAuthorized      = "authorized"
	OrderCaptured        = "captured"
	OrderRefunded        = "refunded"
	OrderExpired         = "expired"
	OrderReleased        = "released"
	OrderDeclined        = "declined"
)

// Pod statuses.
const (
	PodConfigured   = "configured"
	PodDeploying    = "deploying"
	PodProvisioning = "provisioning"
	PodRunning      = "running"
	PodTerminating  = "terminating"
	PodTerminated   = "terminated"
	PodFailed       = "failed"
)

// Account statuses: an account is created pending and becomes active when its email is confirmed.
const (
	AccountPending = "pending"
	AccountActive  = "active"
)

// HoldReleaseAfter is how long after authorization an undeployed hold is cancelled. Card holds
// lapse after 7 days; releasing at 6 leaves a day of margin and tells the user first.
const HoldReleaseAfter = 6 * 24 * time.Hour

// HoldReleaseMargin is how long before the card hold's own deadline (Stripe's capture_before)
// an undeployed hold is released. HoldReleaseAfter applies only when Stripe gives no deadline.
const HoldReleaseMargin = 24 * time.Hour

// OrderTransitions lists, for each order status, the statuses it may move to.
var OrderTransitions = map[string][]string{
	OrderCheckoutPending: {OrderAuthorized, OrderExpired, OrderDeclined, OrderReleased},
	OrderAuthorized:      {OrderCaptured, OrderReleased},
	OrderCaptured:        {OrderRefunded},
	OrderFree:            {},
}

// CanMoveOrder reports whether an order may move from one status to another.
func CanMoveOrder(from, to string) bool {
	for _, s := range OrderTransitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Account is a customer, created by the checkout webhook (paid) or at once (free trial).
type Account struct {
	ID          string     `json:"id"`
	Email       string     `json:"email"`
	Name        string     `json:"name"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
}

// Order is one purchase: a plan and a pod configuration with its computed price.
type Order struct {
	ID              string     `json:"id"`
	AccountID       *string    `json:"account_id,omitempty"`
	Email           string     `json:"email"`
	Name            string     `json:"name"`
	Plan            string     `json:"plan"`
	Template        string     `json:"template"`
	GPU             string     `json:"gpu"`
	Region          string     `json:"region"`
	Hours           int        `json:"hours"`
	AmountCents     int64      `json:"amount_cents"`
	Currency        string     `json:"currency"`
	Status          string     `json:"status"`
	StripeSessionID *string    `json:"stripe_session_id,omitempty"`
	PaymentIntentID *string    `json:"-"`
	AuthorizedAt    *time.Time `json:"authorized_at,omitempty"`
	HoldExpiresAt   *time.Time `json:"hold_expires_at,omitempty"`
	CapturedAt      *time.Time `json:"captured_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
}

// Connection is how a user reaches a running pod.
type Connection struct {
	SSH           string `json:"ssh"`
	JupyterURL    string `json:"jupyter_url,omitempty"`
	CodeServerURL string `json:"code_server_url,omitempty"`
}
