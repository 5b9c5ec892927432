package runpod_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/gputest"
	"gpubroker/gpu/runpod"
	"gpubroker/images"
)

const apiKey = "rpa_TESTKEY"

// catalog replays the documented shape of GET /v2/catalog/gpus?include=AVAILABILITY&product=POD.
const catalog = `{"gpus": [
  {"id": "NVIDIA H100 80GB HBM3", "name": "H100 SXM", "pool": "HOPPER_80", "manufacturer": "NVIDIA", "memory": 80,
   "secure": true, "community": true, "price": {"secure": 2.69, "community": 1.99, "serverless": 4.18},
   "maxCount": {"secure": 8, "community": 8}, "availability": "LOW",
   "dataCenters": [{"id": "US-KS-2", "name": "US Kansas 2", "availability": "LOW"},
                   {"id": "US-TX-3", "name": "US Texas 3", "availability": "MEDIUM"},
                   {"id": "US-CA-2", "name": "US California 2", "availability": "NONE"},
                   {"id": "EU-RO-1", "name": "EU Romania 1", "availability": "HIGH"},
                   {"id": "AP-JP-1", "name": "Japan 1", "availability": "HIGH"}]},
  {"id": "NVIDIA GeForce RTX 4090", "name": "RTX 4090", "pool": "ADA_24", "manufacturer": "NVIDIA", "memory": 24,
   "secure": true, "community": true, "price": {"secure": 0.44, "community": 0.31, "serverless": 1.1},
   "maxCount": {"secure": 8, "community": 4}, "availability": "HIGH",
   "dataCenters": [{"id": "US-KS-2", "name": "US Kansas 2", "availability": "HIGH"},
                   {"id": "EU-SE-1", "name": "EU Sweden 1", "availability": "HIGH"}]},
  {"id": "NVIDIA H100 NVL", "name": "H100 NVL", "pool": null, "manufacturer": "NVIDIA", "memory": 94,
   "secure": true, "community": false, "price": {"secure": 2.79, "community": 0},
   "maxCount": {"secure": 8, "community": 0}, "availability": "HIGH",
   "dataCenters": [{"id": "US-KS-2", "name": "US Kansas 2", "availability": "HIGH"}]},
  {"id": "NVIDIA RTX A6000", "name": "RTX A6000", "pool": "AMPERE_48", "manufacturer": "NVIDIA", "memory": 48,
   "secure": false, "community": true, "price": {"secure": 0, "community": 0.33},
   "maxCount": {"secure": 0, "community": 8}, "availability": "MEDIUM",
   "dataCenters": [{"id": "US-GA-1", "name": "US Georgia 1", "availability": "MEDIUM"}]}
]}`

type reply struct {
	status int
	header map[string]string
	body   string
}

func problem(status int, title, detail string) reply {
	return reply{status: status, body: fmt.Sprintf(`{"title": %q, "status": %d, "detail": %q}`, title, status, detail)}
}

type fakePod struct {
	ID, Name, Status, DataCenter, GPU string
	Ports                             []string
	Env                               map[string]string
	Cost                              float64
}

// fakeRunPod is an in-memory RunPod REST v2 API for pods and the GPU catalog, with the
// documented JSON and problem+json errors, and canned replies to inject failures.
type fakeRunPod struct {
	t  *testing.T
	mu sync.Mutex

	pods    []*fakePod
	creates []map[string]any
	queries []string
	inject  map[string][]reply // "METHOD /path" → replies to send next
}

