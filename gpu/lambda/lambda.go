// Package lambda is the gpu.Provider for Lambda Cloud (API v1, https://cloud.lambda.ai/api/v1).
//
// Lambda rents virtual machines, not containers: an instance boots Lambda's Ubuntu image
// (Lambda Stack: CUDA, PyTorch, JupyterLab), so the template's image is not run. What the
// image would do is done by cloud-init instead, from the launch's user_data (see userData):
// the customer's SSH keys for the ubuntu user, and the images' own start script
// (images/common/gpubroker-start.sh) as a systemd service that unpacks the starter project.
// The data-science template uses Lambda's own JupyterLab (its jupyter_url, served by Lambda
// with a valid certificate, and its jupyter_token as the pod's secret); the developer
// template runs code-server behind Caddy, which gets a certificate by ACME for the VM's
// nip.io name.
//
// Ops register the SSH key named by Config.SSHKeyName (LAMBDA_SSH_KEY_NAME) once; the
// account's inbound firewall rules (SSH, and 80 and 443 for Caddy) are kept by the worker's
// lambda_firewall job (FirewallRules, SetFirewallRules).
package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gpubroker/gpu"
	"gpubroker/internal/httpjson"
	"gpubroker/internal/pace"
)

// DefaultBaseURL is Lambda Cloud's API root.
const DefaultBaseURL = "https://cloud.lambda.ai/api/v1"

// DefaultInstanceTypes maps the single-GPU Lambda instance types we sell to our GPU ids.
// Lambda's 1x A100s without "80gb" in the name have 40 GB and are left out, because our
// catalog sells the 80 GB card. Public material spells the 80 GB type both ways; a name
// Lambda does not list simply never matches.
func DefaultInstanceTypes() map[string]string {
	return map[string]string{
		"gpu_1x_h100_sxm5":      "h100",
		"gpu_1x_h100_pcie":      "h100",
		"gpu_1x_a100_sxm4_80gb": "a100",
		"gpu_1x_a100_80gb_sxm4": "a100",
		"gpu_1x_a6000":          "a6000",
		"gpu_1x_a10":            "a10",
	}
}

// DefaultRegions maps Lambda regions to ours. Regions without a counterpart in our catalog
// (us-south-*, us-midwest-1, asia-*, …) are not offered.
func DefaultRegions() map[string]string {
	return map[string]string{
		"us-east-1":        "us-east",
		"us-east-2":        "us-east",
		"us-east-3":        "us-east",
		"us-west-1":        "us-west",
		"us-west-2":        "us-west",
		"us-west-3":        "us-west",
		"europe-central-1": "eu-central",
	}
}

