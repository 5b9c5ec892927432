// Package sim is a GPU provider that lives in memory: the stand-in `gpubroker dev` uses when no
// real provider is configured, and the provider the broker and job tests run against.
//
// It behaves like a real provider where it matters to the code above it: launches are
// asynchronous (booting, then running after a boot delay), capacity reports can lie, and
// faults can be switched on — no capacity, rate limits, 5xx, a crash right after a launch,
// calls that hang. Every switch is safe to flip while other goroutines use the simulator.
//
// A running instance is usable the way a real one is: its SSH address is a real SSH server on
// loopback (a key exchange, then a login with the launch's keys only), and its stand-in IDE
// answers its status endpoint (Handler). It can be told to launch instances whose sshd or IDE
// never answers, and like RunPod it accepts an image its registry does not hold and never
// boots it.
package sim

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"gpubroker/gpu"
)

// Operations that FailNext and Hang apply to.
const (
	OpList      = "list"      // ListOffers
	OpLaunch    = "launch"    // Launch
	OpGet       = "get"       // GetInstance
	OpTerminate = "terminate" // Terminate
	OpInstances = "instances" // ListInstances, and so gpu.FindInstance
)

var ops = []string{OpList, OpLaunch, OpGet, OpTerminate, OpInstances}

// Options configure a simulator. The zero value is a usable simulator named "sim" with the
// seed offers and instances that are running as soon as they are polled.
type Options struct {
	// Name is the provider name; give two simulators different names to broker across them.
	Name string
	// BootDelay is how long an instance stays booting after its launch.
	BootDelay time.Duration
	// Offers replaces the seed offers (SeedOffers). Their Provider field is overwritten.
	Offers []gpu.Offer
	// Now is the clock BootDelay is measured on; tests advance a fake one.
	Now func() time.Time
	// Host is the SSH host instances report.
	Host string
	// Images are the images its registry holds (PublicImages where it stands in for a
	// provider): an instance of any other image is created and never boots, as on RunPod,
	// whose create accepts any image and whose pod then sits without a runtime. Empty holds
	// every image.
	Images []string
	// HTTPClient fetches workspace tarballs (Workspace.URL); nil means a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// IDEBaseURL, when set, is where Handler is mounted (the dev server's origin): instances
	// then report IDE links to the stand-in IDE at IDEBaseURL/dev/gpu/ide/<id>/, which opens
	// only with the launch's IDE secret.
	IDEBaseURL string
	// NoSSHServers launches instances without their SSH server (each is a listening socket and
	// a goroutine): they report port 22 on Host, where nothing answers. For fleets of thousands
	// of instances, whose file descriptors would run out, where nobody logs in.
	NoSSHServers bool
}

// Sim is an in-memory gpu.Provider with fault switches.
type Sim struct {
	name      string
	bootDelay time.Duration
	now       func() time.Time
	host      string
	images    []string
	client    *http.Client
	ideBase   string
	noSSH     bool

	mu              sync.Mutex
	offers          []gpu.Offer
	noCapacity      map[string]bool
	noCapacityAll   bool
	failures        map[string][]error
	failAfterLaunch int
	hangs           map[string]time.Duration
	instances       []*instance // in launch order
	launches        int
	terminations    int
	broken          []Broken // what the next launches break, in order
	hostKey         ssh.Signer
}

// Broken is what an instance does not do although it reports running.
type Broken int

const (
	// NoSSH: its SSH address accepts connections and closes them, as a port forward with no
	// sshd behind it does.
	NoSSH Broken = 1 << iota
	// NoIDE: its IDE's proxy answers 502, as RunPod's does when nothing listens behind it.
	NoIDE
	// NoSSHAddr: it reports running without an SSH address, as a RunPod pod does before
	// ssh.direct exists (its sshd answers once the address is known).
	NoSSHAddr
)

// Mend makes the instance with the given id whole again (what BreakNext broke works from now
// on). It reports false for an unknown instance.
func (s *Sim) Mend(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.find(id)
	if in == nil {
		return false
	}
	in.broken = 0
	return true
}

// BreakNext makes the next n launches create instances that boot and report running but break
// b: NoSSH, NoIDE or both. Calls add up, like FailNext.
func (s *Sim) BreakNext(b Broken, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.broken = append(s.broken, b)
	}
}

// instance is a launched instance and what it will report once it is running.
type instance struct {
	gpu.Instance
	launchedAt time.Time
	conn       gpu.Instance // only the connection fields are used
	asked      gpu.LaunchRequest
	files      []string // the workspace's files, as unpacked at boot
	bootError  string   // why the instance fails at boot (a bad workspace)
	neverBoots bool     // an image the registry does not hold: no runtime, ever
	broken     Broken
	sshd       net.Listener // its SSH server, closed when it ends; nil with NoSSHServers
}

