package gpubroker

import "time"

// AccountStatus is where an account stands: created pending (by the checkout webhook, or at
// once for a free trial) and active once its email is confirmed; never back. Either may be
// deleted on request, for good.
type AccountStatus string

// Account statuses (stored as text).
const (
	AccountPending AccountStatus = "pending"
	AccountActive  AccountStatus = "active"
	// AccountDeleted: deleted on its owner's request (DELETE /api/me, confirmed by an emailed
	// link). The row stays, anonymised, because orders and the ledger point at it.
	AccountDeleted AccountStatus = "deleted"
)

// TokenDeletion is the purpose of the one-time link that confirms an account's deletion; its
// email is MailAccountDeletion. It works for 24 hours, as an activation link (TokenTTL).
const TokenDeletion = "deletion"

var accountTransitions = map[AccountStatus][]AccountStatus{
	AccountPending: {AccountActive, AccountDeleted},
	AccountActive:  {AccountDeleted},
}

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