// Config configures a Client. APIKey and SSHKeyName are required.
type Config struct {
	APIKey string
	// BaseURL defaults to DefaultBaseURL; tests point it at a fake.
	BaseURL string
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
	// SSHKeyName is the SSH key, registered at Lambda, that every instance gets (Lambda takes
	// exactly one per launch).
	SSHKeyName string
	// InstanceTypes (Lambda type → our GPU id) and Regions (Lambda region → ours) default to
	// DefaultInstanceTypes() and DefaultRegions().
	InstanceTypes map[string]string
	Regions       map[string]string
	// IDEPort is where code-server listens on the VM, behind Caddy (which alone is reached
	// from outside, on 443). Zero means 8080.
	IDEPort int
	// RequestInterval and LaunchInterval space requests and launches; zero means Lambda's
	// published limits (1 s and 12 s), negative turns pacing off.
	RequestInterval time.Duration
	LaunchInterval  time.Duration
	// Now and Sleep drive the pacing; tests replace them.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Client talks to Lambda Cloud. It is safe for concurrent use.
type Client struct {
	cfg           Config
	api           *httpjson.Client
	requests      *pace.Pacer // Lambda's ~1 request/s
	launches      *pace.Pacer // and 1 launch/12 s; over either it answers 429
	instanceTypes map[string]string
	regions       map[string]string
}

var _ gpu.Provider = (*Client)(nil)

// New returns a client configured by cfg.
func New(cfg Config) *Client {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.RequestInterval == 0 {
		cfg.RequestInterval = time.Second
	}
	if cfg.LaunchInterval == 0 {
		cfg.LaunchInterval = 12 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IDEPort == 0 {
		cfg.IDEPort = 8080
	}
	c := &Client{
		cfg: cfg,
		api: &httpjson.Client{Name: "lambda", BaseURL: cfg.BaseURL, APIKey: cfg.APIKey, HTTP: cfg.HTTPClient,
			Classify: func(_, _ string, resp *http.Response, data []byte) error { return classify(resp, data) }},
		requests:      pace.New(cfg.RequestInterval, cfg.Now, cfg.Sleep),
		launches:      pace.New(cfg.LaunchInterval, cfg.Now, cfg.Sleep),
		instanceTypes: cfg.InstanceTypes,
		regions:       cfg.Regions,
	}
	if c.instanceTypes == nil {
		c.instanceTypes = DefaultInstanceTypes()
	}
	if c.regions == nil {
		c.regions = DefaultRegions()
	}
	return c
}

// Name returns "lambda".
func (c *Client) Name() string { return "lambda" }

// Wire types, as documented by Lambda.
type (
	instanceType struct {
		Name              string `json:"name"`
		Description       string `json:"description"`
		PriceCentsPerHour int64  `json:"price_cents_per_hour"`
		Specs             struct {
			GPUs int `json:"gpus"`
		} `json:"specs"`
	}
	region struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	instanceTypeEntry struct {
		InstanceType                 instanceType `json:"instance_type"`
		RegionsWithCapacityAvailable []region     `json:"regions_with_capacity_available"`
	}
	instance struct {
		ID           string       `json:"id"`
		Name         string       `json:"name"`
		IP           string       `json:"ip"`
		Status       string       `json:"status"`
		Region       region       `json:"region"`
		InstanceType instanceType `json:"instance_type"`
		JupyterToken string       `json:"jupyter_token"`
		JupyterURL   string       `json:"jupyter_url"`
		Tags         []tag        `json:"tags"`
	}
	tag struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	apiError struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			Suggestion string `json:"suggestion"`
		} `json:"error"`
	}
)

// ListOffers lists the instance types we sell in the regions where Lambda reports capacity.
// Lambda lists no region for a type without capacity, so every offer is available.
func (c *Client) ListOffers(ctx context.Context, q gpu.OfferQuery) ([]gpu.Offer, error) {
	var types map[string]instanceTypeEntry
	if err := c.do(ctx, http.MethodGet, "/instance-types", nil, &types); err != nil {
		return nil, err
	}
	var offers []gpu.Offer
	for name, t := range types {
		ourGPU, ok := c.instanceTypes[name]
		if !ok {
			continue
		}
		count := max(t.InstanceType.Specs.GPUs, 1)
		for _, r := range t.RegionsWithCapacityAvailable {
			ourRegion, ok := c.regions[r.Name]
			if !ok {
				continue
			}
			o := gpu.Offer{
				Provider:     c.Name(),
				ID:           offerID(name, r.Name),
				GPU:          ourGPU,
				Region:       ourRegion,
				GPUCount:     count,
				CentsPerHour: t.InstanceType.PriceCentsPerHour,
				Available:    true,
			}
			if q.Match(o) {
				offers = append(offers, o)
			}
		}
	}
	return offers, nil
}

// offerID is "<instance type>@<lambda region>", all Launch needs.
func offerID(instanceType, region string) string { return instanceType + "@" + region }

func parseOfferID(id string) (instanceType, region string, ok bool) {
	instanceType, region, ok = strings.Cut(id, "@")
	return instanceType, region, ok && instanceType != "" && region != ""
}

