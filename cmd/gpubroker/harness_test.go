package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/api"
	"gpubroker/api/apitest"
	"gpubroker/config"
	"gpubroker/gpu"
	"gpubroker/gpu/sim"
	"gpubroker/internal/testdb"
	"gpubroker/jobs"
	"gpubroker/worker"
)

// env is one gpubroker dev process on 127.0.0.1:0 with its own database, the Stripe stand-in,
// the GPU simulator and a real River client, driven over HTTP through the real router.
type env struct {
	t      testing.TB
	m      *Main
	url    string
	dbURL  string
	client *http.Client // a browser: cookie jar, no redirects followed
}

type envOpts struct {
	bootDelay time.Duration
	tune      func(*jobs.Deps)
	// productionRiver keeps River's default fetch timings (benchmarks measure what ships).
	productionRiver bool
	// env adds configuration variables.
	env map[string]string
	// offers replaces the simulator's seed offers; periodic runs the periodic jobs (offers.json).
	offers   []gpu.Offer
	periodic bool
}

// logWriter sends the process's warnings to the test log, so a failing test shows them.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	_, dbURL := testdb.NewWithURL(t)
	siteDir := os.Getenv("SITE_DIR")
	if siteDir == "" {
		siteDir, _ = filepath.Abs("../../site/public")
	}
	vars := map[string]string{"DATABASE_URL": dbURL, "ADDR": "127.0.0.1:0", "ADMIN_PASSWORD": "ops-secret", "SITE_DIR": siteDir}
	for k, v := range o.env {
		vars[k] = v
	}
	cfg, err := config.FromEnv(func(k string) string { return vars[k] })
	require.NoError(t, err)
	level := slog.LevelWarn
	if os.Getenv("TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	m := &Main{
		Mode: "dev", Config: cfg, PublicURLFromListener: true,
		Logger:     slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: level})),
		SimOptions: &sim.Options{BootDelay: o.bootDelay, Offers: o.offers},
		JobTune: func(d *jobs.Deps) {
			d.PollInterval = 20 * time.Millisecond
			d.RetryDelay = 20 * time.Millisecond
			if o.tune != nil {
				o.tune(d)
			}
		},
		WorkerOptions: worker.Options{FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond, NoPeriodic: true},
	}
	m.WorkerOptions.NoPeriodic = !o.periodic
	if o.productionRiver {
		m.WorkerOptions = worker.Options{NoPeriodic: true}
		m.NoRateLimits = true
	}
	require.NoError(t, m.Open(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	return &env{t: t, m: m, url: m.URL, dbURL: dbURL, client: newBrowser()}
}

func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// api is the typed API client (api/apitest) of browser c, calling as the site's own pages do
// (same Origin).
func (e *env) api(c *http.Client) *apitest.Client { return apitest.New(e.t, e.url, c) }

func (e *env) order(email, plan, gpu, region string, hours int) gpubroker.OrderRequest {
	return gpubroker.OrderRequest{Email: email, Name: "Ada Lovelace", Plan: plan, Template: "data-science", GPU: gpu, Region: region, Hours: hours}
}

// checkout starts a Pro checkout and returns the order id and Checkout Session id.
func (e *env) checkout(c *http.Client, email string) (orderID, sessionID string) {
	e.t.Helper()
	res := e.api(c).Checkout(e.order(email, "pro", "a100", "us-east", 2))
	require.Equal(e.t, http.StatusCreated, res.Code, res)
	return res.Body.OrderID, e.sessionOf(res.Body.CheckoutURL)
}

// paidCheckout checks out email's order (Pro, an A100 in us-east, 2 hours) in browser c with
// key typed at checkout ("" for none) and pays it with the card that succeeds; it returns the
// Checkout Session id.
func (e *env) paidCheckout(c *http.Client, email, key string) string {
	e.t.Helper()
	order := e.order(email, "pro", "a100", "us-east", 2)
	order.SSHPublicKey = key
	res := e.api(c).Checkout(order)
	require.Equal(e.t, http.StatusCreated, res.Code, res)
	sid := e.sessionOf(res.Body.CheckoutURL)
	require.Equal(e.t, http.StatusSeeOther, e.pay(sid, "4242424242424242").StatusCode)
	return sid
}

// pay submits a card on the stand-in's hosted page, as the browser form does.
func (e *env) pay(sessionID, card string) *http.Response {
	e.t.Helper()
	resp, err := e.client.PostForm(e.url+"/dev/stripe/checkout/"+sessionID+"/pay", url.Values{"card": {card}})
	require.NoError(e.t, err)
	resp.Body.Close()
	return resp
}

// eventually polls cond until it holds, for at most patience.
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	e.eventuallyWithin(what, patience, cond)
}