func newFake(t *testing.T) (*fakeRunPod, *httptest.Server) {
	f := &fakeRunPod{t: t, inject: map[string][]reply{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeRunPod) failNext(route string, r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inject[route] = append(f.inject[route], r)
}

func (f *fakeRunPod) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	send := func(rep reply) {
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		if rep.status >= 400 {
			w.Header().Set("Content-Type", "application/problem+json")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(rep.status)
		io.WriteString(w, rep.body)
	}
	sendJSON := func(status int, v any) {
		b, err := json.Marshal(v)
		require.NoError(f.t, err)
		send(reply{status: status, body: string(b)})
	}
	if r.Header.Get("Authorization") != "Bearer "+apiKey {
		send(problem(401, "Unauthorized", "invalid bearer token"))
		return
	}
	route := r.Method + " " + r.URL.Path
	id := ""
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v2/pods/"); ok {
		route, id = r.Method+" /v2/pods/{id}", rest
	}
	if q := f.inject[route]; len(q) > 0 {
		f.inject[route] = q[1:]
		send(q[0])
		return
	}
	switch route {
	case "GET /v2/catalog/gpus":
		f.queries = append(f.queries, r.URL.RawQuery)
		q := r.URL.Query()
		if q.Get("include") != "AVAILABILITY" || q.Get("product") != "POD" {
			send(problem(400, "Bad Request", "include=AVAILABILITY requires product"))
			return
		}
		send(reply{status: 200, body: catalog})
	case "POST /v2/pods":
		var body map[string]any
		require.NoError(f.t, json.NewDecoder(r.Body).Decode(&body))
		f.creates = append(f.creates, body)
		g, _ := body["gpu"].(map[string]any)
		dcs, _ := body["dataCenterIds"].([]any)
		if body["name"] == "" || body["image"] == nil || g == nil || len(dcs) != 1 {
			send(reply{status: 422, body: `{"title": "Unprocessable Entity", "status": 422, "detail": "Request validation failed.", "errors": ["$: missing fields"]}`})
			return
		}
		price, ok := stock(g["id"].(string), dcs[0].(string))
		if !ok {
			send(problem(400, "Bad Request", "There are no longer any instances available with the requested specifications."))
			return
		}
		p := &fakePod{
			ID: fmt.Sprintf("7h9k2m4n%02d", len(f.pods)), Name: body["name"].(string), Status: "PROVISIONING",
			DataCenter: dcs[0].(string), GPU: g["id"].(string), Cost: price, Env: map[string]string{},
		}
		for _, port := range body["ports"].([]any) {
			p.Ports = append(p.Ports, port.(string))
		}
		for k, v := range body["env"].(map[string]any) {
			p.Env[k] = v.(string)
		}
		f.pods = append(f.pods, p)
		sendJSON(201, render(p))
	case "GET /v2/pods":
		list := []any{}
		for _, p := range f.pods {
			list = append(list, render(p))
		}
		sendJSON(200, map[string]any{"pods": list})
	case "GET /v2/pods/{id}":
		p := f.find(id)
		if p == nil {
			send(problem(404, "Not Found", "pod not found"))
			return
		}
		sendJSON(200, render(p))
		// Each poll moves the pod along, as provisioning would.
		switch p.Status {
		case "PROVISIONING":
			p.Status = "STARTING"
		case "STARTING":
			p.Status = "RUNNING"
		}
	case "DELETE /v2/pods/{id}":
		i := slices.IndexFunc(f.pods, func(p *fakePod) bool { return p.ID == id })
		if i < 0 {
			send(problem(404, "Not Found", "pod not found"))
			return
		}
		// A deleted pod is gone: not listed, and 404 from then on.
		f.pods = slices.Delete(f.pods, i, i+1)
		w.WriteHeader(http.StatusNoContent)
	default:
		send(problem(404, "Not Found", "no route"))
	}
}

// stock reports whether the catalog has the GPU in stock in the data center, and its price.
func stock(gpuID, dc string) (float64, bool) {
	var c struct {
		GPUs []struct {
			ID    string
			Price struct{ Secure float64 }
			DCs   []struct{ ID, Availability string } `json:"dataCenters"`
		}
	}
	if err := json.Unmarshal([]byte(catalog), &c); err != nil {
		panic(err)
	}
	for _, g := range c.GPUs {
		for _, d := range g.DCs {
			if g.ID == gpuID && d.ID == dc && d.Availability != "NONE" {
				return g.Price.Secure, true
			}
		}
	}
	return 0, false
}

func (f *fakeRunPod) find(id string) *fakePod {
	for _, p := range f.pods {
		if p.ID == id {
			return p
		}
	}
	return nil
}

// render is a pod as getPod documents it: the proxy SSH endpoint once placed, the direct one
// only while running.
func render(p *fakePod) map[string]any {
	out := map[string]any{
		"id": p.ID, "name": p.Name, "image": "gpubroker/datascience:pytorch2-cuda12", "args": "", "disk": 50,
		"ports": p.Ports, "env": p.Env, "registry": nil, "status": p.Status, "actions": []string{"stop", "terminate"},
		"mounts": map[string]any{}, "gpu": map[string]any{"id": p.GPU, "count": 1}, "cloud": "SECURE",
		"dataCenterId": p.DataCenter, "cudaVersion": "12.8", "template": nil, "cost": p.Cost, "locked": false,
		"globalNetworking": map[string]any{"enabled": false}, "runtime": nil,
		"createdAt": "2026-06-01T12:00:00Z", "startedAt": nil,
		"ssh": map[string]any{
			"proxy":  map[string]any{"host": "ssh.runpod.io", "port": 22, "username": p.ID + "-64411eb2", "command": "ssh " + p.ID + "-64411eb2@ssh.runpod.io"},
			"direct": nil,
		},
	}
	if p.Status == "RUNNING" {
		// ssh.direct and the public mapping exist only when 22/tcp was asked for (PodSsh.direct:
		// "Null unless 22/tcp is in ports"); the proxy takes the account's keys only.
		ports := []any{}
		if slices.Contains(p.Ports, "22/tcp") {
			out["ssh"].(map[string]any)["direct"] = map[string]any{"host": "195.26.233.3", "port": 34446, "username": "root", "command": "ssh root@195.26.233.3 -p 34446"}
			ports = append(ports, map[string]any{"private": 22, "public": 34446, "type": "tcp", "ip": "195.26.233.3"})
		}
		for _, port := range p.Ports {
			if strings.HasSuffix(port, "/http") {
				n, _ := strconv.Atoi(strings.TrimSuffix(port, "/http"))
				ports = append(ports, map[string]any{"private": n, "public": nil, "type": "http", "ip": nil})
			}
		}
		out["runtime"] = map[string]any{"uptime": 60, "ports": ports}
		out["startedAt"] = "2026-06-01T12:02:00Z"
	}
	return out
}

// bootstrapURL is where the pods of these tests download the bootstrap.
var bootstrapURL = images.StartScriptURL("https://gpubroker.example")

func newClient(srv *httptest.Server) *runpod.Client {
	return runpod.New(runpod.Config{APIKey: apiKey, BaseURL: srv.URL, HTTPClient: srv.Client(), BootstrapURL: bootstrapURL})
}

// startArgs is the args every pod is created with: download the bootstrap, check it, run it.
func startArgs(t *testing.T) string {
	argv, err := images.StartCommand(bootstrapURL, images.StartScriptSHA256)
	require.NoError(t, err)
	return images.Args(argv)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	var fakes sync.Map // *runpod.Client → *fakeRunPod
	gputest.Run(t, gputest.Harness{
		New: func(t *testing.T) gpu.Provider {
			f, srv := newFake(t)
			c := newClient(srv)
			fakes.Store(c, f)
			return c
		},
		Query:         gpu.OfferQuery{GPU: "h100", Region: "us-east"},
		RunningWithin: 2 * time.Second,
		// What the container would read: its env, as our images' entrypoint does.
		Asked: func(t *testing.T, p gpu.Provider, name string) gputest.Asked {
			v, _ := fakes.Load(p)
			f := v.(*fakeRunPod)
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, c := range f.creates {
				if c["name"] != name {
					continue
				}
				env := map[string]string{}
				for k, v := range c["env"].(map[string]any) {
					env[k] = v.(string)
				}
				var keys []string
				if env["PUBLIC_KEY"] != "" {
					keys = strings.Split(env["PUBLIC_KEY"], "\n")
					require.Equal(t, env["PUBLIC_KEY"], env["SSH_PUBLIC_KEY"])
					require.Contains(t, c["ports"], "22/tcp", "keys work only on the direct port")
				}
				a := gputest.Asked{SSHAuthorizedKeys: keys, IDESecret: env["JUPYTER_PASSWORD"] + env["PASSWORD"],
					WorkspaceURL: env["GPUBROKER_WORKSPACE_URL"], WorkspaceSHA256: env["GPUBROKER_WORKSPACE_SHA256"], WorkspacePath: env["GPUBROKER_WORKSPACE_PATH"]}
				switch {
				case slices.Contains(c["ports"].([]any), any("8888/http")):
					a.IDE = gpu.IDEJupyter
				case slices.Contains(c["ports"].([]any), any("8080/http")):
					a.IDE = gpu.IDECodeServer
				}
				return a
			}
			t.Fatalf("no pod named %s", name)
			return gputest.Asked{}
		},
		// A host failure: RunPod reports the container exited (ERROR is the other death,
		// TestStates).
		Kill: func(t *testing.T, p gpu.Provider, id string) {
			v, _ := fakes.Load(p)
			f := v.(*fakeRunPod)
			f.mu.Lock()
			defer f.mu.Unlock()
			pod := f.find(id)
			require.NotNil(t, pod)
			pod.Status = "EXITED"
		},
	})
}

func TestListOffers(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	offers, err := newClient(srv).ListOffers(context.Background(), gpu.OfferQuery{})
	require.NoError(t, err)
	slices.SortFunc(offers, func(a, b gpu.Offer) int { return strings.Compare(a.ID, b.ID) })
	// The H100 NVL, the community-only A6000 and the Japanese data center are not ours.
	require.Equal(t, []gpu.Offer{
		{Provider: "runpod", ID: "SECURE:EU-RO-1:NVIDIA H100 80GB HBM3", GPU: "h100", Region: "eu-central", GPUCount: 1, CentsPerHour: 269, Available: true},
		{Provider: "runpod", ID: "SECURE:EU-SE-1:NVIDIA GeForce RTX 4090", GPU: "rtx4090", Region: "eu-central", GPUCount: 1, CentsPerHour: 44, Available: true},
		{Provider: "runpod", ID: "SECURE:US-CA-2:NVIDIA H100 80GB HBM3", GPU: "h100", Region: "us-west", GPUCount: 1, CentsPerHour: 269, Available: false},
		{Provider: "runpod", ID: "SECURE:US-KS-2:NVIDIA GeForce RTX 4090", GPU: "rtx4090", Region: "us-east", GPUCount: 1, CentsPerHour: 44, Available: true},
		{Provider: "runpod", ID: "SECURE:US-KS-2:NVIDIA H100 80GB HBM3", GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: 269, Available: true},
		{Provider: "runpod", ID: "SECURE:US-TX-3:NVIDIA H100 80GB HBM3", GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: 269, Available: true},
	}, offers)
	require.Equal(t, []string{"cloud=SECURE&count=1&include=AVAILABILITY&product=POD"}, f.queries)
}

func TestListOffersCommunity(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t)
	c := runpod.New(runpod.Config{APIKey: apiKey, BaseURL: srv.URL, Cloud: "COMMUNITY"})
	offers, err := c.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a6000"})
	require.NoError(t, err)
	require.Equal(t, []gpu.Offer{{Provider: "runpod", ID: "COMMUNITY:US-GA-1:NVIDIA RTX A6000", GPU: "a6000", Region: "us-east", GPUCount: 1, CentsPerHour: 33, Available: true}}, offers)
}