// Launch launches one instance of the offer's type in its region under r.Name.
func (c *Client) Launch(ctx context.Context, r gpu.LaunchRequest) (*gpu.Instance, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	typ, reg, ok := parseOfferID(r.Offer.ID)
	if !ok || c.instanceTypes[typ] == "" || c.regions[reg] == "" {
		return nil, fmt.Errorf("lambda: offer %q is not a Lambda offer we sell: %w", r.Offer.ID, gpu.ErrOfferGone)
	}
	if c.cfg.SSHKeyName == "" {
		return nil, fmt.Errorf("lambda: Config.SSHKeyName (LAMBDA_SSH_KEY_NAME) is not set: %w", gpu.ErrProviderConfig)
	}
	userData, err := c.userData(r)
	if err != nil {
		return nil, err
	}
	if err := c.launches.Wait(ctx); err != nil {
		return nil, err
	}
	body := map[string]any{
		"region_name":        reg,
		"instance_type_name": typ,
		// Lambda takes exactly one key name: the operator's. The customer's keys are in
		// user_data (see userData for why).
		"ssh_key_names": []string{c.cfg.SSHKeyName},
		"name":          r.Name,
		"quantity":      1,
		"user_data":     userData,
		// GET /instances does not return user_data; the tag tells convert which IDE runs.
		"tags": []tag{{Key: ideTag, Value: r.IDE}},
	}
	var resp struct {
		InstanceIDs []string `json:"instance_ids"`
	}
	if err := c.do(ctx, http.MethodPost, "/instance-operations/launch", body, &resp); err != nil {
		if errors.Is(err, gpu.ErrNotFound) {
			// global/object-does-not-exist on launch names something we sent: the SSH key
			// (a wrong or deleted LAMBDA_SSH_KEY_NAME), or the type or region. Nothing launched
			// and no launch at Lambda will work until a human fixes it; other providers may.
			return nil, fmt.Errorf("lambda: launch with SSH key %q: %s: %w", c.cfg.SSHKeyName, strings.TrimSuffix(err.Error(), ": "+gpu.ErrNotFound.Error()), gpu.ErrProviderConfig)
		}
		return nil, err
	}
	if len(resp.InstanceIDs) == 0 {
		// Lambda accepted the launch but named nothing; the retry finds it by name.
		return nil, fmt.Errorf("lambda: launch returned no instance id: %w", gpu.ErrUnavailable)
	}
	return &gpu.Instance{
		ID:           resp.InstanceIDs[0],
		Provider:     c.Name(),
		Name:         r.Name,
		Region:       c.regions[reg],
		GPU:          c.instanceTypes[typ],
		State:        gpu.StateBooting,
		CentsPerHour: r.Offer.CentsPerHour,
	}, nil
}

// GetInstance returns the instance with the given id.
func (c *Client) GetInstance(ctx context.Context, id string) (*gpu.Instance, error) {
	var in instance
	if err := c.do(ctx, http.MethodGet, "/instances/"+url.PathEscape(id), nil, &in); err != nil {
		return nil, err
	}
	return c.convert(in), nil
}

// ListInstances returns the account's live instances (GET /instances lists the running ones,
// all in one answer: it is not paged, so it may be far longer than any other answer,
// httpjson.MaxListAnswer). One request, paced like every other.
func (c *Client) ListInstances(ctx context.Context) ([]gpu.Instance, error) {
	var list []instance
	if err := c.doUpTo(ctx, http.MethodGet, "/instances", nil, &list, httpjson.MaxListAnswer); err != nil {
		return nil, err
	}
	var out []gpu.Instance
	for _, in := range list {
		if inst := c.convert(in); inst.State.Live() {
			out = append(out, *inst)
		}
	}
	return out, nil
}

// Terminate terminates the instance. Lambda's answer for an instance that is already gone is
// not documented beyond object-does-not-exist, so on any other permanent error the instance is
// looked up: if it is gone or on its way out, the termination has succeeded.
func (c *Client) Terminate(ctx context.Context, id string) error {
	err := c.do(ctx, http.MethodPost, "/instance-operations/terminate", map[string]any{"instance_ids": []string{id}}, nil)
	if err == nil || errors.Is(err, gpu.ErrNotFound) {
		return nil
	}
	if gpu.Retryable(err) || gpu.SkipProvider(err) {
		return err
	}
	inst, getErr := c.GetInstance(ctx, id)
	if errors.Is(getErr, gpu.ErrNotFound) || (getErr == nil && !inst.State.Live()) {
		return nil
	}
	return err
}

