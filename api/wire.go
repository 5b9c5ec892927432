package api

import (
	"cmp"
	"net/http"
	"time"

	"gpubroker"
	"gpubroker/gpu"
)

// The API's JSON: every request body and every answer is a named struct here, apart from the
// domain types, so a field added to a domain type never leaks to the customer by accident and a
// renamed Go field never breaks the contract (../shared/API.md). The field order is the order
// on the wire; answers that were maps once keep their keys in alphabetical order. The typed
// client in api/apitest decodes these same types.

// ErrorBody is the shape of every error answer (writeError): a machine code, a message for
// people and, for 422, the fields that need attention.
type ErrorBody struct {
	Error   string            `json:"error"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Status is an answer that says where something stands and nothing else: the 202s of login,
// activation resend and contact ("sent", "received", with a message), deploy and terminate
// (the pod's status), verify's 202 while the account is being made ("pending", with a message)
// and its answer to anyone but the payer (the order's status), and /healthz.
type Status struct {
	Message string `json:"message,omitempty"`
	Status  string `json:"status"`
}

// Account is the signed-in account.
type Account struct {
	ID          string     `json:"id"`
	Email       string     `json:"email"`
	Name        string     `json:"name"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
}

func toAccountJSON(a *gpubroker.Account) Account {
	return Account{ID: a.ID, Email: a.Email, Name: a.Name, Status: string(a.Status), CreatedAt: a.CreatedAt, ActivatedAt: a.ActivatedAt}
}

