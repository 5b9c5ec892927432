package lambda_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/gputest"
	"gpubroker/gpu/lambda"
	"gpubroker/gpu/lambda/lambdafake"
	"gpubroker/gpu/sim"
	"gpubroker/images"
)

const (
	apiKey = "secret_test_key"
	sshKey = "gpubroker-ops"
)

// instanceTypes replays the documented shape of GET /instance-types: only regions with
// capacity are listed, so a type without capacity has an empty list.
const instanceTypes = `{"data": {
  "gpu_1x_h100_sxm5": {"instance_type": {"name": "gpu_1x_h100_sxm5", "description": "1x H100 (80 GB SXM5)", "gpu_description": "H100 (80 GB SXM5)", "price_cents_per_hour": 329,
      "specs": {"vcpus": 26, "memory_gib": 225, "storage_gib": 2816, "gpus": 1}},
    "regions_with_capacity_available": [{"name": "us-east-1", "description": "Virginia, USA"}, {"name": "us-west-2", "description": "Arizona, USA"}]},
  "gpu_1x_h100_pcie": {"instance_type": {"name": "gpu_1x_h100_pcie", "description": "1x H100 (80 GB PCIe)", "price_cents_per_hour": 249,
      "specs": {"vcpus": 26, "memory_gib": 200, "storage_gib": 1024, "gpus": 1}},
    "regions_with_capacity_available": [{"name": "us-west-1", "description": "California, USA"}]},
  "gpu_1x_a100_sxm4": {"instance_type": {"name": "gpu_1x_a100_sxm4", "description": "1x A100 (40 GB SXM4)", "price_cents_per_hour": 129,
      "specs": {"vcpus": 30, "memory_gib": 200, "storage_gib": 512, "gpus": 1}},
    "regions_with_capacity_available": [{"name": "us-east-1", "description": "Virginia, USA"}]},
  "gpu_1x_a6000": {"instance_type": {"name": "gpu_1x_a6000", "description": "1x A6000 (48 GB)", "price_cents_per_hour": 80,
      "specs": {"vcpus": 14, "memory_gib": 100, "storage_gib": 200, "gpus": 1}},
    "regions_with_capacity_available": [{"name": "us-west-1", "description": "California, USA"}, {"name": "us-south-1", "description": "Texas, USA"}]},
  "gpu_1x_a10": {"instance_type": {"name": "gpu_1x_a10", "description": "1x A10 (24 GB PCIe)", "price_cents_per_hour": 75,
      "specs": {"vcpus": 30, "memory_gib": 200, "storage_gib": 1400, "gpus": 1}},
    "regions_with_capacity_available": []},
  "gpu_8x_h100_sxm5": {"instance_type": {"name": "gpu_8x_h100_sxm5", "description": "8x H100 (80 GB SXM5)", "price_cents_per_hour": 2392,
      "specs": {"vcpus": 208, "memory_gib": 1800, "storage_gib": 24780, "gpus": 8}},
    "regions_with_capacity_available": [{"name": "us-east-1", "description": "Virginia, USA"}]}
}}`

type fakeInstance struct {
	ID, Name, Status, Region, Type string
	Price                          int64
	UserData                       string
	Tags                           []any
}

// registeredKeys are the SSH key names registered in the fake account (POST /ssh-keys).
var registeredKeys = []string{sshKey}

type reply struct {
	status int
	header map[string]string
	body   string
}

// fakeLambda is an in-memory Lambda Cloud API: launch, list, get, terminate, with the
// documented JSON and error envelope, and canned replies to inject failures.
type fakeLambda struct {
	t  *testing.T
	mu sync.Mutex

	instances []*fakeInstance
	launches  []map[string]any
	inject    map[string][]reply // "METHOD /path" → replies to send next
	firewall  lambdafake.Firewall
}

