// Package runpodsim serves the part of RunPod's REST API v2 that gpu/runpod uses (the GPU
// catalog and pods: create, list, get, delete) on top of the GPU simulator (gpu/sim). The real
// runpod client then runs unchanged against a provider that lives in another process than the
// workers and remembers every launch while they are killed (make chaos), with the simulator's
// fault switches (no capacity, 429, 5xx, hangs, a lost launch answer, instance deaths) showing
// up as the HTTP answers RunPod documents for them.
//
// Each of our GPUs is one RunPod GPU type (its first id in runpod.DefaultGPUTypes) and each
// region two data centers, so the broker can fail over between them; a type's price is one
// for every data center, as RunPod's catalog has it.
package runpodsim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gpubroker/gpu"
	"gpubroker/gpu/runpod"
	"gpubroker/gpu/sim"
)

// dataCenters are the data centers of each region, first one first.
var dataCenters = map[string][]string{
	"us-east":    {"US-KS-2", "US-TX-3"},
	"us-west":    {"US-CA-2", "US-OR-1"},
	"eu-central": {"EU-RO-1", "EU-SE-1"},
}

// Options configure a Server.
type Options struct {
	// APIKey is the one bearer token it accepts.
	APIKey string
	// BootDelay is the simulator's (sim.Options).
	BootDelay time.Duration
	// Images are the images its registry holds; nil means sim.PublicImages, the public ones:
	// like RunPod, a pod of any other image is created and never boots.
	Images []string
	// NoSSHServers is the simulator's (sim.Options): pods without an SSH server each, for
	// fleets of thousands.
	NoSSHServers bool
}

// Server is the RunPod API. Sim is the simulator behind it: flip its fault switches, kill an
// instance with Sim.Fail, and read what each pod was asked to run with Sim.Records.
type Server struct {
	Sim *sim.Sim

	apiKey string
	types  map[string]string // our GPU id → RunPod GPU type id
	mu     sync.Mutex
	pods   map[string]podMeta // by pod id: what the create call asked that the simulator does not keep
}

type podMeta struct {
	Ports      []string
	Env        map[string]string
	DataCenter string
	GPUType    string
	Image      string
	Args       string
	Cost       float64
}

// New returns a Server with the simulator's seed GPUs and prices mapped onto RunPod's names.
func New(o Options) *Server {
	types := map[string]string{}
	for id, ours := range runpod.DefaultGPUTypes() {
		if cur, ok := types[ours]; !ok || id < cur {
			types[ours] = id
		}
	}
	// One price per GPU type: the cheapest seed price of the GPU in any region, which is
	// below our catalog price everywhere (the seed's own test checks it per region).
	price := map[string]int64{}
	for _, o := range sim.SeedOffers("runpod") {
		if p, ok := price[o.GPU]; !ok || o.CentsPerHour < p {
			price[o.GPU] = o.CentsPerHour
		}
	}
	var offers []gpu.Offer
	seen := map[string]bool{}
	for _, o := range sim.SeedOffers("runpod") {
		t, ok := types[o.GPU]
		if !ok || seen[o.GPU+o.Region] {
			continue
		}
		seen[o.GPU+o.Region] = true
		for _, dc := range dataCenters[o.Region] {
			offers = append(offers, gpu.Offer{ID: offerID(dc, t), GPU: o.GPU, Region: o.Region, GPUCount: 1, CentsPerHour: price[o.GPU], Available: true})
		}
	}
	if o.Images == nil {
		o.Images = sim.PublicImages
	}
	return &Server{
		Sim:    sim.New(sim.Options{Name: "runpod", BootDelay: o.BootDelay, Offers: offers, Images: o.Images, NoSSHServers: o.NoSSHServers}),
		apiKey: o.APIKey,
		types:  types,
		pods:   map[string]podMeta{},
	}
}

