package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"gpubroker/billing/stripesim"
)

// Aimed faults: every money path gets customers whose own call is hit, on purpose, by each
// fault that matters there. Random faults (faultLoop) rarely meet a capture or a refund; these
// always do, and the run fails when one was armed and never struck (the path was never taken,
// or taken without the call the fault waits for).

// Money paths.
const (
	pathCapture   = "capture"   // POST /v1/payment_intents/{pi}/capture at Deploy
	pathRelease   = "release"   // POST /v1/payment_intents/{pi}/cancel of an undeployed hold
	pathRefund    = "refund"    // POST /v1/refunds of an early stop or a death
	pathExtension = "extension" // GET /v1/checkout/sessions/{cs} of a paid extension
	pathLaunch    = "launch"    // POST /v2/pods at RunPod
)

// Fault kinds.
const (
	kindStored5xx = "stored_5xx"       // Stripe fails before acting and stores the 500 under the key
	kind5xxAfter  = "5xx_after_acting" // Stripe acts, then answers 500 (stored)
	kindLost      = "lost_answer"      // acts; the connection drops before the answer
	kindTimeout   = "timeout"          // acts; answers nothing until the caller gives up
	kindKill      = "kill"             // acts; every worker is kill -9'd before the answer
)

// kindsOf are the kinds aimed at each path, in the order customers get them.
var kindsOf = map[string][]string{
	pathCapture:   {kindStored5xx, kind5xxAfter, kindLost, kindTimeout, kindKill},
	pathRelease:   {kindStored5xx, kindLost, kindTimeout, kindKill},
	pathRefund:    {kindStored5xx, kind5xxAfter, kindLost, kindTimeout, kindKill},
	pathExtension: {kindStored5xx, kindLost, kindTimeout, kindKill},
	pathLaunch:    {kindStored5xx, kindLost, kindTimeout, kindKill},
}

// chainOf is how many faults one customer's call meets in a row on a path (the retry after the
// first meets the second), so paths few customers take still meet every kind. A fault that
// lets Stripe act ends the chain (the retry sees the work done and calls no more), so on the
// paths that act a chain is a stored 5xx, then one that acts. A read (the extension's session)
// is asked again after any fault.
var chainOf = map[string]int{pathCapture: 1, pathLaunch: 1, pathRefund: 2, pathRelease: 2, pathExtension: 3}

// aimed is one armed fault.
type aimed struct {
	path, kind string
	customer   int
	struck     func() int
}

// aims keeps every aimed fault and hands out kinds round-robin per path.
type aims struct {
	mu   sync.Mutex
	list []*aimed
	next map[string]int
}

// kinds returns the next kinds for a customer on path.
func (a *aims) kinds(path string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == nil {
		a.next = map[string]int{}
	}
	all := kindsOf[path]
	if path == pathExtension || chainOf[path] == 1 {
		var out []string
		for range chainOf[path] {
			out = append(out, all[a.next[path]%len(all)])
			a.next[path]++
		}
		return out
	}
	// A stored 5xx, then the next kind that acts.
	acting := all[1:]
	k := acting[a.next[path]%len(acting)]
	a.next[path]++
	return []string{kindStored5xx, k}
}

func (a *aims) add(x *aimed) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, x)
}

// report counts armed and struck faults per path and kind, and lists the ones never struck.
func (a *aims) report() (armed, struck int, perKind string, missed []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	type count struct{ armed, struck int }
	by := map[string]*count{}
	for _, x := range a.list {
		k := x.path + "/" + x.kind
		if by[k] == nil {
			by[k] = &count{}
		}
		by[k].armed++
		armed++
		if x.struck() > 0 {
			by[k].struck++
			struck++
		} else {
			missed = append(missed, fmt.Sprintf("customer %d's %s fault on %s never struck", x.customer, x.kind, x.path))
		}
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d/%d", k, by[k].struck, by[k].armed))
	}
	// Every kind of every path must have been aimed at least once.
	for path, kinds := range kindsOf {
		for _, kind := range kinds {
			if by[path+"/"+kind] == nil {
				missed = append(missed, fmt.Sprintf("no customer met a %s fault on %s", kind, path))
			}
		}
	}
	sort.Strings(missed)
	return armed, struck, strings.Join(parts, " "), missed
}