func newFake(t *testing.T) (*fakeLambda, *httptest.Server) {
	f := &fakeLambda{t: t, inject: map[string][]reply{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeLambda) failNext(route string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inject[route] = append(f.inject[route], r)
}

func lambdaError(status int, code, message string) reply {
	return reply{status: status, body: fmt.Sprintf(`{"error": {"code": %q, "message": %q, "suggestion": "Try again."}}`, code, message)}
}

func (f *fakeLambda) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	send := func(rep reply) {
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		io.WriteString(w, rep.body)
	}
	data := func(v any) {
		b, err := json.Marshal(map[string]any{"data": v})
		require.NoError(f.t, err)
		send(reply{status: http.StatusOK, body: string(b)})
	}
	if r.Header.Get("Authorization") != "Bearer "+apiKey {
		send(lambdaError(http.StatusUnauthorized, "global/invalid-api-key", "API key was invalid, expired, or deleted."))
		return
	}
	if r.URL.Path == "/firewall-rules" {
		f.firewall.ServeHTTP(w, r)
		return
	}
	route := r.Method + " " + r.URL.Path
	if strings.HasPrefix(r.URL.Path, "/instances/") {
		route = r.Method + " /instances/{id}"
	}
	if q := f.inject[route]; len(q) > 0 {
		f.inject[route] = q[1:]
		send(q[0])
		return
	}
	var body map[string]any
	if r.Body != nil && r.Method == http.MethodPost {
		require.NoError(f.t, json.NewDecoder(r.Body).Decode(&body))
	}
	switch route {
	case "GET /instance-types":
		send(reply{status: http.StatusOK, body: instanceTypes})
	case "POST /instance-operations/launch":
		f.launches = append(f.launches, body)
		var types map[string]struct {
			InstanceType struct {
				Price int64 `json:"price_cents_per_hour"`
			} `json:"instance_type"`
			Regions []struct{ Name string } `json:"regions_with_capacity_available"`
		}
		require.NoError(f.t, json.Unmarshal([]byte(instanceTypes), &struct{ Data any }{&types}))
		typ, _ := body["instance_type_name"].(string)
		region, _ := body["region_name"].(string)
		// "Currently, exactly one SSH key must be specified", and it must be registered.
		keys, _ := body["ssh_key_names"].([]any)
		if len(keys) != 1 {
			send(lambdaError(http.StatusBadRequest, "global/invalid-parameters", "Exactly one SSH key name is required."))
			return
		}
		if name, _ := keys[0].(string); !slices.Contains(registeredKeys, name) {
			send(lambdaError(http.StatusNotFound, "global/object-does-not-exist", "Specified SSH key does not exist."))
			return
		}
		userData, _ := body["user_data"].(string)
		if len(userData) > 1<<20 {
			send(lambdaError(http.StatusBadRequest, "global/invalid-parameters", "user_data must be at most 1 MB."))
			return
		}
		tags, _ := body["tags"].([]any)
		t, ok := types[typ]
		if !ok || !slices.ContainsFunc(t.Regions, func(r struct{ Name string }) bool { return r.Name == region }) {
			send(lambdaError(http.StatusBadRequest, "instance-operations/launch/insufficient-capacity", "Not enough capacity to fulfill launch request."))
			return
		}
		id := fmt.Sprintf("0920582c7ff041399e34823a0be6%04d", len(f.instances))
		name, _ := body["name"].(string)
		f.instances = append(f.instances, &fakeInstance{ID: id, Name: name, Status: "booting", Region: region, Type: typ, Price: t.InstanceType.Price, UserData: userData, Tags: tags})
		data(map[string]any{"instance_ids": []string{id}})
	case "GET /instances":
		var list []any
		for _, in := range f.instances {
			if in.Status != "terminated" {
				list = append(list, f.render(in))
			}
		}
		data(list)
	case "GET /instances/{id}":
		in := f.find(strings.TrimPrefix(r.URL.Path, "/instances/"))
		if in == nil {
			send(lambdaError(http.StatusNotFound, "global/object-does-not-exist", "Specified instance does not exist."))
			return
		}
		rendered := f.render(in)
		// Each poll moves the instance along, as a boot or a termination would.
		switch in.Status {
		case "booting":
			in.Status = "active"
		case "terminating":
			in.Status = "terminated"
		}
		data(rendered)
	case "POST /instance-operations/terminate":
		var done []any
		for _, id := range body["instance_ids"].([]any) {
			in := f.find(id.(string))
			if in == nil {
				send(lambdaError(http.StatusNotFound, "global/object-does-not-exist", "Specified instance does not exist."))
				return
			}
			if in.Status != "terminated" {
				in.Status = "terminating"
			}
			done = append(done, f.render(in))
		}
		data(map[string]any{"terminated_instances": done})
	default:
		send(reply{status: http.StatusNotFound, body: `{"error": {"code": "global/object-does-not-exist", "message": "Not found."}}`})
	}
}

func (f *fakeLambda) find(id string) *fakeInstance {
	for _, in := range f.instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

// render is an instance as GET /instances/{id} documents it; the IP and Jupyter details
// appear once it is active.
func (f *fakeLambda) render(in *fakeInstance) map[string]any {
	out := map[string]any{
		"id":                in.ID,
		"name":              in.Name,
		"status":            in.Status,
		"ssh_key_names":     []string{sshKey},
		"file_system_names": []string{},
		"region":            map[string]string{"name": in.Region, "description": "somewhere"},
		"instance_type": map[string]any{
			"name": in.Type, "description": in.Type, "price_cents_per_hour": in.Price,
			"specs": map[string]int{"vcpus": 26, "memory_gib": 225, "storage_gib": 2816, "gpus": 1},
		},
		"is_reserved": false,
		"tags":        in.Tags,
	}
	if in.Tags == nil {
		out["tags"] = []any{}
	}
	if in.Status == "active" {
		out["ip"] = "198.51.100.7"
		out["hostname"] = "198-51-100-7.cloud.lambda.ai"
		out["jupyter_token"] = "2c60c3b5a671060bc6148900a3ac7a42"
		// As in the spec's example: the host names the instance, the query carries the token.
		out["jupyter_url"] = "https://jupyter-249e1ccff1894822af39ac822637f881.lambdaspaces.com/?token=2c60c3b5a671060bc6148900a3ac7a42"
	}
	return out
}

func newClient(srv *httptest.Server) *lambda.Client {
	return lambda.New(lambda.Config{
		APIKey:          apiKey,
		BaseURL:         srv.URL,
		HTTPClient:      srv.Client(),
		SSHKeyName:      sshKey,
		RequestInterval: -1,
		LaunchInterval:  -1,
	})
}

func TestConformance(t *testing.T) {
	t.Parallel()
	var fakes sync.Map // *lambda.Client → *fakeLambda
	gputest.Run(t, gputest.Harness{
		New: func(t *testing.T) gpu.Provider {
			f, srv := newFake(t)
			c := newClient(srv)
			fakes.Store(c, f)
			return c
		},
		Query:         gpu.OfferQuery{GPU: "h100", Region: "us-east"},
		RunningWithin: 2 * time.Second,
		// What the VM would do with the launch: cloud-init's keys, the start script's env.
		Asked: func(t *testing.T, p gpu.Provider, name string) gputest.Asked {
			v, _ := fakes.Load(p)
			f := v.(*fakeLambda)
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, l := range f.launches {
				if l["name"] != name {
					continue
				}
				require.Equal(t, []any{sshKey}, l["ssh_key_names"])
				cc, _, env := parseUserData(t, l["user_data"].(string))
				// The IDE the instance was launched for is its tag: Jupyter is Lambda's own,
				// so the bootstrap runs none.
				ide := l["tags"].([]any)[0].(map[string]any)["value"].(string)
				return gputest.Asked{SSHAuthorizedKeys: cc.SSHAuthorizedKeys, IDE: ide,
					IDESecret:    env["JUPYTER_PASSWORD"] + env["PASSWORD"],
					WorkspaceURL: env["GPUBROKER_WORKSPACE_URL"], WorkspaceSHA256: env["GPUBROKER_WORKSPACE_SHA256"], WorkspacePath: env["GPUBROKER_WORKSPACE_PATH"]}
			}
			t.Fatalf("no launch named %s", name)
			return gputest.Asked{}
		},
		// A host failure: Lambda reports the VM unhealthy (preempted is the other death,
		// TestStates).
		Kill: func(t *testing.T, p gpu.Provider, id string) {
			v, _ := fakes.Load(p)
			f := v.(*fakeLambda)
			f.mu.Lock()
			defer f.mu.Unlock()
			in := f.find(id)
			require.NotNil(t, in)
			in.Status = "unhealthy"
		},
	})
}

func TestListOffers(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	c := newClient(srv)
	offers, err := c.ListOffers(context.Background(), gpu.OfferQuery{})
	require.NoError(t, err)
	slices.SortFunc(offers, func(a, b gpu.Offer) int { return strings.Compare(a.ID, b.ID) })
	// The 40 GB A100, the 8x type, the A10 without capacity and us-south-1 are not ours.
	require.Equal(t, []gpu.Offer{
		{Provider: "lambda", ID: "gpu_1x_a6000@us-west-1", GPU: "a6000", Region: "us-west", GPUCount: 1, CentsPerHour: 80, Available: true},
		{Provider: "lambda", ID: "gpu_1x_h100_pcie@us-west-1", GPU: "h100", Region: "us-west", GPUCount: 1, CentsPerHour: 249, Available: true},
		{Provider: "lambda", ID: "gpu_1x_h100_sxm5@us-east-1", GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: 329, Available: true},
		{Provider: "lambda", ID: "gpu_1x_h100_sxm5@us-west-2", GPU: "h100", Region: "us-west", GPUCount: 1, CentsPerHour: 329, Available: true},
	}, offers)

	offers, err = c.ListOffers(context.Background(), gpu.OfferQuery{GPU: "h100", Region: "us-west", MaxCentsPerHour: 300})
	require.NoError(t, err)
	require.Len(t, offers, 1)
	require.Equal(t, "gpu_1x_h100_pcie@us-west-1", offers[0].ID)
}

func TestLaunch(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	ctx := context.Background()
	offer := gpu.Offer{Provider: "lambda", ID: "gpu_1x_h100_sxm5@us-east-1", GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: 329, Available: true}
	inst, err := c.Launch(ctx, gpu.LaunchRequest{Offer: offer, Name: "pod-7", IDE: gpu.IDEJupyter, Image: "ignored"})
	require.NoError(t, err)
	require.Equal(t, gpu.StateBooting, inst.State)
	require.Equal(t, "us-east", inst.Region)
	require.Equal(t, "h100", inst.GPU)
	require.Equal(t, int64(329), inst.CentsPerHour)
	require.Len(t, f.launches, 1)
	launch := maps.Clone(f.launches[0])
	require.True(t, strings.HasPrefix(launch["user_data"].(string), "#cloud-config\n"))
	delete(launch, "user_data")
	require.Equal(t, map[string]any{
		"region_name":        "us-east-1",
		"instance_type_name": "gpu_1x_h100_sxm5",
		"ssh_key_names":      []any{sshKey},
		"name":               "pod-7",
		"quantity":           float64(1),
		"tags":               []any{map[string]any{"key": "gpubroker-ide", "value": "jupyter"}},
	}, launch)

	got, err := c.GetInstance(ctx, inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateBooting, got.State)
	require.Empty(t, got.SSHHost, "no connection details while booting")

	got, err = c.GetInstance(ctx, inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateRunning, got.State)
	require.Equal(t, "198.51.100.7", got.SSHHost)
	require.Equal(t, "ubuntu", got.SSHUser)
	require.Equal(t, 22, got.SSHPort)
	// Lambda's own JupyterLab (its certificate is valid): the link without its token, which
	// becomes the pod's secret.
	require.Equal(t, "https://jupyter-249e1ccff1894822af39ac822637f881.lambdaspaces.com/", got.JupyterURL)
	require.Equal(t, "2c60c3b5a671060bc6148900a3ac7a42", got.IDESecret)
	require.Empty(t, got.CodeServerURL)

	_, err = c.Launch(ctx, gpu.LaunchRequest{Offer: gpu.Offer{ID: "gpu_1x_a100_sxm4@us-east-1"}, Name: "pod-8"})
	require.ErrorIs(t, err, gpu.ErrOfferGone, "a 40 GB A100 is not an offer we sell")
	_, err = c.Launch(ctx, gpu.LaunchRequest{Offer: gpu.Offer{ID: "garbage"}, Name: "pod-8"})
	require.ErrorIs(t, err, gpu.ErrOfferGone)
	require.Len(t, f.launches, 1)
}

func TestErrors(t *testing.T) {
	t.Parallel()
	offer := gpu.Offer{ID: "gpu_1x_h100_sxm5@us-east-1", GPU: "h100", Region: "us-east", CentsPerHour: 329}
	for _, tc := range []struct {
		name  string
		reply reply
		check func(t *testing.T, err error)
	}{
		{"insufficient capacity", lambdaError(400, "instance-operations/launch/insufficient-capacity", "Not enough capacity to fulfill launch request."),
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrNoCapacity)
				require.True(t, gpu.Failover(err))
			}},
		{"invalid api key", lambdaError(401, "global/invalid-api-key", "API key was invalid, expired, or deleted."),
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrAuth)
				require.True(t, gpu.SkipProvider(err))
			}},
		{"quota exceeded", lambdaError(400, "global/quota-exceeded", "Quota exceeded."),
			func(t *testing.T, err error) { require.ErrorIs(t, err, gpu.ErrInsufficientFunds) }},
		{"account inactive", lambdaError(403, "global/account-inactive", "Your account is inactive."),
			func(t *testing.T, err error) { require.ErrorIs(t, err, gpu.ErrInsufficientFunds) }},
		{"ssh key missing", lambdaError(404, "global/object-does-not-exist", "Specified SSH key does not exist."),
			func(t *testing.T, err error) {
				// A wrong or deleted LAMBDA_SSH_KEY_NAME: our configuration, not a missing instance.
				require.ErrorIs(t, err, gpu.ErrProviderConfig)
				require.NotErrorIs(t, err, gpu.ErrNotFound)
				require.True(t, gpu.Failover(err))
				require.Contains(t, err.Error(), "Specified SSH key does not exist.")
			}},
		{"ssh key missing (400)", lambdaError(400, "global/object-does-not-exist", "Specified SSH key does not exist."),
			func(t *testing.T, err error) { require.ErrorIs(t, err, gpu.ErrProviderConfig) }},
		{"provider error", lambdaError(503, "provider/internal-unavailable", "Provider unavailable."),
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrUnavailable)
				require.True(t, gpu.Retryable(err))
			}},
		{"bare 502", reply{status: 502, body: "<html>Bad Gateway</html>"},
			func(t *testing.T, err error) {
				require.True(t, gpu.Retryable(err))
				require.Contains(t, err.Error(), "Bad Gateway")
			}},
		{"rate limited", reply{status: 429, header: map[string]string{"Retry-After": "7"}, body: `{"error": {"code": "global/too-many-requests", "message": "Too many requests."}}`},
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrRateLimited)
				require.True(t, gpu.Retryable(err))
				require.Equal(t, 7*time.Second, gpu.RetryAfter(err))
			}},
		{"invalid parameters", lambdaError(400, "global/invalid-parameters", "Invalid request data."),
			func(t *testing.T, err error) {
				// Refused as it is, every time: not worth a retry, but another offer may take it.
				require.ErrorIs(t, err, gpu.ErrRefused)
				require.True(t, gpu.Failover(err))
				require.False(t, gpu.Retryable(err) || gpu.SkipProvider(err))
				require.Contains(t, err.Error(), "global/invalid-parameters")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, srv := newFake(t)
			f.failNext("POST /instance-operations/launch", tc.reply)
			_, err := newClient(srv).Launch(context.Background(), gpu.LaunchRequest{Offer: offer, Name: "pod-1"})
			require.Error(t, err)
			tc.check(t, err)
		})
	}
}