// Proxy serves pods' http ports as RunPod's HTTPS proxy does, at /{pod}-{port}/… below where
// it is mounted (the client's ProxyURL is then <mount>/{pod}-{port}/): the simulator's
// stand-in IDE of that pod, its status endpoints included, so readiness asks the same links a
// customer is shown. A pod that is not running, or a port it did not ask for, answers 502, as
// RunPod's proxy does when nothing listens behind it.
func (s *Server) Proxy(mount string) http.Handler {
	ide := s.Sim.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, strings.TrimRight(mount, "/")+"/")
		host, sub, _ := strings.Cut(rest, "/")
		i := strings.LastIndexByte(host, '-')
		if i < 0 {
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
			return
		}
		id, port := host[:i], host[i+1:]
		if !slices.Contains(s.meta(id).Ports, port+"/http") {
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = sim.IDEPrefix + id + "/" + sub
		ide.ServeHTTP(w, r2)
	})
}

// offerID is the simulator's id of a GPU type in a data center.
func offerID(dataCenter, gpuType string) string { return dataCenter + "|" + gpuType }

// OfferID is the simulator's offer id for one of our GPUs in a data center, for the fault
// switches that take one (Sim.SetNoCapacity).
func (s *Server) OfferID(ourGPU, dataCenter string) string {
	return offerID(dataCenter, s.types[ourGPU])
}

// ServeHTTP answers the API under /v2/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.apiKey {
		problem(w, http.StatusUnauthorized, "Unauthorized", "invalid bearer token")
		return
	}
	path := r.URL.Path
	if i := strings.Index(path, "/v2/"); i > 0 {
		path = path[i:] // mounted under a prefix
	}
	switch id, isPod := strings.CutPrefix(path, "/v2/pods/"); {
	case r.Method == http.MethodGet && path == "/v2/catalog/gpus":
		s.catalog(w, r)
	case r.Method == http.MethodPost && path == "/v2/pods":
		s.create(w, r)
	case r.Method == http.MethodGet && path == "/v2/pods":
		s.list(w, r)
	case isPod && r.Method == http.MethodGet:
		s.get(w, r, id)
	case isPod && r.Method == http.MethodDelete:
		s.delete(w, r, id)
	default:
		problem(w, http.StatusNotFound, "Not Found", "no route "+r.Method+" "+path)
	}
}

func (s *Server) catalog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("include") != "AVAILABILITY" || q.Get("product") != "POD" {
		problem(w, http.StatusBadRequest, "Bad Request", "include=AVAILABILITY requires product=POD")
		return
	}
	offers, err := s.Sim.ListOffers(r.Context(), gpu.OfferQuery{})
	if err != nil {
		fail(w, err)
		return
	}
	type dc struct {
		ID           string `json:"id"`
		Name         string `json:"name"`
		Availability string `json:"availability"`
	}
	type gpuType struct {
		ID          string             `json:"id"`
		Secure      bool               `json:"secure"`
		Community   bool               `json:"community"`
		Price       map[string]float64 `json:"price"`
		Memory      int                `json:"memory"`
		DataCenters []dc               `json:"dataCenters"`
	}
	byType := map[string]*gpuType{}
	for _, o := range offers {
		center, t, _ := strings.Cut(o.ID, "|")
		g := byType[t]
		if g == nil {
			g = &gpuType{ID: t, Secure: true, Price: map[string]float64{"secure": float64(o.CentsPerHour) / 100, "community": 0}, Memory: 80}
			byType[t] = g
		}
		avail := "HIGH"
		if !o.Available {
			avail = "NONE"
		}
		g.DataCenters = append(g.DataCenters, dc{ID: center, Name: center, Availability: avail})
	}
	list := make([]*gpuType, 0, len(byType))
	for _, g := range byType {
		list = append(list, g)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"gpus": list})
}

// createBody is createPod's body: the properties the client sends, as in RunPod's
// CreatePodRequest, which refuses any other.
// cudaVersion is the spec's pattern for gpu.minCudaVersion.
var cudaVersion = regexp.MustCompile(`^\d+\.\d+$`)

