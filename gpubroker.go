// Package gpubroker holds the domain of GPU Broker, with no I/O: accounts, orders and pods
// (pod.go), their typed statuses and transition tables (state.go), the catalog and pricing
// (catalog.go), SSH keys (sshkey.go), lifetimes of links, sessions and card holds
// (lifetimes.go), email kinds (mail.go) and error codes (error.go), plus the interfaces of
// the outside services the domain needs: Payments (payments.go) and Sender (mail.go). GPU
// providers have their own portable package, gpu. Each outside service has its own package
// implementing these interfaces.
package gpubroker

import "time"

// Currency is the only currency GPU Broker charges in.
const Currency = "usd"

// Account statuses: an account is created pending and becomes active when its email is confirmed.
const (
	AccountPending = "pending"
	AccountActive  = "active"
)

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