// patience bounds every wait for a job, an email or a state. It is a bound on a failure, not a
// figure: a passing wait returns as soon as its condition holds, and CI's shared 2-CPU machine
// has stalled a commit for over 10 s while other packages built and ran.
const patience = time.Minute

// eventuallyWithin polls cond until it holds or timeout passes.
func (e *env) eventuallyWithin(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// idle waits until no job is waiting or running (scheduled ones, such as hold releases days
// away, do not count): whatever the last request set off has happened.
func (e *env) idle() {
	e.t.Helper()
	e.eventually("jobs idle", func() bool {
		return e.count(`SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable', 'pending')`) == 0
	})
}

// gpuInstance is one entry of the simulator's /dev/gpu/instances: what a provider was asked to run.
type gpuInstance struct {
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	Status            string   `json:"status"`
	Image             string   `json:"image"`
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
	WorkspaceFiles    []string `json:"workspace_files"`
}

// gpuInstances reads /dev/gpu/instances as JSON, newest first.
func (e *env) gpuInstances() []gpuInstance {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+"/dev/gpu/instances", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var list []gpuInstance
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&list))
	return list
}

// count runs a count(*) query.
func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.m.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// mails returns the outbox for an address through /dev/mail, newest first.
func (e *env) mails(to string) []api.DevEmail {
	e.t.Helper()
	res := e.api(http.DefaultClient).Mails(to)
	require.Equal(e.t, http.StatusOK, res.Code, res)
	return res.Body
}

// link extracts the first URL containing marker from an email's text.
func link(t testing.TB, mail api.DevEmail, marker string) string {
	t.Helper()
	for _, f := range strings.Fields(mail.Text) {
		if strings.Contains(f, marker) {
			return strings.TrimRight(f, ".,)>")
		}
	}
	t.Fatalf("no %s link in %q", marker, mail.Text)
	return ""
}

func tokenOf(t testing.TB, link string) string {
	u, err := url.Parse(link)
	require.NoError(t, err)
	return u.Query().Get("token")
}

// paid runs a Pro checkout for email in browser c, pays it with the test card and waits until
// the success page's verify call answers 200; it returns the session id and that (full)
// answer.
func (e *env) paid(c *http.Client, email string) (string, *api.Verify) {
	e.t.Helper()
	_, sid := e.checkout(c, email)
	resp := e.pay(sid, "4242424242424242")
	require.Equal(e.t, http.StatusSeeOther, resp.StatusCode)
	var res apitest.Result[api.VerifyAnswer]
	e.eventually("verify 200", func() bool {
		res = e.api(c).Verify(sid)
		return res.Code == http.StatusOK
	})
	require.NotNil(e.t, res.Body.Verify, "the payer's browser gets the full answer: %s", res)
	return sid, res.Body.Verify
}

// sessionOf is the Checkout Session id in an answer's checkout_url (its last path segment).
func (e *env) sessionOf(checkoutURL *string) string {
	e.t.Helper()
	require.NotNil(e.t, checkoutURL, "the answer has a checkout_url")
	link := *checkoutURL
	require.NotEmpty(e.t, link, "the answer has a checkout_url")
	u, err := url.Parse(link)
	require.NoError(e.t, err)
	return u.Path[strings.LastIndex(u.Path, "/")+1:]
}

// activationToken waits until n emails went to addr and returns the activation token in the
// newest one.
func (e *env) activationToken(addr string, n int) string {
	e.t.Helper()
	var mails []api.DevEmail
	e.eventually("activation email", func() bool { mails = e.mails(addr); return len(mails) == n })
	require.Equal(e.t, "activation", mails[0].Kind)
	return tokenOf(e.t, link(e.t, mails[0], "/activate/"))
}

// signUp runs the paid path for a new email to an activated account and returns its browser
// and pod id.
func (e *env) signUp(email string) (*http.Client, string) {
	e.t.Helper()
	c := newBrowser()
	_, v := e.paid(c, email)
	res := e.api(c).Activate(e.activationToken(email, 1))
	require.Equal(e.t, http.StatusOK, res.Code, res)
	return c, v.Pod.ID
}
