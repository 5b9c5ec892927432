// Package gpu is the portable face of the GPU providers GPU Broker rents from: the Provider
// interface every provider client implements, the offer and instance types they speak, the
// errors they classify their failures into, and the Broker that picks the cheapest offer across
// providers and fails over when one has no capacity.
//
// The package does no I/O of its own. Each provider lives in its own package (gpu/sim for
// development and tests, gpu/lambda, gpu/runpod) and is proven by the shared conformance suite in
// gpu/gputest.
package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// Provider is one GPU cloud. Implementations must be safe for concurrent use.
//
// Launch is asynchronous: it returns as soon as the provider has accepted the request, usually
// with the instance booting; callers poll GetInstance until it is running. Every instance is
// launched under a caller-chosen name, and FindInstance (the function, over ListInstances)
// looks it up again, so a provision job that crashed after launching finds its instance
// instead of launching a second one.
type Provider interface {
	// Name is the provider's stable name ("lambda", "runpod", "sim"). It is stored on each
	// pod so later jobs reach the same provider.
	Name() string
	// ListOffers returns the provider's offers matching q. Prices are per hour for the whole
	// offer (all GPUs of it).
	ListOffers(ctx context.Context, q OfferQuery) ([]Offer, error)
	// Launch starts an instance from r.Offer under r.Name.
	Launch(ctx context.Context, r LaunchRequest) (*Instance, error)
	// GetInstance returns the current state of an instance, or ErrNotFound.
	GetInstance(ctx context.Context, id string) (*Instance, error)
	// ListInstances returns every live instance (see State.Live) of our account, whatever
	// launched it: FindInstance looks names up there, and the reconciler looks there for
	// instances nobody pays for.
	ListInstances(ctx context.Context) ([]Instance, error)
	// Terminate terminates an instance. It is idempotent: terminating an instance that is
	// already terminated, or that the provider does not know, returns nil.
	Terminate(ctx context.Context, id string) error
}

// FindInstance returns a live instance (see State.Live) that p launched under name, or
// ErrNotFound if there is none. A failed instance is found: it may still bill, so the caller
// must end it. A provider that cannot list its instances returns its error, never ErrNotFound,
// which would send a provision job to launch again. Two live instances under one name (a
// launch whose answer was lost, then another) are found one at a time: the first listed.
func FindInstance(ctx context.Context, p Provider, name string) (*Instance, error) {
	list, err := p.ListInstances(ctx)
	if err != nil {
		return nil, err
	}
	for _, in := range list {
		if in.Name == name && in.State.Live() {
			return &in, nil
		}
	}
	return nil, fmt.Errorf("gpu: %s has no instance named %q: %w", p.Name(), name, ErrNotFound)
}

// IDE values of LaunchRequest.IDE, matching the "ide" field of site/data/templates.json.
const (
	IDEJupyter    = "jupyter"
	IDECodeServer = "code-server"
)