type createBody struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	GPU   *struct {
		ID                  string   `json:"id"`
		Count               int      `json:"count"`
		MinCudaVersion      string   `json:"minCudaVersion"`
		AllowedCudaVersions []string `json:"allowedCudaVersions"`
	} `json:"gpu"`
	Mounts *struct {
		Persistent *struct {
			Size int    `json:"size"`
			Path string `json:"path"`
		} `json:"persistent"`
		Network any `json:"network"`
	} `json:"mounts"`
	Cloud         string            `json:"cloud"`
	DataCenterIDs []string          `json:"dataCenterIds"`
	Ports         []string          `json:"ports"`
	Env           map[string]string `json:"env"`
	StartSSH      bool              `json:"startSsh"`
	StartJupyter  bool              `json:"startJupyter"`
	Disk          int               `json:"disk"`
	// Args is the container's command, one string (v2 has no dockerStartCmd); the pod
	// reports it back.
	Args string `json:"args"`
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var b createBody
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		problem(w, http.StatusUnprocessableEntity, "Unprocessable Entity", "Request validation failed: "+err.Error())
		return
	}
	if b.Name == "" || b.Image == "" || b.GPU == nil || b.GPU.ID == "" || len(b.DataCenterIDs) != 1 {
		problem(w, http.StatusUnprocessableEntity, "Unprocessable Entity", "Request validation failed: name, image, gpu.id and one dataCenterIds entry are required")
		return
	}
	if m := b.Mounts; m != nil && m.Persistent != nil && (m.Persistent.Size < 10 || !strings.HasPrefix(m.Persistent.Path, "/")) {
		problem(w, http.StatusUnprocessableEntity, "Unprocessable Entity", "Request validation failed: mounts.persistent needs size >= 10 and an absolute path")
		return
	}
	if v := b.GPU.MinCudaVersion; v != "" && !cudaVersion.MatchString(v) {
		problem(w, http.StatusUnprocessableEntity, "Unprocessable Entity", "Request validation failed: gpu.minCudaVersion must be major.minor")
		return
	}
	if b.Cloud != "SECURE" && b.Cloud != "COMMUNITY" {
		problem(w, http.StatusUnprocessableEntity, "Unprocessable Entity", "Request validation failed: cloud must be SECURE or COMMUNITY")
		return
	}
	req := gpu.LaunchRequest{
		Offer: gpu.Offer{ID: offerID(b.DataCenterIDs[0], b.GPU.ID)},
		Name:  b.Name, Image: b.Image, Ports: b.Ports,
		BootURL: b.Env["GPUBROKER_BOOT_URL"], BootSecret: b.Env["GPUBROKER_BOOT_SECRET"],
		Workspace: gpu.Workspace{Name: b.Env["GPUBROKER_WORKSPACE_PATH"], Path: b.Env["GPUBROKER_WORKSPACE_PATH"],
			URL: b.Env["GPUBROKER_WORKSPACE_URL"], SHA256: b.Env["GPUBROKER_WORKSPACE_SHA256"]},
	}
	if req.Workspace.URL == "" {
		req.Workspace = gpu.Workspace{}
	}
	if keys := b.Env["PUBLIC_KEY"]; keys != "" {
		req.SSHPublicKeys = strings.Split(keys, "\n")
	}
	// Each IDE reads its own variable: a secret in the other one is no secret at all.
	switch {
	case slices.Contains(b.Ports, "8888/http"):
		req.IDE, req.IDESecret = gpu.IDEJupyter, b.Env["JUPYTER_PASSWORD"]
	case slices.Contains(b.Ports, "8080/http"):
		req.IDE, req.IDESecret = gpu.IDECodeServer, b.Env["PASSWORD"]
	}
	inst, err := s.Sim.Launch(r.Context(), req)
	m := podMeta{Ports: b.Ports, Env: b.Env, DataCenter: b.DataCenterIDs[0], GPUType: b.GPU.ID, Image: b.Image, Args: b.Args}
	if err != nil {
		// A launch whose answer is lost (Sim.FailAfterLaunch) still made its pod, with the
		// ports and environment asked for, as at RunPod: the client finds it by name later.
		for _, in := range s.Sim.Instances() {
			if in.Name == b.Name && in.State.Live() {
				m.Cost = float64(in.CentsPerHour) / 100
				s.mu.Lock()
				s.pods[in.ID] = m
				s.mu.Unlock()
			}
		}
		fail(w, err)
		return
	}
	m.Cost = float64(inst.CentsPerHour) / 100
	s.mu.Lock()
	s.pods[inst.ID] = m
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.render(inst, m))
}

func (s *Server) meta(id string) podMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[id]
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	// The account's pods: RunPod forgets a pod once it is terminated, as ListInstances does.
	list, err := s.Sim.ListInstances(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	pods := []any{}
	for _, in := range list {
		pods = append(pods, s.render(&in, s.meta(in.ID)))
	}
	writeJSON(w, http.StatusOK, map[string]any{"pods": pods})
}