// convert maps a Lambda instance to ours. Connection details are reported only once the
// instance is active, because the IP may be missing while it boots.
func (c *Client) convert(in instance) *gpu.Instance {
	out := &gpu.Instance{
		ID:           in.ID,
		Provider:     c.Name(),
		Name:         in.Name,
		Region:       c.regions[in.Region.Name],
		GPU:          c.instanceTypes[in.InstanceType.Name],
		CentsPerHour: in.InstanceType.PriceCentsPerHour,
	}
	if out.Region == "" {
		out.Region = in.Region.Name
	}
	// Lambda's statuses (InstanceStatus in its OpenAPI document): booting, active, unhealthy,
	// terminating, terminated, preempted.
	switch in.Status {
	case "booting":
		out.State = gpu.StateBooting
	case "active":
		out.State = gpu.StateRunning
	case "unhealthy":
		// Still billed; the provision job gives up on it and terminates it.
		out.State = gpu.StateFailed
		out.Error = "Lambda reports the instance unhealthy"
	case "preempted":
		// The host was taken back: the instance is dead to us, and must still be terminated.
		out.State = gpu.StateFailed
		out.Error = "Lambda preempted the instance"
	case "terminating":
		out.State = gpu.StateTerminating
	case "terminated":
		out.State = gpu.StateTerminated
	default:
		// Not in Lambda's spec: not known to be running, not known to be dead. Callers wait, as
		// for a provider that cannot answer, rather than fail (and refund) a pod that may run.
		out.State = gpu.StateUnknown
		out.Error = fmt.Sprintf("unknown Lambda status %q", in.Status)
	}
	if out.State == gpu.StateRunning && in.IP != "" {
		out.SSHHost, out.SSHUser, out.SSHPort = in.IP, "ubuntu", 22
		for _, t := range in.Tags {
			if t.Key != ideTag {
				continue
			}
			switch t.Value {
			case gpu.IDEJupyter:
				// Lambda's own JupyterLab, behind Lambda's proxy with a valid certificate: its
				// link without the token, and the token as the pod's secret. Until Lambda
				// reports both, there is no link and readiness waits.
				if u, ok := jupyterBase(in.JupyterURL); ok && in.JupyterToken != "" {
					out.JupyterURL, out.IDESecret = u, in.JupyterToken
				}
			case gpu.IDECodeServer:
				// Caddy on 443 with a certificate for the VM's nip.io name (user_data).
				out.CodeServerURL = "https://" + ipHost(in.IP) + "/"
			}
		}
	}
	return out
}

// jupyterBase is Lambda's jupyter_url without its query (the token) or fragment, ending in a
// slash; only an https URL with a host is taken.
func jupyterBase(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", false
	}
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	u.Path = strings.TrimRight(u.Path, "/") + "/"
	u.RawPath = ""
	return u.String(), true
}

// do sends one paced request and decodes the "data" member of the answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	return c.doUpTo(ctx, method, path, body, out, httpjson.MaxAnswer)
}

// doUpTo is do for an answer of up to limit bytes.
func (c *Client) doUpTo(ctx context.Context, method, path string, body, out any, limit int64) error {
	if err := c.requests.Wait(ctx); err != nil {
		return err
	}
	data, err := c.api.DoUpTo(ctx, method, path, body, limit)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, &struct {
		Data any `json:"data"`
	}{out}); err != nil {
		return fmt.Errorf("lambda: %s %s: decode response: %w", method, path, err)
	}
	return nil
}

// classify turns an error answer into an error of the gpu classes. Lambda's error code decides
// where there is one; the HTTP status is the fallback.
func classify(resp *http.Response, data []byte) error {
	var e apiError
	_ = json.Unmarshal(data, &e) // a non-JSON body (a proxy's 502 page) leaves e empty
	code, msg := e.Error.Code, e.Error.Message
	if msg == "" {
		msg = httpjson.Snippet(data)
	}
	detail := fmt.Sprintf("HTTP %d %s: %s", resp.StatusCode, code, msg)

	var class error
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %w", detail, &gpu.RateLimitedError{RetryAfter: httpjson.RetryAfter(resp.Header.Get("Retry-After"))})
	case code == "instance-operations/launch/insufficient-capacity":
		class = gpu.ErrNoCapacity
	case code == "global/invalid-api-key":
		class = gpu.ErrAuth
	case code == "global/quota-exceeded", code == "global/account-inactive":
		// Both need a human at Lambda (raise the quota, add a payment method) and fail every
		// launch until then, like an empty balance: skip Lambda and tell ops.
		class = gpu.ErrInsufficientFunds
	case code == "global/invalid-parameters":
		// The launch's parameters are refused as they are (a region or type this offer does
		// not take): the same every time, so try the next offer now.
		class = gpu.ErrRefused
	case code == "global/object-does-not-exist":
		class = gpu.ErrNotFound
	case strings.HasPrefix(code, "provider/"), resp.StatusCode >= 500:
		// provider/* are Lambda's upstream failures, documented as transient.
		class = gpu.ErrUnavailable
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		class = gpu.ErrAuth
	case resp.StatusCode == http.StatusNotFound:
		class = gpu.ErrNotFound
	default:
		return errors.New(detail)
	}
	return fmt.Errorf("%s: %w", detail, class)
}