// IDELink is the link that opens an instance's IDE for its owner: Jupyter takes its token in
// the URL; code-server asks for its password on its own page, so its link stays bare.
func IDELink(url, ide, secret string) string {
	if url == "" || secret == "" || ide != IDEJupyter {
		return url
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "token=" + secret
}

// Offer is one thing a provider will rent: a GPU type with a count, in one region, at a price.
// GPU and Region use our ids (site/data/gpus.json), not the provider's.
type Offer struct {
	Provider     string `json:"provider"`
	ID           string `json:"id"` // the provider's id of the offer, opaque to everyone else
	GPU          string `json:"gpu"`
	Region       string `json:"region"`
	GPUCount     int    `json:"gpu_count"`
	CentsPerHour int64  `json:"cents_per_hour"`
	// Available is the provider's capacity report. It is a hint, not a reservation: a launch
	// on an available offer can still fail with ErrNoCapacity.
	Available bool `json:"available"`
}

// OfferKey identifies an offer across providers: provider + "/" + id. Jobs remember the keys of
// offers that failed so a retry does not try them again.
func OfferKey(o Offer) string { return o.Provider + "/" + o.ID }

// OfferQuery selects offers. Empty fields match everything.
type OfferQuery struct {
	GPU    string `json:"gpu,omitempty"`
	Region string `json:"region,omitempty"`
	// MaxCentsPerHour, when positive, drops offers that cost more, so we never launch a pod
	// that costs us more than the customer pays for it.
	MaxCentsPerHour int64 `json:"max_cents_per_hour,omitempty"`
}

// Match reports whether o satisfies q. Providers use it to filter what they list, and the
// broker checks it again so a sloppy provider cannot launch the wrong GPU.
func (q OfferQuery) Match(o Offer) bool {
	return (q.GPU == "" || o.GPU == q.GPU) &&
		(q.Region == "" || o.Region == q.Region) &&
		(q.MaxCentsPerHour <= 0 || o.CentsPerHour <= q.MaxCentsPerHour)
}

// LaunchRequest asks a provider to start an instance.
//
// It carries a secret (IDESecret): log it only through its LogValue or String, which redact it.
type LaunchRequest struct {
	Offer Offer
	// Name is unique per pod and is what FindInstance looks up; never reuse one.
	Name  string
	Image string // container image of the workspace template, pinned by digest
	IDE   string // IDEJupyter or IDECodeServer
	// SSHPublicKeys are the customer's authorized_keys lines (gpubroker.SSHKey.PublicKey), each
	// one key. Every provider installs all of them for the instance's login user. Empty means
	// SSH is not offered to the customer; the IDE links still work.
	SSHPublicKeys []string
	// IDESecret is the per-pod random secret of the IDE: the Jupyter token, the code-server
	// PASSWORD. Providers pass it to the instance and never report it back: Instance.JupyterURL
	// and CodeServerURL are links without it, and the app shows or appends it itself.
	IDESecret string
	// Workspace is the template's starter project, unpacked at first boot.
	Workspace Workspace
	// BootURL and BootSecret are where the instance's bootstrap reports its steps and the
	// per-pod secret it proves itself with (GPUBROKER_BOOT_URL, GPUBROKER_BOOT_SECRET); never
	// logged, like IDESecret. Empty: no reports.
	BootURL, BootSecret string
	// Ports to expose, as "port/proto" ("8888/http", "22/tcp"). Providers add what the IDE
	// and SSH need, so this is only for extra ports.
	Ports []string
}

// Workspace is a starter project: a deterministic .tar.gz (see package workspaces) that the
// instance downloads at first boot, checks and unpacks into Path, where the IDE opens.
type Workspace struct {
	Name   string // e.g. "fine-tune-a-small-lm"
	Path   string // where it lands on the instance, e.g. "/workspace/fine-tune-a-small-lm"
	URL    string // the tarball, fetched by the instance over HTTP(S)
	SHA256 string // hex SHA-256 of the tarball, checked before unpacking
}

// IsZero reports whether no workspace was asked for.
func (w Workspace) IsZero() bool { return w == Workspace{} }

// LogValue makes slog print the request without its IDE secret and with keys counted, not
// listed.
func (r LaunchRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", r.Name),
		slog.String("offer", OfferKey(r.Offer)),
		slog.String("image", r.Image),
		slog.String("ide", r.IDE),
		slog.Int("ssh_keys", len(r.SSHPublicKeys)),
		slog.String("ide_secret", redact(r.IDESecret)),
		slog.String("boot_secret", redact(r.BootSecret)),
		slog.String("workspace", r.Workspace.Name),
	)
}

// String is the request for %v and %s, without its IDE secret.
func (r LaunchRequest) String() string {
	return fmt.Sprintf("LaunchRequest{Name:%s Offer:%s Image:%s IDE:%s SSHPublicKeys:%d IDESecret:%s BootSecret:%s Workspace:%s}",
		r.Name, OfferKey(r.Offer), r.Image, r.IDE, len(r.SSHPublicKeys), redact(r.IDESecret), redact(r.BootSecret), r.Workspace.Name)
}