func TestBadKey(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	c := lambda.New(lambda.Config{APIKey: "wrong", BaseURL: srv.URL, SSHKeyName: sshKey, RequestInterval: -1})
	_, err := c.ListOffers(context.Background(), gpu.OfferQuery{})
	require.ErrorIs(t, err, gpu.ErrAuth)
}

func TestStates(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	for status, want := range map[string]gpu.State{
		"booting": gpu.StateBooting, "active": gpu.StateRunning, "unhealthy": gpu.StateFailed,
		"terminating": gpu.StateTerminating, "terminated": gpu.StateTerminated, "preempted": gpu.StateFailed,
		// Not in Lambda's spec (booting, active, unhealthy, terminating, terminated, preempted):
		// a status added later says nothing about whether the VM is dead.
		"migrating": gpu.StateUnknown,
	} {
		f.mu.Lock()
		f.instances = append(f.instances, &fakeInstance{ID: "i-" + status, Name: "n-" + status, Status: status, Region: "us-west-2", Type: "gpu_1x_h100_sxm5", Price: 329})
		f.mu.Unlock()
		got, err := c.GetInstance(context.Background(), "i-"+status)
		require.NoError(t, err)
		require.Equal(t, want, got.State, status)
		require.Equal(t, "us-west", got.Region)
		if want == gpu.StateFailed || want == gpu.StateUnknown {
			require.NotEmpty(t, got.Error)
		}
	}
	// An unhealthy or preempted instance is still ours to terminate, so a retried job must
	// find it.
	for _, status := range []string{"unhealthy", "preempted"} {
		found, err := gpu.FindInstance(context.Background(), c, "n-"+status)
		require.NoError(t, err)
		require.Equal(t, "i-"+status, found.ID)
	}
	_, err := gpu.FindInstance(context.Background(), c, "n-terminating")
	require.ErrorIs(t, err, gpu.ErrNotFound)
}