var _ gpu.Provider = (*Sim)(nil)

// PublicImages are the images a provider's public registry holds, as far as the simulator
// knows: provider-maintained images at exact versioned tags that public sources name (RunPod's
// official PyTorch images: the tag in runpod/containers' docker-bake.hcl for PyTorch 2.4, and
// the v2 API's own example). A fixed list, not the catalog's, so a template naming an image
// nobody published (a private tag never pushed) boots nowhere here either.
var PublicImages = []string{
	"runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04",
	"runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
}

// New returns a simulator configured by opts.
func New(opts Options) *Sim {
	s := &Sim{
		name:       opts.Name,
		bootDelay:  opts.BootDelay,
		now:        opts.Now,
		host:       opts.Host,
		images:     slices.Clone(opts.Images),
		client:     opts.HTTPClient,
		ideBase:    strings.TrimRight(opts.IDEBaseURL, "/"),
		noSSH:      opts.NoSSHServers,
		noCapacity: map[string]bool{},
		failures:   map[string][]error{},
		hangs:      map[string]time.Duration{},
	}
	if s.name == "" {
		s.name = "sim"
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.host == "" {
		s.host = "127.0.0.1"
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	if s.hostKey, err = ssh.NewSignerFromKey(key); err != nil {
		panic(err)
	}
	if opts.Offers == nil {
		s.offers = SeedOffers(s.name)
	} else {
		s.offers = slices.Clone(opts.Offers)
		for i := range s.offers {
			s.offers[i].Provider = s.name
		}
	}
	return s
}

// Name returns the provider name.
func (s *Sim) Name() string { return s.name }

// SetNoCapacity makes launches on the offer fail with gpu.ErrNoCapacity (on) or succeed again
// (off). The offer is still listed as available, as real capacity reports lag.
func (s *Sim) SetNoCapacity(offerID string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.noCapacity[offerID] = true
	} else {
		delete(s.noCapacity, offerID)
	}
}

// SetNoCapacityAll makes every launch fail with gpu.ErrNoCapacity while on.
func (s *Sim) SetNoCapacityAll(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noCapacityAll = on
}

// FailNext makes the next n calls of op (OpList, OpLaunch, …) return err without doing
// anything, e.g. &gpu.RateLimitedError{}, gpu.ErrUnavailable or gpu.ErrOfferGone. Calls add
// up: FailNext(op, a, 1) then FailNext(op, b, 1) fails with a, then b.
func (s *Sim) FailNext(op string, err error, n int) {
	checkOp(op)
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[op] = append(s.failures[op], err)
	}
}

// FailAfterLaunch makes the next n launches create their instance and then return an error,
// as if the process lost the connection (or crashed) right after the provider accepted the
// launch. The error is retryable, like the 5xx a real client would see.
func (s *Sim) FailAfterLaunch(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failAfterLaunch = n
}

// Hang makes every call of op block for d, or until its context is done, before doing
// anything else, like a provider that accepts the connection and never answers. Hang(op, 0)
// stops it.
func (s *Sim) Hang(op string, d time.Duration) {
	checkOp(op)
	s.mu.Lock()
	defer s.mu.Unlock()
	if d > 0 {
		s.hangs[op] = d
	} else {
		delete(s.hangs, op)
	}
}

// Launches returns how many instances were actually created, including those whose Launch
// call then failed (FailAfterLaunch).
func (s *Sim) Launches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.launches
}

// Terminations returns how many instances were moved to terminated. Repeated terminations of
// one instance count once.
func (s *Sim) Terminations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.terminations
}

// Instances returns every instance ever launched, oldest first, as GetInstance would report it.
func (s *Sim) Instances() []gpu.Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]gpu.Instance, 0, len(s.instances))
	for _, in := range s.instances {
		out = append(out, *s.view(in))
	}
	return out
}

func checkOp(op string) {
	if !slices.Contains(ops, op) {
		panic(fmt.Sprintf("sim: unknown operation %q (want one of %v)", op, ops))
	}
}

// enter applies the fault switches of op: first a hang, then an injected failure.
func (s *Sim) enter(ctx context.Context, op string) error {
	s.mu.Lock()
	d := s.hangs[op]
	s.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.failures[op]; len(q) > 0 {
		s.failures[op] = q[1:]
		return q[0]
	}
	return ctx.Err()
}

// ListOffers returns the simulator's offers matching q.
func (s *Sim) ListOffers(ctx context.Context, q gpu.OfferQuery) ([]gpu.Offer, error) {
	if err := s.enter(ctx, OpList); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []gpu.Offer
	for _, o := range s.offers {
		if q.Match(o) {
			out = append(out, o)
		}
	}
	return out, nil
}

