package gpubroker

import "time"

// AccountStatus is where an account stands: created pending (by the checkout webhook, or at
// once for a free trial) and active once its email is confirmed; never back.
type AccountStatus string

// Account statuses (stored as text).
const (
	AccountPending AccountStatus = "pending"
	AccountActive  AccountStatus = "active"
)

var accountTransitions = map[AccountStatus][]AccountStatus{AccountPending: {AccountActive}}

// CanMoveTo reports whether an account may move from s to to.
func (s AccountStatus) CanMoveTo(to AccountStatus) bool { return allowed(accountTransitions[s], to) }

// Account is a customer, created by the checkout webhook (paid) or at once (free trial).
type Account struct {
	ID          string
	Email       string
	Name        string
	Status      AccountStatus
	CreatedAt   time.Time
	ActivatedAt *time.Time
}