// Terminating an instance Lambda has already dropped answers with an error we do not know;
// Terminate checks the instance and reports success.
func TestTerminateAlreadyGone(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	f.mu.Lock()
	f.instances = append(f.instances, &fakeInstance{ID: "i-1", Name: "n", Status: "terminated", Region: "us-east-1", Type: "gpu_1x_a10"})
	f.mu.Unlock()
	f.failNext("POST /instance-operations/terminate", lambdaError(400, "global/invalid-parameters", "Instance is already terminated."))
	require.NoError(t, c.Terminate(context.Background(), "i-1"))

	f.failNext("POST /instance-operations/terminate", lambdaError(503, "provider/internal-unavailable", "Provider unavailable."))
	require.ErrorIs(t, c.Terminate(context.Background(), "i-1"), gpu.ErrUnavailable, "a transient failure is not success")
}

// fakeClock records the sleeps a pacer asks for and moves time by them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func TestPacing(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	clock := &fakeClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	c := lambda.New(lambda.Config{APIKey: apiKey, BaseURL: srv.URL, SSHKeyName: sshKey, Now: clock.Now, Sleep: clock.Sleep})
	ctx := context.Background()

	for range 3 {
		_, err := c.ListOffers(ctx, gpu.OfferQuery{})
		require.NoError(t, err)
	}
	require.Equal(t, []time.Duration{time.Second, time.Second}, clock.sleeps, "one request a second")

	clock.sleeps = nil
	offer := gpu.Offer{ID: "gpu_1x_h100_sxm5@us-east-1"}
	for i := range 2 {
		_, err := c.Launch(ctx, gpu.LaunchRequest{Offer: offer, Name: fmt.Sprintf("pod-%d", i)})
		require.NoError(t, err)
	}
	require.Len(t, f.launches, 2)
	var total time.Duration
	for _, d := range clock.sleeps {
		total += d
	}
	require.GreaterOrEqual(t, total, 12*time.Second, "one launch every 12 s: %v", clock.sleeps)
	require.Less(t, total, 14*time.Second, "%v", clock.sleeps)
}