// Order is an order as its buyer sees it (verify).
type Order struct {
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

func toOrderJSON(o *gpubroker.Order) Order {
	return Order{
		ID: o.ID, AccountID: o.AccountID, Email: o.Email, Name: o.Name, Plan: o.Plan, Template: o.Template,
		GPU: o.GPU, Region: o.Region, Hours: o.Hours, AmountCents: o.AmountCents, Currency: o.Currency, Status: o.Status,
		StripeSessionID: o.StripeSessionID, AuthorizedAt: o.AuthorizedAt, HoldExpiresAt: o.HoldExpiresAt,
		CapturedAt: o.CapturedAt, CreatedAt: o.CreatedAt,
	}
}

// Connection is how the owner reaches a running pod. ssh is null when the pod was launched
// without a key of theirs; jupyter_url carries the pod's token; ide_secret is the token or
// code-server password, for the copy button.
type Connection struct {
	SSH           *string `json:"ssh"`
	JupyterURL    string  `json:"jupyter_url,omitempty"`
	CodeServerURL string  `json:"code_server_url,omitempty"`
	IDESecret     string  `json:"ide_secret,omitempty"`
}

// StarterProject is the template's starter project, where the pod has it.
type StarterProject struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Pod is a pod as its owner sees it: GET /api/pods/{id}, the list in GET /api/me, verify's pod
// (without its connection) and the event stream.
type Pod struct {
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
	DeployBy          *time.Time  `json:"deploy_by"`
	Provider          *string     `json:"provider"`
	Connection        *Connection `json:"connection"`
	Error             *string     `json:"error"`
	CreatedAt         time.Time   `json:"created_at"`
	DeployRequestedAt *time.Time  `json:"deploy_requested_at"`
	StartedAt         *time.Time  `json:"started_at"`
	EndsAt            *time.Time  `json:"ends_at"`
	TerminatedAt      *time.Time  `json:"terminated_at"`
	// SSHKeyFingerprints are the keys the instance was launched with (SHA256:…).
	SSHKeyFingerprints []string        `json:"ssh_key_fingerprints"`
	StarterProject     *StarterProject `json:"starter_project"`
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
	DeployBlocked *DeployBlocked `json:"deploy_blocked"`
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

// DeployBlocked says why Deploy may not be pressed: reason is a machine code (the deploy
// request's error code where it would refuse), message is for people.
type DeployBlocked struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// podJSON is a pod as its owner sees it (no other account ever gets one).
func (s *Server) podJSON(p *gpubroker.Pod) Pod {
	out := Pod{
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
		out.StarterProject = &StarterProject{Name: tpl.Workspace.Name, Path: tpl.Workspace.Path}
	}
	if p.OrderStatus == gpubroker.OrderAuthorized && p.HoldExpiresAt != nil {
		out.DeployBy = gpubroker.Ptr(s.Clock.HoldReleaseAt(*p.HoldExpiresAt))
	}
	if c := p.Connection; c != nil && !p.Status.Ended() {
		out.Connection = &Connection{JupyterURL: gpu.IDELink(c.JupyterURL, tpl.IDE, p.IDESecret), CodeServerURL: c.CodeServerURL, IDESecret: p.IDESecret}
		if c.SSH != "" {
			out.Connection.SSH = &c.SSH
		}
	}
	return out
}

// Receipt is one payment as GET /api/me lists it: what it paid for, what was refunded of
// it, and the link to Stripe's receipt (handleReceipt).
type Receipt struct {
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

// TokenRequest is the body of POST /api/activate and POST /api/login/verify.
type TokenRequest struct {
	Token string `json:"token"`
}

// SignIn answers a token that signed its browser in (with the session cookie).
type SignIn struct {
	Account Account `json:"account"`
}

// EmailRequest is the body of POST /api/login and POST /api/activation/resend.
type EmailRequest struct {
	Email string `json:"email"`
}

// Me is GET /api/me: the account, its pods (newest first), its payments, and until when its
// Pro fee is paid (null when it is not).
type Me struct {
	Account        Account    `json:"account"`
	Pods           []Pod      `json:"pods"`
	ProActiveUntil *time.Time `json:"pro_active_until"`
	Receipts       []Receipt  `json:"receipts"`
}

// CheckoutStarted answers POST /api/checkout (201): a paid plan's Stripe Checkout page, or for
// a free trial no page (checkout_url null) and next "check_email".
type CheckoutStarted struct {
	AmountCents int64   `json:"amount_cents"`
	CheckoutURL *string `json:"checkout_url"`
	Currency    string  `json:"currency"`
	Next        string  `json:"next,omitempty"`
	OrderID     string  `json:"order_id"`
}

// Verify is GET /api/checkout/verify's full answer, for the paying browser and the order's
// account: SignedIn says whether this answer opened a session. Its pod never has a connection.
type Verify struct {
	Account  Account `json:"account"`
	Order    Order   `json:"order"`
	Pod      Pod     `json:"pod"`
	SignedIn bool    `json:"signed_in"`
}

// VerifyAnswer is what GET /api/checkout/verify answers: one of the full answer (Verify) and a
// Status alone (202 "pending" while the account is being made; 200 with the order's status for
// anyone but the payer and the account). JSON leaves out a nil embedded struct, so each is
// written as its own object; decoding fills the one that was sent.
type VerifyAnswer struct {
	*Verify
	*Status
	code int // 202 while pending, else 200
}

// ExtendRequest is the body of POST /api/pods/{id}/extend; GET /api/pods/{id}/extend takes
// hours as a query parameter.
type ExtendRequest struct {
	Hours int `json:"hours"`
}

// Extension answers POST /api/pods/{id}/extend (201): the extension's Checkout page.
type Extension struct {
	AmountCents int64  `json:"amount_cents"`
	CheckoutURL string `json:"checkout_url"`
	Currency    string `json:"currency"`
	ExtensionID string `json:"extension_id"`
}

// ExtensionQuote answers GET /api/pods/{id}/extend?hours=: what extend would charge.
type ExtensionQuote struct {
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	HourlyCents int64  `json:"hourly_cents"`
	Hours       int    `json:"hours"`
}

// QuoteLine is one line of a quote: unit price × quantity = amount, so the page adds up
// nothing. kind is "plan_fee" or "gpu_hours" (the page words them its own way).
type QuoteLine struct {
	Kind            string `json:"kind"`
	Name            string `json:"name"`
	UnitAmountCents int64  `json:"unit_amount_cents"`
	Quantity        int64  `json:"quantity"`
	AmountCents     int64  `json:"amount_cents"`
}

// Quote answers POST /api/quote: what checkout would charge for the same body.
type Quote struct {
	AmountCents int64       `json:"amount_cents"`
	Currency    string      `json:"currency"`
	HourlyCents int64       `json:"hourly_cents"`
	Hours       int         `json:"hours"`
	LineItems   []QuoteLine `json:"line_items"`
	// PlanFeeWaivedUntil is set when the plan's fee is not charged because the buyer's is paid
	// until then.
	PlanFeeWaivedUntil *time.Time `json:"plan_fee_waived_until"`
}

// SSHKey is an SSH key as the API shows it: never the key material, which the customer already
// has, only what tells keys apart. POST /api/me/ssh-keys answers one (201).
type SSHKey struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
}

// SSHKeys is GET /api/me/ssh-keys.
type SSHKeys struct {
	SSHKeys []SSHKey `json:"ssh_keys"`
}

// AddSSHKeyRequest is the body of POST /api/me/ssh-keys.
type AddSSHKeyRequest struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
}

// ContactRequest is the body of POST /api/contact.
type ContactRequest struct {
	Name    string `json:"name"`
	Email   string `json:"email"`
	Company string `json:"company"`
	Message string `json:"message"`
}

// DevEmail is one email of the dev outbox as GET /dev/mail lists it with Accept:
// application/json, newest first.
type DevEmail struct {
	ID        int64     `json:"id"`
	To        string    `json:"to"`
	Subject   string    `json:"subject"`
	Kind      string    `json:"kind"`
	Text      string    `json:"text"`
	HTML      string    `json:"html"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

func (v *VerifyAnswer) statusCode() int { return cmp.Or(v.code, http.StatusOK) }
