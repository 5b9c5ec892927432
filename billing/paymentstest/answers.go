package paymentstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Recorder is an http.RoundTripper that keeps every successful JSON answer by endpoint, so
// the answers of two servers to the same calls can be compared with SameFields. Give its
// Client to the Payments under test (billing.Config.HTTPClient).
type Recorder struct {
	base http.RoundTripper

	mu      sync.Mutex
	answers map[string][]any // endpoint → decoded 2xx bodies
}

// NewRecorder returns an empty Recorder over http.DefaultTransport.
func NewRecorder() *Recorder {
	return &Recorder{base: http.DefaultTransport, answers: map[string][]any{}}
}

// Client returns an HTTP client that records through r.
func (r *Recorder) Client() *http.Client { return &http.Client{Transport: r} }

// RoundTrip sends the request and records a 2xx JSON answer under its endpoint.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil || resp.StatusCode/100 != 2 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var v any
	if json.Unmarshal(body, &v) == nil {
		r.mu.Lock()
		k := endpoint(req)
		r.answers[k] = append(r.answers[k], v)
		r.mu.Unlock()
	}
	return resp, nil
}

// Endpoints returns the endpoints answered so far, sorted.
func (r *Recorder) Endpoints() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.answers))
	for k := range r.answers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (r *Recorder) get(endpoint string) []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.answers[endpoint])
}

// pathWords are the segments of Stripe paths that are not ids.
var pathWords = map[string]bool{"v1": true, "checkout": true, "sessions": true, "payment_intents": true,
	"refunds": true, "capture": true, "cancel": true, "expire": true, "events": true, "charges": true}

var idSegmentRE = regexp.MustCompile(`^[a-z]+_[A-Za-z0-9_]+$`)

// endpoint names a request by method, Stripe path (from /v1/ on, ids replaced by {id}) and
// the objects it expands, which change the answer's shape: "GET /v1/payment_intents/{id}
// expand=latest_charge".
func endpoint(req *http.Request) string {
	p := req.URL.Path
	if i := strings.Index(p, "/v1/"); i >= 0 {
		p = p[i:]
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if s != "" && !pathWords[s] && idSegmentRE.MatchString(s) {
			segs[i] = "{id}"
		}
	}
	k := req.Method + " " + strings.Join(segs, "/")
	if ex := req.URL.Query()["expand[]"]; len(ex) > 0 {
		ex = slices.Sorted(slices.Values(ex))
		k += " expand=" + strings.Join(ex, ",")
	}
	return k
}

// SameFields checks that every answer got recorded has Stripe's shape, as want (stripe-mock,
// which answers Stripe's OpenAPI fixtures) recorded it for the same endpoint: no field Stripe's
// answer lacks, and no field of another JSON type (null matches anything: Stripe's nullable
// fields are null in many fixtures). Fields Stripe has and got lacks are only logged: the
// stand-in keeps to what anyone is likely to read. Every endpoint got answered must have been
// answered by want too.
//
// A fixture holds only some of the optional fields of Stripe's spec; optional lists the ones
// got may answer although want's fixture leaves them out, as paths below the answer
// ("latest_charge.payment_method_details.card.capture_before"). Name only fields Stripe
// documents.
func SameFields(t *testing.T, got, want *Recorder, optional ...string) {
	t.Helper()
	for _, ep := range got.Endpoints() {
		ref := want.get(ep)
		if len(ref) == 0 {
			t.Errorf("%s: answered by the subject but never by the reference, so its shape is unchecked", ep)
			continue
		}
		missing := map[string]bool{}
		for _, a := range got.get(ep) {
			for _, d := range diffShape("", a, ref[0], missing, optional) {
				t.Errorf("%s: %s", ep, d)
			}
		}
		if len(missing) > 0 {
			t.Logf("%s: the subject leaves out %d fields Stripe answers: %s", ep, len(missing), strings.Join(slices.Sorted(maps.Keys(missing)), ", "))
		}
	}
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

// diffShape lists where got's shape departs from want's; fields of want that got lacks go to
// missing.
func diffShape(path string, got, want any, missing map[string]bool, optional []string) []string {
	if got == nil || want == nil {
		return nil
	}
	if kind(got) != kind(want) {
		return []string{fmt.Sprintf("%s is %s, Stripe answers %s", name(path), kind(got), kind(want))}
	}
	var out []string
	switch g := got.(type) {
	case map[string]any:
		w := want.(map[string]any)
		// metadata is a free-form hash: its keys are ours.
		if strings.HasSuffix(path, "metadata") {
			return nil
		}
		for _, k := range slices.Sorted(maps.Keys(g)) {
			wv, ok := w[k]
			if !ok && slices.Contains(optional, join(path, k)) {
				continue
			}
			if !ok {
				out = append(out, fmt.Sprintf("%s is not a field of Stripe's answer", name(join(path, k))))
				continue
			}
			out = append(out, diffShape(join(path, k), g[k], wv, missing, optional)...)
		}
		for k := range w {
			if _, ok := g[k]; !ok {
				missing[join(path, k)] = true
			}
		}
	case []any:
		w := want.([]any)
		if len(w) == 0 {
			return nil
		}
		for _, e := range g {
			out = append(out, diffShape(path+"[]", e, w[0], missing, optional)...)
		}
	}
	return out
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func name(path string) string {
	if path == "" {
		return "the answer"
	}
	return path
}