// Launch creates a booting instance on r.Offer. Like a real instance at boot, it fetches the
// workspace tarball from r.Workspace.URL and checks its SHA-256; a tarball that cannot be
// fetched or does not match fails the instance (the launch itself succeeds).
func (s *Sim) Launch(ctx context.Context, r gpu.LaunchRequest) (*gpu.Instance, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := s.enter(ctx, OpLaunch); err != nil {
		return nil, err
	}
	// An image nobody pushed is accepted and never boots, as at RunPod ("error pulling image").
	neverBoots := len(s.images) > 0 && !slices.Contains(s.images, r.Image)
	var files []string
	var bootError string
	if !r.Workspace.IsZero() {
		var err error
		// The instance fetches it at boot, whatever becomes of the launch call: a caller
		// that gives up does not make the instance fail (the client's timeout bounds it).
		if files, err = s.fetchWorkspace(context.WithoutCancel(ctx), r.Workspace); err != nil {
			bootError = "workspace: " + err.Error()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.offers, func(o gpu.Offer) bool { return o.ID == r.Offer.ID })
	if i < 0 {
		return nil, fmt.Errorf("sim: offer %q: %w", r.Offer.ID, gpu.ErrOfferGone)
	}
	offer := s.offers[i]
	if !offer.Available || s.noCapacityAll || s.noCapacity[offer.ID] {
		return nil, fmt.Errorf("sim: offer %q: %w", offer.ID, gpu.ErrNoCapacity)
	}

	// On loopback whatever Host reports: tests and dev dial it on this machine.
	var sshd net.Listener
	sshPort := 22
	if !s.noSSH {
		var err error
		if sshd, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("sim: listening for the instance's sshd: %w", gpu.ErrUnavailable)
		}
		sshPort = sshd.Addr().(*net.TCPAddr).Port // its own, so two pods never share one
	}
	var broken Broken
	if len(s.broken) > 0 {
		broken, s.broken = s.broken[0], s.broken[1:]
	}
	s.launches++
	id := fmt.Sprintf("%s-%04d", s.name, s.launches)
	in := &instance{
		Instance: gpu.Instance{
			ID:           id,
			Provider:     s.name,
			Name:         r.Name,
			Region:       offer.Region,
			GPU:          offer.GPU,
			State:        gpu.StateBooting,
			CentsPerHour: offer.CentsPerHour,
		},
		launchedAt: s.now(),
		conn: gpu.Instance{
			SSHHost: s.host,
			SSHUser: "ubuntu",
			SSHPort: sshPort,
		},
		asked:      r,
		files:      files,
		bootError:  bootError,
		neverBoots: neverBoots,
		broken:     broken,
		sshd:       sshd,
	}
	in.asked.SSHPublicKeys = slices.Clone(r.SSHPublicKeys)
	if sshd != nil {
		go s.serveSSH(in)
	}
	ide := fmt.Sprintf("https://%s-8888.sim.gpubroker.dev/", id)
	if r.IDE == gpu.IDECodeServer {
		ide = fmt.Sprintf("https://%s-8080.sim.gpubroker.dev/", id)
	}
	if s.ideBase != "" {
		ide = s.ideBase + idePrefix + id + "/"
	}
	switch r.IDE {
	case gpu.IDEJupyter:
		in.conn.JupyterURL = ide
	case gpu.IDECodeServer:
		in.conn.CodeServerURL = ide
	}
	s.instances = append(s.instances, in)

	if s.failAfterLaunch > 0 {
		s.failAfterLaunch--
		return nil, fmt.Errorf("sim: connection lost after launching %s: %w", id, gpu.ErrUnavailable)
	}
	return s.view(in), nil
}

// fetchWorkspace downloads the tarball, checks its SHA-256 and returns the paths of its files.
func (s *Sim) fetchWorkspace(ctx context.Context, w gpu.Workspace) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", w.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: HTTP %d", w.URL, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", w.URL, err)
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != w.SHA256 {
		return nil, fmt.Errorf("SHA-256 of %s is %s, want %s: refusing to unpack", w.URL, got, w.SHA256)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	tr := tar.NewReader(zr)
	var files []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("unpack: %w", err)
		}
		if h.Typeflag == tar.TypeReg {
			files = append(files, h.Name)
		}
	}
	return files, nil
}

