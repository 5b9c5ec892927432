package gpubroker

import "time"

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
var podMoves = map[PodMove]AuditAction{
	{PodConfigured, PodDeploying}:   ActionPodDeployRequested,
	{PodConfigured, PodFailed}:      ActionPodHoldReleased, // never deployed: its hold went back
	{PodDeploying, PodProvisioning}: ActionPodProvisioning, // the capture succeeded
	{PodDeploying, PodConfigured}:   ActionPodCaptureFailed,
	{PodDeploying, PodFailed}:       ActionPodFailed,
	{PodProvisioning, PodRunning}:   ActionPodRunning,
	{PodProvisioning, PodFailed}:    ActionPodFailed,
	{PodRunning, PodRunning}:        ActionPodExtended,
	{PodRunning, PodTerminating}:    ActionPodTerminateRequested,
	{PodRunning, PodFailed}:         ActionPodDied,
	{PodTerminating, PodTerminated}: ActionPodTerminated,
	{PodFailed, PodFailed}:          ActionPodOutcomeNoted, // its note says how it ended (refunded, released)
}

// PodMoveAction is the audit action of a move in the table, and whether the table has it.
func PodMoveAction(from, to PodStatus) (AuditAction, bool) {
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

// Pod is a GPU pod with the order fields that go with it (what was bought, where its money
// stands).
type Pod struct {
	ID            string
	OrderID       string
	AccountID     *string
	Status        PodStatus
	Plan          string
	GPU           string
	Region        string
	Hours         int
	Template      string
	HourlyCents   int64
	AmountCents   int64
	Currency      string
	OrderStatus   OrderStatus
	HoldExpiresAt *time.Time
	// Provider, InstanceID and OfferID say where it runs, once launched.
	Provider     *string
	InstanceID   *string
	OfferID      *string
	FailedOffers []string // offers that refused this pod (provider/offer id)
	Connection   *Connection
	// IDESecret is the pod's Jupyter token / code-server password ("" until first launched);
	// only its owner ever sees it.
	IDESecret string
	// BootSecret is what the pod's bootstrap proves itself with when it reports its steps
	// ("" until first launched); BootSteps are the steps it reported, oldest first.
	BootSecret string
	BootSteps  []BootStep
	// SentTo are the providers a launch of this pod was ever sent to ("*": any, for pods from
	// before it was recorded), SentAt the last send: only they may hold its instance.
	SentTo []string
	SentAt *time.Time
	// LaunchKeys are the authorized_keys lines the instance was launched with, and
	// SSHKeyFingerprints their fingerprints (both fixed at the first launch).
	LaunchKeys         []string
	SSHKeyFingerprints []string
	Error              *string // what went wrong, for the customer
	CreatedAt          time.Time

	DeployRequestedAt *time.Time
	CapturedAt        *time.Time
	// LaunchedAt is when its latest instance was launched (or found launched): its boot
	// deadline counts from there.
	LaunchedAt   *time.Time
	StartedAt    *time.Time
	EndsAt       *time.Time
	TerminatedAt *time.Time

	// RefundedCents is what has been refunded of the order's payments (its own and its
	// extensions'), per the ledger.
	RefundedCents int64
	// HoursTotal is the hours bought: the order's and its paid extensions' (an extension paid
	// after the pod stopped extends nothing and is not counted).
	HoursTotal int
	// PaidCents is what the ledger has captured for the pod: the order's payment (none before
	// Deploy) and its paid extensions'.
	PaidCents int64
}

// PodUpdate is a change to a pod's columns, made with or without a status move; nil fields
// are left as they are. Error set to "" clears the error.
type PodUpdate struct {
	Provider         *string
	InstanceID       *string
	OfferID          *string
	CostCentsPerHour *int64
	Connection       *Connection
	// IDESecret replaces the pod's IDE secret when the provider runs the IDE with its own
	// (Lambda's jupyter_token).
	IDESecret         *string
	Error             *string
	DeployRequestedAt *time.Time
	CapturedAt        *time.Time
	LaunchedAt        *time.Time
	StartedAt         *time.Time
	EndsAt            *time.Time
	TerminatedAt      *time.Time
}

// Ptr returns a pointer to v, for PodUpdate's fields.
func Ptr[T any](v T) *T { return &v }

// BootStep is one step a pod's bootstrap reported (POST /api/pods/{id}/boot): shown to the
// customer while the pod starts, never trusted for billing (readiness is the worker's check).
type BootStep struct {
	At     time.Time `json:"at"`
	Step   string    `json:"step"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail"`
}

// BootStepNames are the steps a bootstrap reports, in the order it runs them.
var BootStepNames = []string{"keys", "sshd", "workspace", "ide", "ready"}

// MaxBootSteps bounds what one pod may report: a few boots' worth of its five steps.
const MaxBootSteps = 50

// Connection is how a user reaches a running pod.
type Connection struct {
	SSH           string `json:"ssh"`
	JupyterURL    string `json:"jupyter_url,omitempty"`
	CodeServerURL string `json:"code_server_url,omitempty"`
}
