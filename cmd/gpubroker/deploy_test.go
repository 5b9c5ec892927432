package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/api/apitest"
	"gpubroker/gpu"
	"gpubroker/gpu/sim"
	"gpubroker/jobs"
	"gpubroker/worker"
)

// podView is GET /api/pods/{id} as the dashboard reads it (../shared/API.md).
type podView struct {
	ID                 string     `json:"id"`
	Status             string     `json:"status"`
	OrderStatus        string     `json:"order_status"`
	AmountCents        int64      `json:"amount_cents"`
	HoldExpiresAt      *time.Time `json:"hold_expires_at"`
	Provider           string     `json:"provider"`
	EndsAt             *time.Time `json:"ends_at"`
	Error              string     `json:"error"`
	SSHKeyFingerprints []string   `json:"ssh_key_fingerprints"`
	StarterProject     *struct {
		Name string `json:"name"`
		Path string `json:"path"`
	} `json:"starter_project"`
	Connection *struct {
		SSH           *string `json:"ssh"`
		JupyterURL    string  `json:"jupyter_url"`
		CodeServerURL string  `json:"code_server_url"`
		IDESecret     string  `json:"ide_secret"`
	} `json:"connection"`
}

// pod fetches a pod as its owner's browser c.
func (e *env) pod(c *http.Client, id string) podView {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url+"/api/pods/"+id, nil)
	require.NoError(e.t, err)
	resp, err := c.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	var p podView
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&p))
	return p
}

// deploy presses Deploy on a pod, as the dashboard does, and expects 202.
func (e *env) deploy(c *http.Client, podID string) {
	e.t.Helper()
	res := e.api(c).Deploy(podID)
	require.Equal(e.t, http.StatusAccepted, res.Code, res)
}

func (e *env) waitPod(c *http.Client, id, status string) podView {
	e.t.Helper()
	var p podView
	e.eventually("pod "+status, func() bool { p = e.pod(c, id); return p.Status == status })
	return p
}

func (e *env) piOf(podID string) string {
	var pi string
	require.NoError(e.t, e.m.Pool.QueryRow(context.Background(), `SELECT o.payment_intent_id FROM orders o JOIN pods p ON p.order_id = o.id WHERE p.id = $1`, podID).Scan(&pi))
	return pi
}

func TestDeployJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 100 * time.Millisecond, env: metricsEnv})
	c, podID := e.signUp("journey@example.com")

	res := e.api(c).Deploy(podID)
	require.Equal(t, http.StatusAccepted, res.Code, res)
	require.Equal(t, "deploying", res.Body.Status)

	p := e.waitPod(c, podID, "running")
	require.Equal(t, "captured", p.OrderStatus)
	require.NotNil(t, p.Connection)
	require.Nil(t, p.Connection.SSH, "no key on the account: no SSH command (the dashboard asks for a key)")
	require.NotEmpty(t, p.Connection.JupyterURL, "the data-science template gets Jupyter")
	require.NotEmpty(t, p.EndsAt)
	require.Equal(t, 1, e.m.StripeSim.CaptureCount(e.piOf(podID)))
	require.Equal(t, 1, e.m.Sim.Launches())
	// The cheapest available offer was chosen.
	offers, err := e.m.Sim.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a100", Region: "us-east"})
	require.NoError(t, err)
	cheapest := offers[0].CentsPerHour
	for _, o := range offers {
		cheapest = min(cheapest, o.CentsPerHour)
	}
	require.Equal(t, 1, e.count(`SELECT count(*) FROM pods WHERE cost_cents_per_hour = $1`, cheapest))
	e.eventually("pod ready email", func() bool { return e.mails("journey@example.com")[0].Kind == "pod_ready" })
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'terminate' AND state = 'scheduled'`))

	res = e.api(c).Deploy(podID)
	require.Equal(t, http.StatusConflict, res.Code)
	require.Equal(t, "already_deployed", res.Err.Error)

	require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
	e.waitPod(c, podID, "terminated")
	require.Equal(t, 1, e.m.Sim.Terminations())
	e.eventually("terminated email", func() bool { return e.mails("journey@example.com")[0].Kind == "pod_terminated" })
	require.Equal(t, 1, e.m.StripeSim.CaptureCount(e.piOf(podID)), "captured exactly once")
	require.Equal(t, 1, e.count(`SELECT count(*) FROM orders WHERE status = 'captured'`))

	// Ops see the journey in the funnel and the metrics.
	funnel := e.funnel()
	require.Equal(t, opsFunnel{CheckoutsStarted: 1, Authorized: 1, Activated: 1, Deployed: 1, Running: 1, RunningNow: 0, PaymentSuccessRate: 1},
		opsFunnel{CheckoutsStarted: funnel.CheckoutsStarted, Authorized: funnel.Authorized, Activated: funnel.Activated, Deployed: funnel.Deployed,
			Running: funnel.Running, RunningNow: funnel.RunningNow, PaymentSuccessRate: funnel.PaymentSuccessRate})
	require.NotNil(t, funnel.ProvisioningSecondsP50)
	metrics := e.scrape()
	require.Contains(t, metrics, `gpubroker_http_requests_total{route="/api/pods/:id/deploy",method="POST",status="202"} 1`)
	require.Contains(t, metrics, `gpubroker_pods{status="terminated"} 1`)
	resp, err := http.Get(e.url + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestConcurrentDeploysCaptureAndLaunchOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.signUp("triple@example.com")
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Go(func() { codes[i] = (&apitest.Client{URL: e.url, HTTP: c}).Deploy(podID).Code })
	}
	wg.Wait()
	require.Equal(t, []int{202, 202, 202}, codes)
	e.waitPod(c, podID, "running")
	require.Equal(t, 1, e.m.StripeSim.CaptureCount(e.piOf(podID)))
	require.Equal(t, 1, e.m.Sim.Launches())
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'capture'`))
}

func TestProvisionRetryFindsLaunchedInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.signUp("crash@example.com")
	e.m.Sim.FailAfterLaunch(1) // the launch happens, the answer is lost
	e.deploy(c, podID)
	e.waitPod(c, podID, "running")
	require.Equal(t, 1, e.m.Sim.Launches(), "the retry found the instance instead of launching again")
	require.GreaterOrEqual(t, e.count(`SELECT count(*) FROM river_job WHERE kind = 'provision' AND attempt >= 2`), 1)
}

func TestNoCapacityFailsOverThenRefunds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.signUp("failover@example.com")
	offers, err := e.m.Sim.ListOffers(context.Background(), gpu.OfferQuery{GPU: "a100", Region: "us-east"})
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(offers), 2)
	cheapest := offers[0]
	for _, o := range offers {
		if o.CentsPerHour < cheapest.CentsPerHour {
			cheapest = o
		}
	}
	e.m.Sim.SetNoCapacity(cheapest.ID, true)
	e.deploy(c, podID)
	e.waitPod(c, podID, "running")
	require.Equal(t, 1, e.m.Sim.Launches())
	require.Equal(t, 0, e.count(`SELECT count(*) FROM pods WHERE offer_id = $1`, gpu.OfferKey(cheapest)))

	// Every offer fails: one refund, pod failed, one email, nothing launched.
	c2, pod2 := e.signUp("refund@example.com")
	e.m.Sim.SetNoCapacityAll(true)
	e.deploy(c2, pod2)
	p := e.waitRefunded(c2, pod2)
	require.Equal(t, "refunded", p.OrderStatus)
	require.Contains(t, p.Error, "refunded")
	require.Equal(t, 1, e.m.StripeSim.RefundCount(e.piOf(pod2)))
	require.Equal(t, 1, e.m.Sim.Launches(), "no second instance was launched")
	e.eventually("refund email", func() bool { return e.mails("refund@example.com")[0].Kind == "refunded" })
	n := 0
	for _, m := range e.mails("refund@example.com") {
		if m.Kind == "refunded" {
			n++
		}
	}
	require.Equal(t, 1, n)
}