const (
	keyA   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop"
	keyB   = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBob bob@desk"
	secret = "ide-secret-4b1c9a"
	sum    = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

var workspace = gpu.Workspace{Name: "fine-tune-a-small-lm", Path: "/workspace/fine-tune-a-small-lm",
	URL: "https://gpubroker.dev/workspaces/data-science-9f86d081884c.tar.gz", SHA256: sum}

func TestLaunchJupyter(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	ctx := context.Background()
	offer := gpu.Offer{ID: "SECURE:US-KS-2:NVIDIA H100 80GB HBM3", GPU: "h100", Region: "us-east", GPUCount: 1, CentsPerHour: 269}
	inst, err := c.Launch(ctx, gpu.LaunchRequest{
		Offer: offer, Name: "pod-42", Image: "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04", IDE: gpu.IDEJupyter,
		SSHPublicKeys: []string{keyA, keyB}, IDESecret: secret, Workspace: workspace,
		Ports:   []string{"6006/http", "22/tcp"},
		BootURL: "https://gpubroker.example/api/pods/42/boot", BootSecret: "boot-s3cret",
	})
	require.NoError(t, err)
	require.Equal(t, gpu.StatePending, inst.State)
	require.Equal(t, "us-east", inst.Region)
	require.Equal(t, "h100", inst.GPU)
	require.Equal(t, int64(269), inst.CentsPerHour)

	require.Len(t, f.creates, 1)
	body := f.creates[0]
	require.Equal(t, map[string]any{
		"name":  "pod-42",
		"image": "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
		"gpu":   map[string]any{"id": "NVIDIA H100 80GB HBM3", "count": float64(1), "minCudaVersion": "12.4"},
		// /workspace survives a container restart; the container disk is sized, not defaulted.
		"disk":          float64(50),
		"mounts":        map[string]any{"persistent": map[string]any{"path": "/workspace", "size": float64(50)}},
		"cloud":         "SECURE",
		"dataCenterIds": []any{"US-KS-2"},
		"ports":         []any{"22/tcp", "8888/http", "6006/http"},
		"env": map[string]any{
			// Every key, one per line, in both variables RunPod-convention images read.
			"PUBLIC_KEY":                 keyA + "\n" + keyB,
			"SSH_PUBLIC_KEY":             keyA + "\n" + keyB,
			"JUPYTER_PASSWORD":           secret,
			"GPUBROKER_BOOT_URL":         "https://gpubroker.example/api/pods/42/boot",
			"GPUBROKER_BOOT_SECRET":      "boot-s3cret",
			"GPUBROKER_WORKSPACE_URL":    workspace.URL,
			"GPUBROKER_WORKSPACE_SHA256": sum,
			"GPUBROKER_WORKSPACE_PATH":   workspace.Path,
			"GPUBROKER_IDE":              "jupyter",
		},
		"startSsh":     true,
		"startJupyter": true,
		// The public image runs our bootstrap, fetched from our origin and checked, instead
		// of its own /start.sh.
		"args": startArgs(t),
	}, body)
	requireCreatePodFields(t, body)

	for range 2 { // PROVISIONING → STARTING → RUNNING
		got, err := c.GetInstance(ctx, inst.ID)
		require.NoError(t, err)
		require.NotEqual(t, gpu.StateRunning, got.State)
		require.Empty(t, got.SSHHost, "no connection details before running")
	}
	got, err := c.GetInstance(ctx, inst.ID)
	require.NoError(t, err)
	require.Equal(t, gpu.StateRunning, got.State)
	require.Equal(t, "195.26.233.3", got.SSHHost, "the direct endpoint, where the customer's keys work")
	require.Equal(t, 34446, got.SSHPort)
	require.Equal(t, "root", got.SSHUser)
	require.Equal(t, "https://"+inst.ID+"-8888.proxy.runpod.net/", got.JupyterURL, "no secret in the link")
	require.Empty(t, got.CodeServerURL)
}

func TestLaunchCodeServer(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	ctx := context.Background()
	offer := gpu.Offer{ID: "SECURE:EU-SE-1:NVIDIA GeForce RTX 4090", GPU: "rtx4090", Region: "eu-central", CentsPerHour: 44}
	inst, err := c.Launch(ctx, gpu.LaunchRequest{Offer: offer, Name: "pod-43", Image: "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
		IDE: gpu.IDECodeServer, IDESecret: secret, SSHPublicKeys: []string{keyA}})
	require.NoError(t, err)
	require.Equal(t, []any{"22/tcp", "8080/http"}, f.creates[0]["ports"])
	require.Equal(t, false, f.creates[0]["startJupyter"])
	require.Equal(t, map[string]any{"PUBLIC_KEY": keyA, "SSH_PUBLIC_KEY": keyA, "PASSWORD": secret, "GPUBROKER_IDE": "code-server"}, f.creates[0]["env"])
	require.Equal(t, startArgs(t), f.creates[0]["args"])

	var got *gpu.Instance
	for range 3 {
		got, err = c.GetInstance(ctx, inst.ID)
		require.NoError(t, err)
	}
	require.Equal(t, gpu.StateRunning, got.State)
	require.Equal(t, "https://"+inst.ID+"-8080.proxy.runpod.net/", got.CodeServerURL)
	require.Empty(t, got.JupyterURL)
	require.Equal(t, "eu-central", got.Region)
	require.Equal(t, int64(44), got.CentsPerHour)
}

// Without customer keys no SSH is offered: no 22/tcp, no startSsh (which would put the
// operator account's keys on the pod), and the proxy endpoint, which only takes the account's
// keys, is never reported.
func TestLaunchWithoutKeys(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	ctx := context.Background()
	offer := gpu.Offer{ID: "SECURE:EU-SE-1:NVIDIA GeForce RTX 4090", GPU: "rtx4090", Region: "eu-central", CentsPerHour: 44}
	inst, err := c.Launch(ctx, gpu.LaunchRequest{Offer: offer, Name: "pod-44", Image: "img", IDE: gpu.IDEJupyter, IDESecret: secret})
	require.NoError(t, err)
	body := f.creates[0]
	require.Equal(t, []any{"8888/http"}, body["ports"])
	require.Equal(t, false, body["startSsh"])
	require.NotContains(t, body["env"], "PUBLIC_KEY")
	var got *gpu.Instance
	for range 3 {
		got, err = c.GetInstance(ctx, inst.ID)
		require.NoError(t, err)
	}
	require.Equal(t, gpu.StateRunning, got.State)
	require.Empty(t, got.SSHHost, "the proxy (%s) takes only the account's keys", "ssh.runpod.io")
	require.Zero(t, got.SSHPort)
	require.NotEmpty(t, got.JupyterURL)
}

// requireCreatePodFields checks the body against CreatePodRequest in RunPod's OpenAPI document,
// which rejects unknown properties. It is skipped where the document is not checked out.
func requireCreatePodFields(t *testing.T, body map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("../../../shared/reference/runpod-rest-v2.openapi.json")
	if errors.Is(err, fs.ErrNotExist) {
		t.Log("RunPod OpenAPI document not found; field check skipped")
		return
	}
	require.NoError(t, err)
	var spec struct {
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(raw, &spec))
	allowed := properties(spec.Components.Schemas, "CreatePodRequest")
	require.Contains(t, allowed, "startSsh", "sanity check of the schema walk")
	for k := range body {
		require.Contains(t, allowed, k, "createPod does not accept %q", k)
	}
}

type schema struct {
	Ref        string         `json:"$ref"`
	AllOf      []schema       `json:"allOf"`
	Properties map[string]any `json:"properties"`
}

func properties(schemas map[string]schema, name string) []string {
	var out []string
	var walk func(s schema)
	walk = func(s schema) {
		if s.Ref != "" {
			walk(schemas[s.Ref[strings.LastIndex(s.Ref, "/")+1:]])
		}
		for _, part := range s.AllOf {
			walk(part)
		}
		out = slices.AppendSeq(out, maps.Keys(s.Properties))
	}
	walk(schemas[name])
	return out
}

func TestErrors(t *testing.T) {
	t.Parallel()
	offer := gpu.Offer{ID: "SECURE:US-KS-2:NVIDIA H100 80GB HBM3", GPU: "h100", Region: "us-east"}
	for _, tc := range []struct {
		name  string
		route string
		reply reply
		check func(t *testing.T, err error)
	}{
		{"create 400 is no capacity", "POST /v2/pods", problem(400, "Bad Request", "There are no longer any instances available with the requested specifications."),
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrNoCapacity)
				require.Contains(t, err.Error(), "no longer any instances available")
			}},
		{"create 402 is no funds", "POST /v2/pods", problem(402, "Payment Required", "insufficient balance"),
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrInsufficientFunds)
				require.True(t, gpu.SkipProvider(err))
			}},
		{"create 403 skips the candidate", "POST /v2/pods", problem(403, "Forbidden", "no access to this pool"),
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrOfferGone)
				require.True(t, gpu.Failover(err))
			}},
		{"401 is auth", "POST /v2/pods", problem(401, "Unauthorized", "missing bearer token"),
			func(t *testing.T, err error) { require.ErrorIs(t, err, gpu.ErrAuth) }},
		{"429 waits for Retry-After", "POST /v2/pods", reply{status: 429, header: map[string]string{"Retry-After": "12"}, body: `{"title": "Too Many Requests", "status": 429, "detail": "rate limit exceeded for the minute window"}`},
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrRateLimited)
				require.Equal(t, 12*time.Second, gpu.RetryAfter(err))
			}},
		{"5xx is transient", "POST /v2/pods", reply{status: 503, body: "<html>upstream connect error</html>"},
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrUnavailable)
				require.True(t, gpu.Retryable(err))
			}},
		{"create 422 is refused: the next offer", "POST /v2/pods", reply{status: 422, body: `{"title": "Unprocessable Entity", "status": 422, "detail": "Request validation failed.", "errors": ["$: additional properties 'bogus' not allowed"]}`},
			func(t *testing.T, err error) {
				require.ErrorIs(t, err, gpu.ErrRefused)
				require.True(t, gpu.Failover(err))
				require.False(t, gpu.Retryable(err) || gpu.SkipProvider(err))
				require.Contains(t, err.Error(), "additional properties 'bogus'")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, srv := newFake(t)
			f.failNext(tc.route, tc.reply)
			_, err := newClient(srv).Launch(context.Background(), gpu.LaunchRequest{Offer: offer, Name: "pod-1", Image: "img"})
			require.Error(t, err)
			tc.check(t, err)
		})
	}
}