// GoString keeps %#v from printing the secret too.
func (r LaunchRequest) GoString() string { return r.String() }

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "REDACTED"
}

// Validate reports a request the broker must never send: without a name a retried job could
// not find the instance again.
func (r LaunchRequest) Validate() error {
	if r.Name == "" {
		return fmt.Errorf("gpu: launch request has no name")
	}
	if r.IDE != "" && r.IDE != IDEJupyter && r.IDE != IDECodeServer {
		return fmt.Errorf("gpu: unknown IDE %q", r.IDE)
	}
	for _, k := range r.SSHPublicKeys {
		// One line each: a newline would smuggle a second line into authorized_keys or into
		// the cloud-init document.
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, "\r\n") {
			return fmt.Errorf("gpu: SSH public key is not one authorized_keys line")
		}
	}
	// The secret, URL and path end up in environment variables and files on the instance:
	// nothing in them may need quoting.
	if strings.Trim(r.IDESecret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") != "" {
		return fmt.Errorf("gpu: the IDE secret may hold only letters, digits and ._~-")
	}
	if w := r.Workspace; !w.IsZero() {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(w.URL, " \t\r\n\"'`$\\") {
			return fmt.Errorf("gpu: workspace %q: URL %q is not a plain http(s) URL", w.Name, w.URL)
		}
		if !strings.HasPrefix(w.Path, "/") || strings.ContainsAny(w.Path, " \t\r\n\"'`$\\") || !isSHA256Hex(w.SHA256) {
			return fmt.Errorf("gpu: workspace %q needs an absolute plain path and a hex SHA-256", w.Name)
		}
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// State is the lifecycle state of an instance, the same for every provider.
type State string

// Instance states.
const (
	StatePending     State = "pending"     // accepted, not yet placed on a machine
	StateBooting     State = "booting"     // placed, starting up
	StateRunning     State = "running"     // reachable; connection details are set
	StateTerminating State = "terminating" // on its way out
	StateTerminated  State = "terminated"  // gone; no longer billed
	StateFailed      State = "failed"      // broken; may still be billed until terminated
	// StateUnknown is a status the provider reported that we cannot interpret (one added after
	// its spec, such as a migration). It says nothing either way: not running, and not known to
	// be dead. Callers treat it as they treat a provider that cannot answer: wait and ask again.
	StateUnknown State = "unknown"
)

// Live reports whether an instance in this state still exists for our purposes: a provision
// job may wait on it, and it must eventually be terminated. A failed instance is live, because
// it may still cost money, and so is one in an unknown state; a terminating one is not, because
// nothing will come of it.
func (s State) Live() bool {
	return s != StateTerminating && s != StateTerminated
}

// Instance is a launched machine or container at a provider.
type Instance struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
	Name     string `json:"name"`
	Region   string `json:"region"`
	GPU      string `json:"gpu"`
	State    State  `json:"state"`

	// Connection details, set once the instance is running. SSH is the endpoint where the
	// launch's SSHPublicKeys log in (never a provider proxy that only takes the provider
	// account's keys). JupyterURL and CodeServerURL are links WITHOUT the IDE secret: the app
	// appends ?token=<IDESecret> for Jupyter and shows the code-server password itself.
	SSHHost       string `json:"ssh_host,omitempty"`
	SSHUser       string `json:"ssh_user,omitempty"`
	SSHPort       int    `json:"ssh_port,omitempty"`
	JupyterURL    string `json:"jupyter_url,omitempty"`
	CodeServerURL string `json:"code_server_url,omitempty"`
	// IDESecret is set when the provider runs the IDE itself with a secret of its own (Lambda's
	// JupyterLab and its jupyter_token): it replaces the launch's IDESecret as the pod's. Never
	// in JSON or logs.
	IDESecret string `json:"-"`

	CentsPerHour int64 `json:"cents_per_hour"`
	// Error is the provider's explanation when State is StateFailed.
	Error string `json:"error,omitempty"`
}