// view returns what the provider reports about in now, moving it to running once its boot
// delay has passed. Connection details appear only while it runs, as with real providers.
// s.mu must be held.
func (s *Sim) view(in *instance) *gpu.Instance {
	if in.State == gpu.StateBooting && !in.neverBoots && s.now().Sub(in.launchedAt) >= s.bootDelay {
		in.State = gpu.StateRunning
		if in.bootError != "" {
			in.State, in.Error = gpu.StateFailed, in.bootError
		}
		if in.asked.BootURL != "" {
			go s.reportBoot(in.asked, in.State == gpu.StateRunning, in.broken, len(in.files))
		}
	}
	v := in.Instance
	if v.State == gpu.StateRunning && in.broken&NoSSHAddr == 0 {
		v.SSHHost, v.SSHUser, v.SSHPort = in.conn.SSHHost, in.conn.SSHUser, in.conn.SSHPort
	}
	if v.State == gpu.StateRunning {
		v.JupyterURL, v.CodeServerURL = in.conn.JupyterURL, in.conn.CodeServerURL
	}
	return &v
}

func (s *Sim) find(id string) *instance {
	for _, in := range s.instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

// GetInstance returns the instance with the given id, or gpu.ErrNotFound.
func (s *Sim) GetInstance(ctx context.Context, id string) (*gpu.Instance, error) {
	if err := s.enter(ctx, OpGet); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.find(id)
	if in == nil {
		return nil, fmt.Errorf("sim: instance %q: %w", id, gpu.ErrNotFound)
	}
	return s.view(in), nil
}

// ListInstances returns the live instances, oldest first.
func (s *Sim) ListInstances(ctx context.Context) ([]gpu.Instance, error) {
	if err := s.enter(ctx, OpInstances); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []gpu.Instance
	for _, in := range s.instances {
		if v := s.view(in); v.State.Live() {
			out = append(out, *v)
		}
	}
	return out, nil
}

// Terminate moves the instance to terminated. Unknown and terminated instances are fine.
func (s *Sim) Terminate(ctx context.Context, id string) error {
	if err := s.enter(ctx, OpTerminate); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.find(id); in != nil && in.State != gpu.StateTerminated {
		in.State = gpu.StateTerminated
		s.terminations++
		if in.sshd != nil {
			_ = in.sshd.Close()
		}
	}
	return nil
}

// serveSSH is the instance's sshd: a key exchange with the simulator's host key, then a login
// as its user with one of the launch's keys (there is no shell: every channel is refused). It
// answers only while the instance runs; before and after, and when it is broken (NoSSH), a
// connection is accepted and closed.
func (s *Sim) serveSSH(in *instance) {
	for {
		conn, err := in.sshd.Accept()
		if err != nil {
			return // closed: the instance ended
		}
		go func() {
			defer conn.Close()
			s.mu.Lock()
			usable := s.view(in).State == gpu.StateRunning && in.broken&NoSSH == 0
			keys := slices.Clone(in.asked.SSHPublicKeys)
			user := in.conn.SSHUser
			s.mu.Unlock()
			if !usable {
				return
			}
			cfg := &ssh.ServerConfig{PublicKeyCallback: func(md ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
				for _, line := range keys {
					if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil && md.User() == user && bytes.Equal(k.Marshal(), key.Marshal()) {
						return &ssh.Permissions{}, nil
					}
				}
				return nil, errors.New("not an authorized key")
			}}
			cfg.AddHostKey(s.hostKey)
			_ = conn.SetDeadline(time.Now().Add(time.Minute))
			sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
			if err != nil {
				return
			}
			defer sc.Close()
			go ssh.DiscardRequests(reqs)
			for ch := range chans {
				_ = ch.Reject(ssh.Prohibited, "the simulator has no shell")
			}
		}()
	}
}

// reportBoot sends the steps a real bootstrap reports (images/common/gpubroker-start.sh) to the
// launch's BootURL with its secret, as the instance's boot finishes: keys, sshd, workspace, ide,
// ready, each ok or not as the instance really is. Failures to report are ignored, as the
// bootstrap ignores them.
func (s *Sim) reportBoot(r gpu.LaunchRequest, booted bool, broken Broken, files int) {
	type step struct {
		Step   string `json:"step"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail,omitempty"`
	}
	steps := []step{{"keys", true, fmt.Sprintf("%d keys", len(r.SSHPublicKeys))}, {"sshd", broken&NoSSH == 0, ""}}
	if !r.Workspace.IsZero() {
		steps = append(steps, step{"workspace", booted, fmt.Sprintf("%d files", files)})
	}
	steps = append(steps, step{"ide", booted && broken&NoIDE == 0, r.IDE})
	steps = append(steps, step{"ready", booted && broken == 0, ""})
	for _, st := range steps {
		body, _ := json.Marshal(st)
		req, err := http.NewRequest(http.MethodPost, r.BootURL, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+r.BootSecret)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := s.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}
