// Package runpod is the gpu.Provider for RunPod pods through the REST API v2
// (https://api.runpod.io/v2; v1 is retired on 2026-11-15).
//
// An offer is one GPU type in one data center on one cloud tier, read from the GPU catalog with
// per-data-center stock. RunPod's create call places exactly that and never falls back, so the
// broker's cheapest-first loop is the documented way to find capacity. The workspace template's
// image is a public one (RunPod's official PyTorch image); instead of its own /start.sh it runs
// images.StartCommand (the create's args), which downloads our bootstrap from BootstrapURL,
// checks its SHA-256 and runs it. The bootstrap reads the pod's environment: the customer's
// keys (PUBLIC_KEY, SSH_PUBLIC_KEY), the IDE (GPUBROKER_IDE) and its secret (JUPYTER_PASSWORD or
// PASSWORD) and the starter project (GPUBROKER_WORKSPACE_*). SSH is the pod's direct public
// 22/tcp port; the IDE is reached through RunPod's HTTPS proxy.
package runpod

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"gpubroker/gpu"
	"gpubroker/images"
	"gpubroker/internal/httpjson"
)

// DefaultBaseURL is RunPod's API root; paths start with /v2.
const DefaultBaseURL = "https://api.runpod.io"

// Sizes and the driver floor every pod is created with.
const (
	// DefaultDiskGB is the container disk: the image and pip caches, wiped on restart.
	DefaultDiskGB = 50
	// WorkspaceGB is the persistent mount at /workspace (RunPod's floor is 10 GB).
	WorkspaceGB = 50
	// MinCudaVersion is the oldest host CUDA the workspace images run on.
	MinCudaVersion = "12.4"
)

func (c *Client) diskGB() int {
	if c.cfg.DiskGB > 0 {
		return c.cfg.DiskGB
	}
	return DefaultDiskGB
}

// DefaultProxyURL is RunPod's HTTPS proxy, which serves a pod's http ports with a valid
// certificate.
const DefaultProxyURL = "https://{pod}-{port}.proxy.runpod.net/"

// Ports the IDEs listen on inside the pod, exposed through RunPod's HTTPS proxy.
const (
	jupyterPort    = "8888/http"
	codeServerPort = "8080/http"
	sshPort        = "22/tcp"
)

// DefaultGPUTypes maps RunPod GPU type ids to our GPU ids. Only 80 GB H100s and A100s count
// as ours (the H100 NVL has 94 GB, the 40 GB A100 is a different product). RunPod has no A10.
func DefaultGPUTypes() map[string]string {
	return map[string]string{
		"NVIDIA H100 80GB HBM3":   "h100",
		"NVIDIA H100 PCIe":        "h100",
		"NVIDIA A100-SXM4-80GB":   "a100",
		"NVIDIA A100 80GB PCIe":   "a100",
		"NVIDIA L40S":             "l40s",
		"NVIDIA RTX A6000":        "a6000",
		"NVIDIA GeForce RTX 4090": "rtx4090",
	}
}

// DefaultDataCenterRegions maps data-center id prefixes ("US-CA", "EU-") to our regions; the
// longest matching prefix wins. US data centers west of the Rockies are us-west, every other
// US one is us-east: central US (Kansas, Texas) is a short hop from the east coast, and
// leaving it out would hide most of RunPod's US capacity. eu-central promises EU hosting,
// not a city, so every European data center counts.
func DefaultDataCenterRegions() map[string]string {
	return map[string]string{
		"US-":   "us-east",
		"US-CA": "us-west",
		"US-WA": "us-west",
		"US-OR": "us-west",
		"US-NV": "us-west",
		"US-AZ": "us-west",
		"US-UT": "us-west",
		"US-ID": "us-west",
		"EU-":   "eu-central",
		"EUR-":  "eu-central",
	}
}

