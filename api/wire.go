package api

import (
	"time"

	"gpubroker"
	"gpubroker/gpu"
)

// The API's JSON, apart from the domain types so a field added to a domain type never leaks to
// the customer by accident, and a renamed Go field never breaks the contract (../shared/API.md).

type accountJSON struct {
	ID          string     `json:"id"`
	Email       string     `json:"email"`
	Name        string     `json:"name"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
}

func toAccountJSON(a *gpubroker.Account) accountJSON {
	return accountJSON{ID: a.ID, Email: a.Email, Name: a.Name, Status: string(a.Status), CreatedAt: a.CreatedAt, ActivatedAt: a.ActivatedAt}
}

type orderJSON struct {
	ID              string                `json:"id"`
	AccountID       *string               `json:"account_id,omitempty"`
	Email           string                `json:"email"`
	Name            string                `json:"name"`
	Plan            string                `json:"plan"`
	Template        string                `json:"template"`
	GPU             string                `json:"gpu"`
	Region          string                `json:"region"`
	Hours           int                   `json:"hours"`
	AmountCents     int64                 `json:"amount_cents"`
	Currency        string                `json:"currency"`
	Status          gpubroker.OrderStatus `json:"status"`
	StripeSessionID *string               `json:"stripe_session_id,omitempty"`
	AuthorizedAt    *time.Time            `json:"authorized_at,omitempty"`
	HoldExpiresAt   *time.Time            `json:"hold_expires_at,omitempty"`
	CapturedAt      *time.Time            `json:"captured_at,omitempty"`
	CreatedAt       time.Time             `json:"created_at"`
}

func toOrderJSON(o *gpubroker.Order) orderJSON {
	return orderJSON{
		ID: o.ID, AccountID: o.AccountID, Email: o.Email, Name: o.Name, Plan: o.Plan, Template: o.Template,
		GPU: o.GPU, Region: o.Region, Hours: o.Hours, AmountCents: o.AmountCents, Currency: o.Currency, Status: o.Status,
		StripeSessionID: o.StripeSessionID, AuthorizedAt: o.AuthorizedAt, HoldExpiresAt: o.HoldExpiresAt,
		CapturedAt: o.CapturedAt, CreatedAt: o.CreatedAt,
	}
}

// connectionJSON is how the owner reaches a running pod. ssh is null when the pod was launched
// without a key of theirs; jupyter_url carries the pod's token; ide_secret is the token or
// code-server password, for the copy button.
type connectionJSON struct {
	SSH           *string `json:"ssh"`
	JupyterURL    string  `json:"jupyter_url,omitempty"`
	CodeServerURL string  `json:"code_server_url,omitempty"`
	IDESecret     string  `json:"ide_secret,omitempty"`
}

type starterProjectJSON struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

type podJSON struct {
	ID            string                `json:"id"`
	OrderID       string                `json:"order_id"`
	Status        gpubroker.PodStatus   `json:"status"`
	Plan          string                `json:"plan"`
	GPU           string                `json:"gpu"`
	Region        string                `json:"region"`
	Hours         int                   `json:"hours"`
	Template      string                `json:"template"`
	HourlyCents   int64                 `json:"hourly_cents"`
	AmountCents   int64                 `json:"amount_cents"`
	Currency      string                `json:"currency"`
	OrderStatus   gpubroker.OrderStatus `json:"order_status"`
	HoldExpiresAt *time.Time            `json:"hold_expires_at"`
	// DeployBy is the last moment to deploy: the hold is released then (HoldReleaseAt).
	DeployBy          *time.Time      `json:"deploy_by"`
	Provider          *string         `json:"provider"`
	Connection        *connectionJSON `json:"connection"`
	Error             *string         `json:"error"`
	CreatedAt         time.Time       `json:"created_at"`
	DeployRequestedAt *time.Time      `json:"deploy_requested_at"`
	StartedAt         *time.Time      `json:"started_at"`
	EndsAt            *time.Time      `json:"ends_at"`
	TerminatedAt      *time.Time      `json:"terminated_at"`
	// SSHKeyFingerprints are the keys the instance was launched with (SHA256:…).
	SSHKeyFingerprints []string            `json:"ssh_key_fingerprints"`
	StarterProject     *starterProjectJSON `json:"starter_project"`
	// SecondsLeft is ends_at − now while the pod runs, 0 otherwise.
	SecondsLeft int64 `json:"seconds_left"`
	// RefundedCents is what has been refunded of the pod's payments (its order's and its
	// extensions').
	RefundedCents int64 `json:"refunded_cents"`
	// HoursTotal is the hours bought: the order's and its paid extensions'.
	HoursTotal int `json:"hours_total"`
	// PaidCents is what has been captured for the pod: the order's payment (0 before Deploy)
	// and its paid extensions'.
	PaidCents int64 `json:"paid_cents"`
	// BootSteps are what its bootstrap reported, oldest first: shown, never billed on.
	BootSteps []gpubroker.BootStep `json:"boot_steps"`

	// What the dashboard shows, decided here (podView) so the page re-derives no rule.

	// DeployBlocked is why Deploy may not be pressed, or null when it may.
	DeployBlocked *deployBlockedJSON `json:"deploy_blocked"`
	// RefundIfStoppedCents is what Stop would refund right now (the rental rule, as the
	// terminate request plans it), for RefundIfStoppedMinutes unused minutes; 0 unless running
	// and paid.
	RefundIfStoppedCents   int64 `json:"refund_if_stopped_cents"`
	RefundIfStoppedMinutes int   `json:"refund_if_stopped_minutes"`
	// RefundDueCents is what is owed back and not yet refunded: refunds planned in the ledger
	// and not yet made, a queued unused-minutes refund not yet planned, or the full refund of a
	// paid pod that could not start.
	RefundDueCents int64 `json:"refund_due_cents"`
	// ExtendableHours is how many more hours POST /api/pods/{id}/extend accepts now: 0 when the
	// pod cannot be extended (not running, free, or at its plan's max_hours), null when its
	// plan sets no limit.
	ExtendableHours *int `json:"extendable_hours"`
	// PlanFeeCents is the plan fee the order paid (kept when the pod stops early).
	PlanFeeCents int64 `json:"plan_fee_cents"`
}

// deployBlockedJSON says why Deploy may not be pressed: reason is a machine code (the deploy
// request's error code where it would refuse), message is for people.
type deployBlockedJSON struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// podJSON is a pod as its owner sees it (no other account ever gets one).
func (s *Server) podJSON(p *gpubroker.Pod) podJSON {
	out := podJSON{
		ExtendableHours: gpubroker.Ptr(0), PlanFeeCents: gpubroker.PlanFeeCents(p.AmountCents, p.Hours, p.HourlyCents),
		ID: p.ID, OrderID: p.OrderID, Status: p.Status, Plan: p.Plan, GPU: p.GPU, Region: p.Region, Hours: p.Hours,
		Template: p.Template, HourlyCents: p.HourlyCents, AmountCents: p.AmountCents, Currency: p.Currency,
		OrderStatus: p.OrderStatus, HoldExpiresAt: p.HoldExpiresAt, Provider: p.Provider, Error: p.Error,
		CreatedAt: p.CreatedAt, DeployRequestedAt: p.DeployRequestedAt, StartedAt: p.StartedAt, EndsAt: p.EndsAt,
		TerminatedAt: p.TerminatedAt, SSHKeyFingerprints: p.SSHKeyFingerprints, RefundedCents: p.RefundedCents,
		HoursTotal: p.HoursTotal, PaidCents: p.PaidCents, BootSteps: p.BootSteps,
	}
	if out.BootSteps == nil {
		out.BootSteps = []gpubroker.BootStep{}
	}
	if p.Status == gpubroker.PodRunning && p.EndsAt != nil {
		out.SecondsLeft = max(0, int64(p.EndsAt.Sub(s.now())/time.Second))
	}
	if out.SSHKeyFingerprints == nil {
		out.SSHKeyFingerprints = []string{}
	}
	tpl, ok := s.Catalog.Template(p.Template)
	if ok && tpl.Workspace.Path != "" {
		out.StarterProject = &starterProjectJSON{Name: tpl.Workspace.Name, Path: tpl.Workspace.Path}
	}
	if p.OrderStatus == gpubroker.OrderAuthorized && p.HoldExpiresAt != nil {
		out.DeployBy = gpubroker.Ptr(s.Clock.HoldReleaseAt(*p.HoldExpiresAt))
	}
	if c := p.Connection; c != nil && !p.Status.Ended() {
		out.Connection = &connectionJSON{JupyterURL: gpu.IDELink(c.JupyterURL, tpl.IDE, p.IDESecret), CodeServerURL: c.CodeServerURL, IDESecret: p.IDESecret}
		if c.SSH != "" {
			out.Connection.SSH = &c.SSH
		}
	}
	return out
}

// receiptJSON is one payment as GET /api/me lists it: what it paid for, what was refunded of
// it, and the link to Stripe's receipt (handleReceipt).
type receiptJSON struct {
	ID            string    `json:"id"`
	PodID         string    `json:"pod_id"`
	Kind          string    `json:"kind"` // "order" or "extension"
	Description   string    `json:"description"`
	AmountCents   int64     `json:"amount_cents"`
	RefundedCents int64     `json:"refunded_cents"`
	Currency      string    `json:"currency"`
	PaidAt        time.Time `json:"paid_at"`
	ReceiptURL    string    `json:"receipt_url"`
}