func TestNonCreateErrors(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	ctx := context.Background()
	f.failNext("GET /v2/pods/{id}", problem(403, "Forbidden", "access denied"))
	_, err := c.GetInstance(ctx, "x")
	require.ErrorIs(t, err, gpu.ErrAuth, "outside create, 403 means the key lacks access")

	_, err = runpod.New(runpod.Config{APIKey: "wrong", BaseURL: srv.URL}).ListOffers(ctx, gpu.OfferQuery{})
	require.ErrorIs(t, err, gpu.ErrAuth)

	f.failNext("DELETE /v2/pods/{id}", problem(409, "Conflict", "Pod belongs to a cluster"))
	err = c.Terminate(ctx, "x")
	require.Error(t, err)
	require.NotErrorIs(t, err, gpu.ErrNotFound)
}

func TestStates(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := newClient(srv)
	for status, want := range map[string]gpu.State{
		"PROVISIONING": gpu.StatePending, "STARTING": gpu.StateBooting, "RUNNING": gpu.StateRunning,
		"EXITED": gpu.StateFailed, "ERROR": gpu.StateFailed, "TERMINATED": gpu.StateTerminated,
		// Not in the v2 PodStatus enum: a status added later says nothing about whether the pod
		// is dead.
		"MIGRATING": gpu.StateUnknown,
	} {
		f.mu.Lock()
		f.pods = append(f.pods, &fakePod{ID: "p-" + status, Name: "n-" + status, Status: status, DataCenter: "US-CA-2", GPU: "NVIDIA GeForce RTX 4090"})
		f.mu.Unlock()
		got, err := c.GetInstance(context.Background(), "p-"+status)
		require.NoError(t, err)
		require.Equal(t, want, got.State, status)
		require.Equal(t, "us-west", got.Region)
		require.Equal(t, "rtx4090", got.GPU)
		if want == gpu.StateFailed || want == gpu.StateUnknown {
			require.NotEmpty(t, got.Error)
		}
	}
	found, err := gpu.FindInstance(context.Background(), c, "n-ERROR")
	require.NoError(t, err, "a failed pod still bills, so a retried job must find it")
	require.Equal(t, "p-ERROR", found.ID)
	_, err = gpu.FindInstance(context.Background(), c, "n-TERMINATED")
	require.ErrorIs(t, err, gpu.ErrNotFound)
}