// Config configures a Client. APIKey is required.
type Config struct {
	APIKey string
	// BaseURL defaults to DefaultBaseURL; tests point it at a fake.
	BaseURL string
	// ProxyURL is where a pod's HTTP ports answer, {pod} and {port} replaced: RunPod's HTTPS
	// proxy (DefaultProxyURL) unless a stand-in serves them.
	ProxyURL string
	// HTTPClient defaults to a client with a 60 s timeout.
	HTTPClient *http.Client
	// Cloud is the tier offers come from: "SECURE" (default, RunPod's own data centers) or
	// "COMMUNITY" (third-party hosts, cheaper, and customers' notebooks on strangers' machines).
	Cloud string
	// DiskGB is the container disk size; zero means DefaultDiskGB.
	DiskGB int
	// BootstrapURL is where pods download the bootstrap (images.StartScriptURL of PUBLIC_URL):
	// the public image runs it, checked against images.StartScriptSHA256, instead of its own
	// start. Required to launch.
	BootstrapURL string
	// GPUTypes and DataCenterRegions default to DefaultGPUTypes() and
	// DefaultDataCenterRegions().
	GPUTypes          map[string]string
	DataCenterRegions map[string]string
}

// Client talks to RunPod. It is safe for concurrent use.
type Client struct {
	cfg Config
	api *httpjson.Client
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
	if cfg.Cloud == "" {
		cfg.Cloud = "SECURE"
	}
	if cfg.GPUTypes == nil {
		cfg.GPUTypes = DefaultGPUTypes()
	}
	if cfg.DataCenterRegions == nil {
		cfg.DataCenterRegions = DefaultDataCenterRegions()
	}
	return &Client{cfg: cfg, api: &httpjson.Client{Name: "runpod", BaseURL: cfg.BaseURL, APIKey: cfg.APIKey, HTTP: cfg.HTTPClient,
		Classify: classify}}
}

// Name returns "runpod".
func (c *Client) Name() string { return "runpod" }

// Wire types, per runpod-rest-v2.openapi.json.
type (
	gpuType struct {
		ID        string `json:"id"`
		Secure    bool   `json:"secure"`
		Community bool   `json:"community"`
		Price     struct {
			Secure    float64 `json:"secure"`
			Community float64 `json:"community"`
		} `json:"price"`
		DataCenters []struct {
			ID           string `json:"id"`
			Availability string `json:"availability"` // NONE, LOW, MEDIUM, HIGH
		} `json:"dataCenters"`
	}
	sshEndpoint struct {
		Host     string `json:"host"`
		Port     int    `json:"port"`
		Username string `json:"username"`
	}
	pod struct {
		ID           string            `json:"id"`
		Name         string            `json:"name"`
		Status       string            `json:"status"`
		Ports        []string          `json:"ports"`
		Env          map[string]string `json:"env"`
		DataCenterID string            `json:"dataCenterId"`
		GPU          *struct {
			ID    string `json:"id"`
			Count int    `json:"count"`
		} `json:"gpu"`
		SSH struct {
			Proxy  *sshEndpoint `json:"proxy"`
			Direct *sshEndpoint `json:"direct"`
		} `json:"ssh"`
		Runtime *struct {
			Ports []struct {
				Private int     `json:"private"`
				Public  *int    `json:"public"`
				Type    string  `json:"type"`
				IP      *string `json:"ip"`
			} `json:"ports"`
		} `json:"runtime"`
		Cost float64 `json:"cost"`
	}
	problem struct {
		Title  string   `json:"title"`
		Status int      `json:"status"`
		Detail string   `json:"detail"`
		Errors []string `json:"errors"`
	}
)

// ListOffers reads the GPU catalog with pod stock per data center and returns one offer per
// GPU type we sell and data center in one of our regions.
func (c *Client) ListOffers(ctx context.Context, q gpu.OfferQuery) ([]gpu.Offer, error) {
	query := url.Values{
		"include": {"AVAILABILITY"},
		"product": {"POD"},
		"cloud":   {c.cfg.Cloud},
		"count":   {"1"},
	}
	var resp struct {
		GPUs []gpuType `json:"gpus"`
	}
	if err := c.do(ctx, http.MethodGet, "/v2/catalog/gpus?"+query.Encode(), nil, &resp); err != nil {
		return nil, err
	}
	var offers []gpu.Offer
	for _, g := range resp.GPUs {
		ourGPU, ok := c.cfg.GPUTypes[g.ID]
		price, offered := g.Price.Secure, g.Secure
		if c.cfg.Cloud == "COMMUNITY" {
			price, offered = g.Price.Community, g.Community
		}
		if !ok || !offered || price <= 0 {
			continue
		}
		for _, dc := range g.DataCenters {
			region := c.region(dc.ID)
			if region == "" {
				continue
			}
			o := gpu.Offer{
				Provider:     c.Name(),
				ID:           offerID(c.cfg.Cloud, dc.ID, g.ID),
				GPU:          ourGPU,
				Region:       region,
				GPUCount:     1,
				CentsPerHour: cents(price),
				Available:    dc.Availability != "" && dc.Availability != "NONE",
			}
			if q.Match(o) {
				offers = append(offers, o)
			}
		}
	}
	return offers, nil
}