// live is the instance unless it is terminated: RunPod forgets a pod once it is.
func (s *Server) live(ctx context.Context, id string) (*gpu.Instance, error) {
	in, err := s.Sim.GetInstance(ctx, id)
	if err == nil && in.State == gpu.StateTerminated {
		err = gpu.ErrNotFound
	}
	return in, err
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, id string) {
	in, err := s.live(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.render(in, s.meta(id)))
}

// delete is one call, as at RunPod: the pod is looked up without the simulator's GET faults.
func (s *Server) delete(w http.ResponseWriter, r *http.Request, id string) {
	err := gpu.ErrNotFound
	if rec, ok := s.Sim.Record(id); ok && rec.Status != gpu.StateTerminated {
		err = s.Sim.Terminate(r.Context(), id)
	}
	if err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// podStatus is a pod's v2 status by simulator state. gpu.StateUnknown shows a status outside
// the v2 enum, as a status RunPod adds after our client was written would.
var podStatus = map[gpu.State]string{gpu.StatePending: "PROVISIONING", gpu.StateBooting: "STARTING", gpu.StateRunning: "RUNNING",
	gpu.StateFailed: "EXITED", gpu.StateTerminated: "TERMINATED", gpu.StateUnknown: "MIGRATING"}

// render is a pod as getPod documents it; connection details only while it runs, and the
// direct SSH endpoint only when 22/tcp was asked for.
func (s *Server) render(in *gpu.Instance, m podMeta) map[string]any {
	out := map[string]any{
		"id": in.ID, "name": in.Name, "image": m.Image, "args": m.Args, "status": podStatus[in.State], "ports": m.Ports, "env": m.Env,
		"gpu": map[string]any{"id": m.GPUType, "count": 1}, "cloud": "SECURE", "dataCenterId": m.DataCenter,
		"cost": m.Cost, "runtime": nil, "lastStatusChange": in.Error,
		"ssh": map[string]any{"proxy": map[string]any{"host": "ssh.runpod.io", "port": 22, "username": in.ID + "-64411eb2"}, "direct": nil},
	}
	if in.State == gpu.StateRunning {
		ports := []any{}
		if slices.Contains(m.Ports, "22/tcp") && in.SSHPort > 0 {
			out["ssh"].(map[string]any)["direct"] = map[string]any{"host": in.SSHHost, "port": in.SSHPort, "username": "root"}
			ports = append(ports, map[string]any{"private": 22, "public": in.SSHPort, "type": "tcp", "ip": in.SSHHost})
		}
		for _, p := range m.Ports {
			if n, ok := strings.CutSuffix(p, "/http"); ok {
				port, _ := strconv.Atoi(n)
				ports = append(ports, map[string]any{"private": port, "public": nil, "type": "http", "ip": nil})
			}
		}
		out["runtime"] = map[string]any{"ports": ports}
	}
	return out
}

// fail answers a simulator error as RunPod would.
func fail(w http.ResponseWriter, err error) {
	var rl *gpu.RateLimitedError
	switch {
	case errors.As(err, &rl):
		if rl.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(rl.RetryAfter.Seconds()+0.5)))
		}
		problem(w, http.StatusTooManyRequests, "Too Many Requests", err.Error())
	case errors.Is(err, gpu.ErrNoCapacity):
		problem(w, http.StatusBadRequest, "Bad Request", "There are no longer any instances available with the requested specifications.")
	case errors.Is(err, gpu.ErrOfferGone):
		problem(w, http.StatusForbidden, "Forbidden", err.Error())
	case errors.Is(err, gpu.ErrNotFound):
		problem(w, http.StatusNotFound, "Not Found", "pod not found")
	case errors.Is(err, gpu.ErrUnavailable):
		problem(w, http.StatusServiceUnavailable, "Service Unavailable", err.Error())
	case strings.Contains(err.Error(), "manifest unknown"):
		problem(w, http.StatusUnprocessableEntity, "Unprocessable Entity", err.Error())
	default:
		problem(w, http.StatusInternalServerError, "Internal Server Error", err.Error())
	}
}

func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"title": title, "status": status, "detail": detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