// Through the broker, a data center that refuses the create (400) is failed over to the next
// one at the same price, as RunPod documents.
func TestBrokerFailsOverAcrossDataCenters(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	f.failNext("POST /v2/pods", problem(400, "Bad Request", "There are no longer any instances available with the requested specifications."))
	b := gpu.NewBroker(newClient(srv))
	b.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	inst, o, attempts, err := b.Launch(context.Background(), gpu.OfferQuery{GPU: "h100", Region: "us-east"},
		gpu.LaunchRequest{Name: "pod-1", Image: "img", IDE: gpu.IDEJupyter}, nil, nil)
	require.NoError(t, err)
	require.Len(t, attempts, 1)
	require.Equal(t, "runpod/SECURE:US-KS-2:NVIDIA H100 80GB HBM3", gpu.OfferKey(attempts[0].Offer))
	require.Equal(t, "runpod/SECURE:US-TX-3:NVIDIA H100 80GB HBM3", gpu.OfferKey(*o))
	require.Equal(t, "pod-1", inst.Name)
	require.Len(t, f.creates, 1, "the refused create never reached the fake's pods")
	require.Equal(t, []any{"US-TX-3"}, f.creates[0]["dataCenterIds"])
}

// A client without the bootstrap's URL launches nothing: the public image would run without it.
func TestLaunchNeedsTheBootstrap(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t)
	c := runpod.New(runpod.Config{APIKey: apiKey, BaseURL: srv.URL, HTTPClient: srv.Client()})
	offer := gpu.Offer{ID: "SECURE:EU-SE-1:NVIDIA GeForce RTX 4090", GPU: "rtx4090", Region: "eu-central", CentsPerHour: 44}
	_, err := c.Launch(context.Background(), gpu.LaunchRequest{Offer: offer, Name: "pod-45", Image: "img", IDE: gpu.IDEJupyter, IDESecret: secret})
	require.ErrorContains(t, err, "BootstrapURL")
	require.Empty(t, f.creates)
}