// offerID is "<cloud>:<data center>:<gpu type>", all Launch needs. GPU type ids contain spaces
// but no colons.
func offerID(cloud, dataCenter, gpuType string) string {
	return cloud + ":" + dataCenter + ":" + gpuType
}

func parseOfferID(id string) (cloud, dataCenter, gpuType string, ok bool) {
	parts := strings.SplitN(id, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// region maps a data center id to our region by its longest matching prefix, or "".
func (c *Client) region(dataCenter string) string {
	best, region := -1, ""
	for prefix, r := range c.cfg.DataCenterRegions {
		if strings.HasPrefix(dataCenter, prefix) && len(prefix) > best {
			best, region = len(prefix), r
		}
	}
	return region
}

// cents converts RunPod's USD per hour to cents, rounding up so we never under-price a pod.
// The small epsilon keeps 0.44 (0.44000000000000006 × 100) at 44.
func cents(usd float64) int64 { return int64(math.Ceil(usd*100 - 1e-6)) }

// Launch creates a pod for the offer's GPU type in its data center.
func (c *Client) Launch(ctx context.Context, r gpu.LaunchRequest) (*gpu.Instance, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if c.cfg.BootstrapURL == "" {
		return nil, errors.New("runpod: no BootstrapURL: a public image would run without our bootstrap")
	}
	// The pod runs the template's public image with this command instead of its own start: it
	// fetches the bootstrap from our origin and runs it only if the SHA-256 is this binary's.
	start, err := images.StartCommand(c.cfg.BootstrapURL, images.StartScriptSHA256)
	if err != nil {
		return nil, fmt.Errorf("runpod: %w", err)
	}
	cloud, dataCenter, gpuType, ok := parseOfferID(r.Offer.ID)
	if !ok || c.cfg.GPUTypes[gpuType] == "" {
		return nil, fmt.Errorf("runpod: offer %q is not a RunPod offer we sell: %w", r.Offer.ID, gpu.ErrOfferGone)
	}
	var ports []string
	env := map[string]string{"GPUBROKER_IDE": r.IDE}
	if r.IDE == "" {
		env["GPUBROKER_IDE"] = "none"
	}
	ssh := len(r.SSHPublicKeys) > 0
	if ssh {
		// Our bootstrap (images/common/gpubroker-start.sh), like RunPod's /start.sh, installs
		// PUBLIC_KEY (and SSH_PUBLIC_KEY, RunPod's per-pod override) into authorized_keys, one
		// key a line. Setting it ourselves also stops startSsh from injecting the keys of our
		// RunPod account instead. 22/tcp gets a public port, so ssh.direct exists: the proxy
		// endpoint takes only the account's keys, never the customer's.
		keys := strings.Join(r.SSHPublicKeys, "\n")
		env["PUBLIC_KEY"], env["SSH_PUBLIC_KEY"] = keys, keys
		ports = append(ports, sshPort)
	}
	switch r.IDE {
	case gpu.IDEJupyter:
		ports = append(ports, jupyterPort)
		// JUPYTER_PASSWORD is the Jupyter token in RunPod-convention images and ours; setting
		// it keeps startJupyter from generating one nobody knows.
		if r.IDESecret != "" {
			env["JUPYTER_PASSWORD"] = r.IDESecret
		}
	case gpu.IDECodeServer:
		ports = append(ports, codeServerPort)
		// code-server's own variable: --auth password with this password.
		if r.IDESecret != "" {
			env["PASSWORD"] = r.IDESecret
		}
	}
	if r.BootURL != "" && r.BootSecret != "" {
		env["GPUBROKER_BOOT_URL"], env["GPUBROKER_BOOT_SECRET"] = r.BootURL, r.BootSecret
	}
	if w := r.Workspace; !w.IsZero() {
		env["GPUBROKER_WORKSPACE_URL"] = w.URL
		env["GPUBROKER_WORKSPACE_SHA256"] = w.SHA256
		env["GPUBROKER_WORKSPACE_PATH"] = w.Path
	}
	for _, p := range r.Ports {
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	body := map[string]any{
		"name":  r.Name,
		"image": r.Image,
		// The workspace images are built for CUDA 12: a host with an older driver cannot run
		// them, so the scheduler must not place the pod there.
		"gpu": map[string]any{"id": gpuType, "count": 1, "minCudaVersion": MinCudaVersion},
		// /workspace on a persistent mount survives a container restart; the container disk
		// does not (wiped on restart).
		"disk":          c.diskGB(),
		"mounts":        map[string]any{"persistent": map[string]any{"path": "/workspace", "size": WorkspaceGB}},
		"cloud":         cloud,
		"dataCenterIds": []string{dataCenter},
		"ports":         ports,
		"env":           env,
		"startSsh":      ssh,
		"startJupyter":  r.IDE == gpu.IDEJupyter,
		// v2 has no dockerStartCmd (v1's): args is the container's command, one string.
		"args": images.Args(start),
	}
	var p pod
	if err := c.do(ctx, http.MethodPost, "/v2/pods", body, &p); err != nil {
		return nil, err
	}
	inst := c.convert(p)
	if inst.Region == "" {
		inst.Region = r.Offer.Region
	}
	if inst.CentsPerHour == 0 {
		inst.CentsPerHour = r.Offer.CentsPerHour
	}
	return inst, nil
}

// GetInstance returns the pod with the given id.
func (c *Client) GetInstance(ctx context.Context, id string) (*gpu.Instance, error) {
	var p pod
	if err := c.do(ctx, http.MethodGet, "/v2/pods/"+url.PathEscape(id), nil, &p); err != nil {
		return nil, err
	}
	return c.convert(p), nil
}

// ListInstances returns the account's live pods (GET /v2/pods). The API has no name filter
// for gpu.FindInstance and no paging: every pod of the account comes in one answer (about 3 KB
// each), which may be far longer than any other (httpjson.MaxListAnswer). The health watch
// reads it once a pass for the whole fleet.
func (c *Client) ListInstances(ctx context.Context) ([]gpu.Instance, error) {
	data, err := c.api.DoUpTo(ctx, http.MethodGet, "/v2/pods", nil, httpjson.MaxListAnswer)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Pods []pod `json:"pods"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("runpod: GET /v2/pods: decode response: %w", err)
	}
	var out []gpu.Instance
	for _, p := range resp.Pods {
		if inst := c.convert(p); inst.State.Live() {
			out = append(out, *inst)
		}
	}
	return out, nil
}

// Terminate deletes the pod (DELETE /v2/pods/{id}, the same as the terminate action). A pod
// that is already gone answers 404, which is success here.
func (c *Client) Terminate(ctx context.Context, id string) error {
	err := c.do(ctx, http.MethodDelete, "/v2/pods/"+url.PathEscape(id), nil, nil)
	if errors.Is(err, gpu.ErrNotFound) {
		return nil
	}
	return err
}

// convert maps a RunPod pod to our instance. Connection details are reported only while the
// pod runs; SSH only on the direct endpoint (see directSSH).
// proxy is where port of pod id answers over HTTPS.
func (c *Client) proxy(id string, port int) string {
	u := c.cfg.ProxyURL
	if u == "" {
		u = DefaultProxyURL
	}
	return strings.NewReplacer("{pod}", id, "{port}", strconv.Itoa(port)).Replace(u)
}

func (c *Client) convert(p pod) *gpu.Instance {
	out := &gpu.Instance{
		ID:           p.ID,
		Provider:     c.Name(),
		Name:         p.Name,
		Region:       c.region(p.DataCenterID),
		CentsPerHour: cents(p.Cost),
	}
	if p.GPU != nil {
		out.GPU = c.cfg.GPUTypes[p.GPU.ID]
	}
	// The v2 PodStatus enum: PROVISIONING, STARTING, RUNNING, EXITED, ERROR, TERMINATED.
	switch p.Status {
	case "PROVISIONING":
		out.State = gpu.StatePending
	case "STARTING":
		out.State = gpu.StateBooting
	case "RUNNING":
		out.State = gpu.StateRunning
	case "EXITED":
		// We never stop pods, so an exited container means the workspace died.
		out.State = gpu.StateFailed
		out.Error = "RunPod reports the container exited"
	case "ERROR":
		out.State = gpu.StateFailed
		out.Error = "RunPod reports the container in an unrecoverable error state"
	case "TERMINATED":
		out.State = gpu.StateTerminated
	default:
		// Not in the v2 PodStatus enum (a MIGRATING added later, say): not known to be running,
		// not known to be dead. Callers wait, as for a provider that cannot answer, rather than
		// fail (and refund) a pod that may run.
		out.State = gpu.StateUnknown
		out.Error = fmt.Sprintf("unknown RunPod status %q", p.Status)
	}
	if out.State != gpu.StateRunning {
		return out
	}
	if ssh := directSSH(p); ssh != nil {
		out.SSHHost, out.SSHPort, out.SSHUser = ssh.Host, ssh.Port, ssh.Username
	}
	if slices.Contains(p.Ports, jupyterPort) {
		// Without the token: the app adds ?token=<IDESecret>.
		out.JupyterURL = c.proxy(p.ID, 8888)
	}
	if slices.Contains(p.Ports, codeServerPort) {
		out.CodeServerURL = c.proxy(p.ID, 8080)
	}
	return out
}

// directSSH is the pod's direct SSH endpoint: ssh.direct, or else the public mapping of port
// 22 in runtime.ports, or nil. The proxy endpoint (ssh.proxy) is never used: it authenticates
// with the keys registered on our RunPod account only, so a customer's key would not work.
func directSSH(p pod) *sshEndpoint {
	if d := p.SSH.Direct; d != nil && d.Host != "" && d.Port > 0 {
		return d
	}
	if p.Runtime != nil {
		for _, m := range p.Runtime.Ports {
			if m.Private == 22 && m.Type == "tcp" && m.Public != nil && *m.Public > 0 && m.IP != nil && *m.IP != "" {
				return &sshEndpoint{Host: *m.IP, Port: *m.Public, Username: "root"}
			}
		}
	}
	return nil
}

// do sends one request and decodes the JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	data, err := c.api.Do(ctx, method, path, body)
	if err != nil || out == nil || len(data) == 0 {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("runpod: %s %s: decode response: %w", method, path, err)
	}
	return nil
}

// classify turns an error answer (application/problem+json) into an error of the gpu classes,
// following the table in the createPod description of the v2 OpenAPI document.
func classify(method, path string, resp *http.Response, data []byte) error {
	var p problem
	_ = json.Unmarshal(data, &p) // a non-JSON body (a proxy's 502 page) leaves p empty
	msg := p.Detail
	if len(p.Errors) > 0 {
		msg += " " + strings.Join(p.Errors, "; ")
	}
	if msg == "" {
		msg = httpjson.Snippet(data)
	}
	detail := fmt.Sprintf("HTTP %d: %s", resp.StatusCode, msg)
	creating := method == http.MethodPost && path == "/v2/pods"

	var class error
	switch status := resp.StatusCode; {
	case status == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %w", detail, &gpu.RateLimitedError{RetryAfter: httpjson.RetryAfter(resp.Header.Get("Retry-After"))})
	case status == http.StatusBadRequest && creating:
		// No capacity carries no code of its own, only a 400. A rule violation is also a 400,
		// but fails the same on every candidate, so the LaunchError's last attempt shows it.
		class = gpu.ErrNoCapacity
	case status == http.StatusUnprocessableEntity && creating:
		// The request broke a rule of the schema (a v1 field name, say): refused the same on
		// every retry, so try the next offer now, elsewhere.
		class = gpu.ErrRefused
	case status == http.StatusForbidden && creating:
		// On create, 403 means this pool is closed to our account: skip the candidate,
		// as the API documents, rather than the whole provider.
		class = gpu.ErrOfferGone
	case status == http.StatusPaymentRequired:
		class = gpu.ErrInsufficientFunds
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		class = gpu.ErrAuth
	case status == http.StatusNotFound:
		class = gpu.ErrNotFound
	case status >= 500:
		class = gpu.ErrUnavailable
	default:
		// 409, 422 and other 4xx: our request is wrong; retrying will not fix it.
		return errors.New(detail)
	}
	return fmt.Errorf("%s: %w", detail, class)
}