// aimStripe arms the customer's next kinds on a Stripe call (method, path, and form values).
func (r *run) aimStripe(c *customer, moneyPath, method, path string, form map[string]string) {
	for _, kind := range r.aims.kinds(moneyPath) {
		f := stripesim.Fault{Method: method, Path: path, Form: form, Times: 1}
		switch kind {
		case kindStored5xx:
			f.Mode = stripesim.FailBefore
		case kind5xxAfter:
			f.Mode = stripesim.FailAfter
		case kindLost:
			f.Mode = stripesim.LoseAnswer
		case kindTimeout:
			f.Mode = stripesim.Hang
		case kindKill:
			f.Mode, f.Strike = stripesim.LoseAnswer, r.killAll
		}
		a := r.front.stripe.InjectFault(f)
		r.aims.add(&aimed{path: moneyPath, kind: kind, customer: c.i, struck: a.Struck})
	}
}

// aimLaunch arms the customer's next kinds on the RunPod create of its pod's instance.
func (r *run) aimLaunch(c *customer, instanceName string) {
	for _, kind := range r.aims.kinds(pathLaunch) {
		lf := &launchFault{name: instanceName, kind: kind}
		r.front.armLaunch(lf)
		r.aims.add(&aimed{path: pathLaunch, kind: kind, customer: c.i, struck: lf.hits})
	}
}

// killAll kill -9s every worker, as a crash of the machine the call came from would, and
// starts them again a moment later. It runs inside the call (between acting and answering).
func (r *run) killAll() {
	r.procMu.Lock()
	for _, w := range r.workers {
		w.Kill()
	}
	r.procMu.Unlock()
	r.kills.Add(int64(len(r.workers)))
	r.mu.Lock()
	r.lastKill = time.Now()
	r.killTimes = append(r.killTimes, r.lastKill)
	r.mu.Unlock()
	go func() {
		time.Sleep(300 * time.Millisecond)
		r.procMu.Lock()
		defer r.procMu.Unlock()
		for _, w := range r.workers {
			if w.Exited() {
				if err := w.Start(r.ctx); err != nil {
					r.logf("restarting %s: %v", w.Name, err)
				}
			}
		}
	}()
}

// launchFault is an aimed fault on the RunPod create of one instance name.
type launchFault struct {
	name, kind string
	mu         sync.Mutex
	n          int
}

func (f *launchFault) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// armLaunch adds a launch fault; the first create of its name takes it.
func (f *front) armLaunch(lf *launchFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.launches = append(f.launches, lf)
}

// stallLaunches makes every RunPod create of name hang until its caller gives up, creating
// nothing: the stranded customer's pod stays provisioning until the run loses its job (strand),
// however fast the stand-in boots. It is drift staged on purpose, not an aimed money fault.
func (f *front) stallLaunches(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stalled == nil {
		f.stalled = map[string]bool{}
	}
	f.stalled[name] = true
}

func (f *front) isStalled(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stalled[name]
}

// takeLaunch returns the first armed fault for the name, used up.
func (f *front) takeLaunch(name string) *launchFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, lf := range f.launches {
		if lf.name == name {
			f.launches = slices.Delete(f.launches, i, i+1)
			lf.mu.Lock()
			lf.n++
			lf.mu.Unlock()
			return lf
		}
	}
	return nil
}

// runpodAPI serves RunPod's API, meeting a create aimed at by a launch fault as the fault says:
// a 500 before creating, or the pod created and the answer lost, late, or lost with the
// workers killed.
func (f *front) runpodAPI(kill func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/v2/pods") {
			f.runpod.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		var req struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(body, &req)
		if f.isStalled(req.Name) {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Minute):
			}
			panic(http.ErrAbortHandler)
		}
		lf := f.takeLaunch(req.Name)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if lf == nil {
			f.runpod.ServeHTTP(w, r)
			return
		}
		if lf.kind == kindStored5xx {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":"internal server error (injected)"}`))
			return
		}
		rec := httptest.NewRecorder()
		f.runpod.ServeHTTP(rec, r) // the pod is created
		switch lf.kind {
		case kindTimeout:
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Minute):
			}
		case kindKill:
			kill()
		}
		panic(http.ErrAbortHandler) // the answer never arrives
	})
}