func TestPacingConcurrent(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	clock := &fakeClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	// A clock that does not move while callers sleep shows the queue: 0, 1, 2, 3 s.
	frozen := func() time.Time { return time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC) }
	c := lambda.New(lambda.Config{APIKey: apiKey, BaseURL: srv.URL, SSHKeyName: sshKey, Now: frozen, Sleep: clock.Sleep})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_, err := c.ListOffers(context.Background(), gpu.OfferQuery{})
			require.NoError(t, err)
		})
	}
	wg.Wait()
	slices.Sort(clock.sleeps)
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, clock.sleeps)
}

func TestPacingRespectsContext(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	c := lambda.New(lambda.Config{APIKey: apiKey, BaseURL: srv.URL, SSHKeyName: sshKey, RequestInterval: time.Hour})
	_, err := c.ListOffers(context.Background(), gpu.OfferQuery{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = c.ListOffers(ctx, gpu.OfferQuery{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// A wrong or deleted LAMBDA_SSH_KEY_NAME makes every Lambda launch answer
// global/object-does-not-exist. The broker must fail over to the next provider (it used to
// stop, so every order whose cheapest offer was on Lambda ended in a refund).
func TestMissingSSHKeyFailsOver(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	for range 3 {
		f.failNext("POST /instance-operations/launch", lambdaError(404, "global/object-does-not-exist", "Specified SSH key does not exist."))
	}
	runpod := sim.New(sim.Options{Name: "runpod", Offers: []gpu.Offer{{ID: "h100-dear", GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: 400, Available: true}}})
	b := gpu.NewBroker(newClient(srv), runpod)
	b.Logger = slog.New(slog.DiscardHandler)
	inst, o, attempts, err := b.Launch(context.Background(), gpu.OfferQuery{GPU: "h100", Region: "us-east"},
		gpu.LaunchRequest{Name: "pod-1", IDE: gpu.IDEJupyter}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, "runpod", inst.Provider)
	require.Equal(t, "h100-dear", o.ID)
	require.Len(t, attempts, 1)
	require.Equal(t, "lambda", attempts[0].Offer.Provider)
	require.ErrorIs(t, attempts[0].Err, gpu.ErrProviderConfig)
	f.mu.Lock()
	require.Len(t, f.inject["POST /instance-operations/launch"], 2, "Lambda is skipped after its first configuration error")
	f.mu.Unlock()

	// No key configured at all is the same fault, found before any request.
	c := lambda.New(lambda.Config{APIKey: apiKey, BaseURL: srv.URL, RequestInterval: -1, LaunchInterval: -1})
	_, err = c.Launch(context.Background(), gpu.LaunchRequest{Offer: gpu.Offer{ID: "gpu_1x_h100_sxm5@us-east-1"}, Name: "pod-2"})
	require.ErrorIs(t, err, gpu.ErrProviderConfig)

	// Elsewhere object-does-not-exist still means the instance is gone.
	f.failNext("GET /instances/{id}", lambdaError(404, "global/object-does-not-exist", "Instance does not exist."))
	_, err = newClient(srv).GetInstance(context.Background(), "i-gone")
	require.ErrorIs(t, err, gpu.ErrNotFound)
	require.NotErrorIs(t, err, gpu.ErrProviderConfig)
}

const (
	keyA   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop"
	keyB   = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBob bob@desk"
	secret = "ide-secret-4b1c9a"
)

var workspace = gpu.Workspace{Name: "serve-an-open-model", Path: "/workspace/serve-an-open-model",
	URL: "https://gpubroker.dev/workspaces/developer-9f86d081884c.tar.gz", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}

// cloudConfig is the cloud-init document of a launch, which we write as JSON (a subset of
// YAML) after the #cloud-config line.
type cloudConfig struct {
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
	WriteFiles        []struct {
		Path, Permissions, Encoding, Content, Owner string
	} `json:"write_files"`
	RunCmd []string `json:"runcmd"`
}

func parseUserData(t *testing.T, userData string) (cloudConfig, map[string]string, map[string]string) {
	t.Helper()
	doc, ok := strings.CutPrefix(userData, "#cloud-config\n")
	require.True(t, ok, "a cloud-config document")
	var cc cloudConfig
	require.NoError(t, json.Unmarshal([]byte(doc), &cc))
	files := map[string]string{}
	for _, f := range cc.WriteFiles {
		content := f.Content
		if f.Encoding == "b64" {
			b, err := base64.StdEncoding.DecodeString(content)
			require.NoError(t, err)
			content = string(b)
		}
		files[f.Path] = content
	}
	env := map[string]string{}
	for _, line := range strings.Split(files["/etc/gpubroker/workspace.env"], "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return cc, files, env
}

// The customer's keys go into cloud-init's ssh_authorized_keys (the ubuntu user), next to the
// operator's one registered key in ssh_key_names; the workspace and the IDE with its secret
// are set up by the same start script the images run.
func TestLaunchUserData(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	ctx := context.Background()
	offer := gpu.Offer{ID: "gpu_1x_h100_sxm5@us-east-1"}
	inst, err := c.Launch(ctx, gpu.LaunchRequest{Offer: offer, Name: "pod-9", IDE: gpu.IDECodeServer, Image: "ignored on VMs",
		SSHPublicKeys: []string{keyA, keyB}, IDESecret: secret, Workspace: workspace})
	require.NoError(t, err)
	require.Equal(t, []any{sshKey}, f.launches[0]["ssh_key_names"], "exactly one, registered: the operator's")
	userData := f.launches[0]["user_data"].(string)
	cc, files, env := parseUserData(t, userData)
	require.Equal(t, []string{keyA, keyB}, cc.SSHAuthorizedKeys)
	require.Equal(t, string(images.StartScript), files["/usr/local/bin/gpubroker-start.sh"])
	require.Equal(t, "code-server", env["GPUBROKER_IDE"])
	require.Equal(t, secret, env["PASSWORD"])
	require.Equal(t, "8080", env["GPUBROKER_IDE_PORT"], "behind Caddy")
	require.NotContains(t, env, "GPUBROKER_TLS_CERT", "Caddy terminates TLS")
	require.Equal(t, "{$GPUBROKER_HOST} {\n\treverse_proxy 127.0.0.1:8080\n}\n", files["/etc/gpubroker/Caddyfile"])
	require.Contains(t, cc.RunCmd, "/usr/local/bin/gpubroker-public-host > /etc/gpubroker/caddy.env")
	require.Contains(t, strings.Join(cc.RunCmd, "\n"), "caddy_"+lambda.CaddyVersion+"_linux_amd64.tar.gz && echo '")
	require.Contains(t, strings.Join(cc.RunCmd, "\n"), "sha512sum -c -")
	require.Contains(t, cc.RunCmd, "systemctl enable --now gpubroker-caddy.service")
	require.Contains(t, files["/etc/systemd/system/gpubroker-caddy.service"], "AmbientCapabilities=CAP_NET_BIND_SERVICE")
	require.Equal(t, "0", env["GPUBROKER_SSHD"], "the VM's own sshd already runs")
	require.Equal(t, workspace.URL, env["GPUBROKER_WORKSPACE_URL"])
	require.Equal(t, workspace.SHA256, env["GPUBROKER_WORKSPACE_SHA256"])
	require.Equal(t, workspace.Path, env["GPUBROKER_WORKSPACE_PATH"])
	require.Contains(t, files["/etc/systemd/system/gpubroker-ide.service"], "User=ubuntu")
	// No unchecked code-server download: the bootstrap installs it, pinned by npm's integrity,
	// and it listens on loopback for Caddy alone.
	require.NotContains(t, strings.Join(cc.RunCmd, "\n"), "code-server")
	require.Equal(t, "127.0.0.1", env["GPUBROKER_IDE_BIND"])
	require.Contains(t, strings.Join(cc.RunCmd, "\n"), "systemctl enable --now gpubroker-ide.service")
	for _, fl := range cc.WriteFiles {
		if fl.Path == "/etc/gpubroker/workspace.env" {
			require.Equal(t, "0600", fl.Permissions, "the secret is readable by root only")
		}
	}

	for range 2 {
		_, err = c.GetInstance(ctx, inst.ID)
		require.NoError(t, err)
	}
	got, err := c.GetInstance(ctx, inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateRunning, got.State)
	require.Equal(t, "https://198-51-100-7.nip.io/", got.CodeServerURL, "Caddy's certificate, on 443")
	require.Empty(t, got.JupyterURL, "Lambda's own Jupyter is not the code-server workspace")
	require.Empty(t, got.IDESecret, "code-server's password is ours")
	require.Equal(t, "ubuntu", got.SSHUser)

	// Jupyter is Lambda's own, with Lambda's token: the bootstrap only unpacks the workspace,
	// which Jupyter's root (the ubuntu user's home) shows through a link; no code-server.
	_, err = c.Launch(ctx, gpu.LaunchRequest{Offer: offer, Name: "pod-10", IDE: gpu.IDEJupyter, IDESecret: secret,
		BootURL: "https://gpubroker.example/api/pods/10/boot", BootSecret: "boot-s3cret"})
	require.NoError(t, err)
	cc, files, env = parseUserData(t, f.launches[1]["user_data"].(string))
	require.Equal(t, "none", env["GPUBROKER_IDE"])
	require.Empty(t, env["JUPYTER_PASSWORD"], "Lambda's Jupyter has Lambda's token")
	require.Contains(t, cc.RunCmd, "ln -sfn /workspace /home/ubuntu/workspace && chown -h ubuntu:ubuntu /home/ubuntu/workspace")
	require.NotContains(t, files, "/etc/gpubroker/Caddyfile")
	require.NotContains(t, strings.Join(cc.RunCmd, "\n"), "caddy")
	require.Equal(t, "https://gpubroker.example/api/pods/10/boot", env["GPUBROKER_BOOT_URL"], "the bootstrap reports its steps")
	require.Equal(t, "boot-s3cret", env["GPUBROKER_BOOT_SECRET"])
	require.Empty(t, env["PASSWORD"])
	require.Empty(t, cc.SSHAuthorizedKeys, "no customer keys")
	require.NotContains(t, strings.Join(cc.RunCmd, "\n"), "code-server")
	require.NotContains(t, env, "GPUBROKER_WORKSPACE_URL")
}

// Lambda takes at most 1 MB of user_data; a launch that would pass it is refused before any
// request, as a bug of ours, not a capacity problem.
func TestUserDataLimit(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	keys := make([]string, 0, 300)
	for i := range cap(keys) {
		keys = append(keys, "ssh-rsa "+strings.Repeat("A", 4000)+fmt.Sprintf(" key-%d", i))
	}
	_, err := c.Launch(context.Background(), gpu.LaunchRequest{Offer: gpu.Offer{ID: "gpu_1x_h100_sxm5@us-east-1"}, Name: "pod-big", SSHPublicKeys: keys})
	require.ErrorContains(t, err, "user_data")
	require.False(t, gpu.Failover(err) || gpu.Retryable(err))
	require.Empty(t, f.launches, "nothing sent")
}

// The fake follows the spec: an unregistered key name is object-does-not-exist, so a wrong
// LAMBDA_SSH_KEY_NAME is a configuration error the broker fails over from.
func TestUnregisteredKeyName(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	c := lambda.New(lambda.Config{APIKey: apiKey, BaseURL: srv.URL, SSHKeyName: "not-registered", RequestInterval: -1, LaunchInterval: -1})
	_, err := c.Launch(context.Background(), gpu.LaunchRequest{Offer: gpu.Offer{ID: "gpu_1x_h100_sxm5@us-east-1"}, Name: "pod-1"})
	require.ErrorIs(t, err, gpu.ErrProviderConfig)
}