func TestHoldReleasedBeforeDeploy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c, podID := e.signUp("lapse@example.com")
	// Run the scheduled release now, as if 6 days had passed.
	_, err := e.m.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now() WHERE kind = 'release_hold'`)
	require.NoError(t, err)
	e.eventually("released", func() bool { return e.pod(c, podID).OrderStatus == "released" })
	res := e.api(c).Deploy(podID)
	require.Equal(t, http.StatusConflict, res.Code)
	require.Equal(t, "hold_released", res.Err.Error)
	pi := e.piOf(podID)
	require.Equal(t, 0, e.m.StripeSim.CaptureCount(pi))
	require.Equal(t, "canceled", string(e.m.StripeSim.PaymentIntent(pi).Status))
	require.Equal(t, 0, e.m.Sim.Launches())
	e.eventually("hold email", func() bool { return e.mails("lapse@example.com")[0].Kind == "hold_released" })
}

func TestWorkerRestartMidProvisioning(t *testing.T) {
	t.Parallel()
	// Booting long enough that the pod is still provisioning when the worker has stopped.
	e := newEnv(t, envOpts{bootDelay: 5 * time.Second})
	c, podID := e.signUp("restart@example.com")
	e.deploy(c, podID)
	e.eventually("launched", func() bool { return e.m.Sim.Launches() == 1 })
	// Stop the worker mid-provisioning (the instance is booting) and start a fresh one.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.m.River.Stop(ctx))
	require.Equal(t, "provisioning", e.pod(c, podID).Status)
	client, err := worker.NewClient(e.m.Pool, e.m.JobDeps, e.m.Logger, worker.Options{FetchCooldown: 5 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond, NoPeriodic: true})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	e.waitPod(c, podID, "running")
	require.Equal(t, 1, e.m.Sim.Launches())
	require.Len(t, e.m.Sim.Instances(), 1)
}

func TestPodAccessAndOrigin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c1, pod1 := e.signUp("one@example.com")
	c2, _ := e.signUp("two@example.com")
	require.Equal(t, http.StatusNotFound, e.api(c2).Pod(pod1).Code)
	require.Equal(t, http.StatusNotFound, e.api(c2).Deploy(pod1).Code)
	require.Equal(t, http.StatusNotFound, e.api(c2).Pod("not-a-uuid").Code)

	req, _ := http.NewRequest("POST", e.url+"/api/pods/"+pod1+"/deploy", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, err := c1.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	req, _ = http.NewRequest("POST", e.url+"/api/pods/"+pod1+"/deploy", nil) // no Origin at all
	resp, err = c1.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, "configured", e.pod(c1, pod1).Status)
}

func TestInactiveAccountCannotDeploy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	c := newBrowser()
	_, v := e.paid(c, "inactive@example.com")
	res := e.api(c).Deploy(v.Pod.ID)
	require.Equal(t, http.StatusForbidden, res.Code)
	require.Equal(t, "account_inactive", res.Err.Error)
}

// Ops retry a failed provision job through the River UI's own API, and the pod then runs.
func TestRiverUIRetry(t *testing.T) {
	t.Parallel()
	// A long backoff leaves the failed job waiting in "retryable" until someone retries it.
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, tune: func(d *jobs.Deps) { d.RetryDelay = time.Hour }})
	c, podID := e.signUp("ops@example.com")
	e.m.Sim.FailNext(sim.OpLaunch, errors.New("provider 500"), 1)
	e.deploy(c, podID)
	var jobID int64
	e.eventually("provision failed", func() bool {
		return e.m.Pool.QueryRow(context.Background(), `SELECT id FROM river_job WHERE kind = 'provision' AND state = 'retryable'`).Scan(&jobID) == nil
	})
	require.Equal(t, "provisioning", e.pod(c, podID).Status)

	ui := func(user, pass string) int {
		req, _ := http.NewRequest("POST", e.url+"/ops/riverui/api/jobs/retry", strings.NewReader(`{"ids":["`+strconv.FormatInt(jobID, 10)+`"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", e.url) // River UI's page, on the site's origin
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, ui("admin", "wrong"))
	require.Equal(t, "provisioning", e.pod(c, podID).Status)
	require.Equal(t, http.StatusOK, ui("admin", "ops-secret"))
	e.waitPod(c, podID, "running")
	require.Equal(t, 1, e.m.Sim.Launches())
}

var _ = jobs.InstanceName

