// Package sim is a GPU provider that lives in memory: the stand-in `gpubroker dev` uses when no
// real provider is configured, and the provider the broker and job tests run against.
//
// It behaves like a real provider where it matters to the code above it: launches are
// asynchronous (booting, then running after a boot delay), capacity reports can lie, and
// faults can be switched on — no capacity, rate limits, 5xx, a crash right after a launch,
// calls that hang. Every switch is safe to flip while other goroutines use the simulator.
package sim

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"time"

	"gpubroker/gpu"
)

// Operations that FailNext and Hang apply to.
const (
	OpList      = "list"      // ListOffers
	OpLaunch    = "launch"    // Launch
	OpGet       = "get"       // GetInstance
	OpFind      = "find"      // FindInstance
	OpTerminate = "terminate" // Terminate
)

var ops = []string{OpList, OpLaunch, OpGet, OpFind, OpTerminate}

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
}

// Sim is an in-memory gpu.Provider with fault switches.
type Sim struct {
	name      string
	bootDelay time.Duration
	now       func() time.Time
	host      string

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
}

// instance is a launched instance and what it will report once it is running.
type instance struct {
	gpu.Instance
	launchedAt time.Time
	conn       gpu.Instance // only the connection fields are used
}

var _ gpu.Provider = (*Sim)(nil)

// New returns a simulator configured by opts.
func New(opts Options) *Sim {
	s := &Sim{
		name:       opts.Name,
		bootDelay:  opts.BootDelay,
		now:        opts.Now,
		host:       opts.Host,
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

// Launch creates a booting instance on r.Offer.
func (s *Sim) Launch(ctx context.Context, r gpu.LaunchRequest) (*gpu.Instance, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := s.enter(ctx, OpLaunch); err != nil {
		return nil, err
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
			SSHPort: 22000 + s.launches, // distinct, so two pods never share a port
		},
	}
	switch r.IDE {
	case gpu.IDEJupyter:
		in.conn.JupyterURL = fmt.Sprintf("https://%s-8888.sim.gpubroker.dev/?token=%s", id, rand.Text())
	case gpu.IDECodeServer:
		in.conn.CodeServerURL = fmt.Sprintf("https://%s-8080.sim.gpubroker.dev/", id)
	}
	s.instances = append(s.instances, in)

	if s.failAfterLaunch > 0 {
		s.failAfterLaunch--
		return nil, fmt.Errorf("sim: connection lost after launching %s: %w", id, gpu.ErrUnavailable)
	}
	return s.view(in), nil
}

// view returns what the provider reports about in now, moving it to running once its boot
// delay has passed. Connection details appear only while it runs, as with real providers.
// s.mu must be held.
func (s *Sim) view(in *instance) *gpu.Instance {
	if in.State == gpu.StateBooting && s.now().Sub(in.launchedAt) >= s.bootDelay {
		in.State = gpu.StateRunning
	}
	v := in.Instance
	if v.State == gpu.StateRunning {
		v.SSHHost, v.SSHUser, v.SSHPort = in.conn.SSHHost, in.conn.SSHUser, in.conn.SSHPort
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

// FindInstance returns the newest live instance launched under name, or gpu.ErrNotFound.
func (s *Sim) FindInstance(ctx context.Context, name string) (*gpu.Instance, error) {
	if err := s.enter(ctx, OpFind); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range slices.Backward(s.instances) {
		if in.Name == name && in.State.Live() {
			return s.view(in), nil
		}
	}
	return nil, fmt.Errorf("sim: instance named %q: %w", name, gpu.ErrNotFound)
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
	}
	return nil
}
