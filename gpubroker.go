// Package gpubroker holds the domain of GPU Broker: accounts, orders, pods, the catalog, money,
// state transitions and error codes, plus the small interfaces of the outside services the
// domain needs (payments, mail, GPU providers). It imports no database or vendor SDK; each
// outside service has its own package implementing these interfaces.
package gpubroker

import "time"

// Currency is the only currency GPU Broker charges in.
const Currency = "usd"

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

// Account is a customer, created by the checkout webhook (paid) or at once (free trial).
type Account struct {
	ID          string
	Email       string
	Name        string
	Status      string
	CreatedAt   time.Time
	ActivatedAt *time.Time
}

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

// Connection is how a user reaches a running pod.
type Connection struct {
	SSH           string `json:"ssh"`
	JupyterURL    string `json:"jupyter_url,omitempty"`
	CodeServerURL string `json:"code_server_url,omitempty"`
}