// A provider that keeps failing never leaves a captured payment without a pod or a refund:
// past the deadline the job refunds and cleans up whatever it may have launched.
func TestProviderOutageEndsInRefund(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, tune: func(d *jobs.Deps) { d.ProvisionDeadline = 500 * time.Millisecond }})
	c, podID := e.signUp("outage@example.com")
	// The whole provider is down. (Its instance list alone failing no longer stops a launch:
	// the pod was never sent there, so nothing of it can be there.)
	for _, op := range []string{sim.OpList, sim.OpLaunch, sim.OpInstances, sim.OpGet} {
		e.m.Sim.FailNext(op, gpu.ErrUnavailable, 1000)
	}
	e.deploy(c, podID)
	p := e.waitRefunded(c, podID)
	require.Equal(t, "refunded", p.OrderStatus)
	require.Equal(t, 1, e.m.StripeSim.RefundCount(e.piOf(podID)))
	require.Equal(t, 0, e.m.Sim.Launches())
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'terminate_instance'`))
}

// An instance that boots past the deadline is terminated and the payment refunded.
func TestBootPastDeadlineTerminatesAndRefunds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: time.Hour, tune: func(d *jobs.Deps) { d.ProvisionDeadline = 3 * time.Second }})
	c, podID := e.signUp("slowboot@example.com")
	e.deploy(c, podID)
	p := e.waitRefunded(c, podID)
	require.Equal(t, "refunded", p.OrderStatus)
	require.Equal(t, 1, e.m.Sim.Launches())
	e.eventually("instance terminated", func() bool { return e.m.Sim.Terminations() == 1 })
	for _, inst := range e.m.Sim.Instances() {
		require.Equal(t, gpu.StateTerminated, inst.State)
	}
}

// flakyPayments wraps the real Stripe client: Capture fails while fail > 0 and is slowed by delay.
type flakyPayments struct {
	gpubroker.Payments
	fail  atomic.Int32
	delay time.Duration
}

func (f *flakyPayments) Capture(ctx context.Context, id, key string) (*gpubroker.PaymentIntent, error) {
	time.Sleep(f.delay)
	if f.fail.Add(-1) >= 0 {
		return nil, errors.New("stripe: 500 internal server error")
	}
	return f.Payments.Capture(ctx, id, key)
}

// A capture that keeps failing hands the pod back; pressing Deploy again then works.
func TestCaptureOutageHandsThePodBack(t *testing.T) {
	t.Parallel()
	flaky := &flakyPayments{}
	flaky.fail.Store(1000)
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, tune: func(d *jobs.Deps) { flaky.Payments = d.Payments; d.Payments = flaky }})
	c, podID := e.signUp("outage-capture@example.com")
	e.deploy(c, podID)
	p := e.waitPod(c, podID, "configured")
	require.Contains(t, p.Error, "press Deploy again")
	require.Equal(t, "authorized", p.OrderStatus)
	require.Equal(t, 0, e.m.StripeSim.CaptureCount(e.piOf(podID)))

	flaky.fail.Store(0)
	e.deploy(c, podID)
	p = e.waitPod(c, podID, "running")
	require.Empty(t, p.Error, "the old note is cleared by the new deploy")
	require.Equal(t, 1, e.m.StripeSim.CaptureCount(e.piOf(podID)))
}

// The provisioning deadline counts from the capture, not the click: a slow capture still gets
// a full try at launching.
func TestSlowCaptureStillProvisions(t *testing.T) {
	t.Parallel()
	// The capture takes longer than the whole deadline; the launch and boot fit in it with
	// room for a loaded CI machine.
	flaky := &flakyPayments{delay: 4 * time.Second}
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, tune: func(d *jobs.Deps) {
		flaky.Payments = d.Payments
		d.Payments = flaky
		d.ProvisionDeadline = 3 * time.Second
	}})
	c, podID := e.signUp("slow-capture@example.com")
	e.deploy(c, podID)
	p := e.waitPod(c, podID, "running")
	require.Equal(t, "captured", p.OrderStatus)
}

// Provider faults on the way to running: a launch call that hangs times out and is retried, a
// 429 snoozes for its Retry-After; the pod runs on one instance.
func TestProviderHangAndRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, tune: func(d *jobs.Deps) { d.StepTimeout = 2 * time.Second }})
	c, podID := e.signUp("faults@example.com")
	e.m.Sim.FailNext(sim.OpLaunch, &gpu.RateLimitedError{RetryAfter: 100 * time.Millisecond}, 2)
	e.m.Sim.Hang(sim.OpLaunch, time.Hour)
	e.deploy(c, podID)
	e.eventually("a timed-out attempt", func() bool {
		return e.count(`SELECT count(*) FROM river_job WHERE kind = 'provision' AND errors IS NOT NULL`) == 1
	})
	require.Equal(t, 0, e.m.Sim.Launches())
	e.m.Sim.Hang(sim.OpLaunch, 0)
	e.waitPod(c, podID, "running")
	require.Equal(t, 1, e.m.Sim.Launches())
}

// An offer above the hourly price the customer pays is never launched: no margin, no launch.
func TestNoLaunchAboveTheCustomersPrice(t *testing.T) {
	t.Parallel()
	offers := []gpu.Offer{{Provider: "sim", ID: "a100-us-east-pricey", GPU: "a100", Region: "us-east", GPUCount: 1, CentsPerHour: 999, Available: true}}
	e := newEnv(t, envOpts{offers: offers})
	c, podID := e.signUp("margin@example.com")
	e.deploy(c, podID)
	p := e.waitRefunded(c, podID)
	require.Equal(t, "refunded", p.OrderStatus)
	require.Equal(t, 0, e.m.Sim.Launches())
}
