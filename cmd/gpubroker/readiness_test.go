package main

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/gpu"
	"gpubroker/gpu/ready"
	"gpubroker/gpu/sim"
	"gpubroker/jobs"
)

// Issue 20.3: "running" was the provider's word. The cheapest offer's instance reports running
// but its IDE never answers (and, for a pod with the customer's key, neither may its sshd):
// the pod is not running there, its paid time does not start, and at the instance's boot
// deadline it is relaunched at the next offer, where it runs once its sshd completes a key
// exchange and its IDE answers through the links the customer is shown.
func TestPodRunsOnlyOnceUsable(t *testing.T) {
	t.Parallel()
	const bootDeadline = 2 * time.Second
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, tune: func(d *jobs.Deps) {
		d.BootDeadline = bootDeadline
		d.ProvisionDeadline = time.Minute
	}})
	c, podID := e.signUp("usable@example.com")
	key, _ := newKey(t, "ada@laptop")
	added := e.api(c).AddSSHKey("laptop", key)
	require.Equal(t, http.StatusCreated, added.Code, added)

	e.m.Sim.BreakNext(sim.NoIDE|sim.NoSSH, 1)
	e.deploy(c, podID)
	e.eventually("the first instance reports running", func() bool {
		insts := e.m.Sim.Instances()
		return len(insts) == 1 && insts[0].State == gpu.StateRunning
	})
	first := e.m.Sim.Instances()[0]
	time.Sleep(300 * time.Millisecond) // a few polls: not usable, so not running
	p := e.pod(c, podID)
	require.Equal(t, "provisioning", p.Status, "running at the provider is not running for the customer")
	require.Nil(t, p.Connection)

	p = e.waitPod(c, podID, "running")
	require.Equal(t, 2, e.m.Sim.Launches(), "relaunched at the next offer")
	e.eventually("the unusable instance ended", func() bool {
		in, err := e.m.Sim.GetInstance(context.Background(), first.ID)
		return err == nil && in.State == gpu.StateTerminated
	})
	var offer string
	var started, launched time.Time
	require.NoError(t, e.m.Pool.QueryRow(context.Background(), `SELECT offer_id, started_at, launched_at FROM pods WHERE id = $1`, podID).Scan(&offer, &started, &launched))
	require.Equal(t, "sim/a100-us-east-b", offer)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE action = 'pod.boot_abandoned' AND pod_id = $1`, podID))
	second := e.m.Sim.Instances()[1]
	require.True(t, started.After(launched), "the paid time starts when it is usable, after its launch")

	// What the customer is shown answers, through the same checker the worker used.
	require.NotNil(t, p.Connection)
	require.NotNil(t, p.Connection.SSH)
	require.Contains(t, *p.Connection.SSH, strconv.Itoa(second.SSHPort))
	require.NoError(t, (&ready.Checker{}).Check(context.Background(), ready.Target{
		SSHAddr: net.JoinHostPort(second.SSHHost, strconv.Itoa(second.SSHPort)), IDE: gpu.IDEJupyter, URL: p.Connection.JupyterURL, Secret: p.Connection.IDESecret}))
}

// Issue 20.3: a pod whose IDE never answers anywhere is never running, and is refunded in full,
// plan fee included, once no offer is left or its provisioning deadline has passed.
func TestPodNeverUsableIsRefundedInFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, tune: func(d *jobs.Deps) {
		d.BootDeadline = time.Second
		d.ProvisionDeadline = 6 * time.Second
	}})
	c, podID := e.signUp("neverusable@example.com")
	e.m.Sim.BreakNext(sim.NoIDE, 100)
	e.deploy(c, podID)
	p := e.waitRefunded(c, podID)
	require.Nil(t, p.Connection)
	var started *time.Time
	require.NoError(t, e.m.Pool.QueryRow(context.Background(), `SELECT started_at FROM pods WHERE id = $1`, podID).Scan(&started))
	require.Nil(t, started, "never usable, never started")
	require.GreaterOrEqual(t, e.m.Sim.Launches(), 2, "every offer was tried")
	pi := e.piOf(podID)
	e.eventually("refunded in full", func() bool { return e.m.StripeSim.RefundCount(pi) == 1 })
	require.Equal(t, p.AmountCents, e.refundedCents(pi), "plan fee included")
	e.eventually("every instance ended", func() bool {
		for _, in := range e.m.Sim.Instances() {
			if in.State != gpu.StateTerminated {
				return false
			}
		}
		return true
	})
}

// refundedCents is what the Stripe stand-in has refunded of a PaymentIntent's charge.
func (e *env) refundedCents(piID string) int64 {
	e.t.Helper()
	pi := e.m.StripeSim.PaymentIntent(piID)
	require.NotNil(e.t, pi)
	require.NotNil(e.t, pi.LatestCharge)
	ch := e.m.StripeSim.Charge(*pi.LatestCharge)
	require.NotNil(e.t, ch)
	return ch.AmountRefunded
}

// bootReport posts a boot step for pod with the bearer secret given ("" for none).
func (e *env) bootReport(podID, secret, body string) int {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.url+"/api/pods/"+podID+"/boot", strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// Issue 20.2: the pod's bootstrap reports its steps with the pod's own boot secret, and the
// pod JSON shows them to its owner; nobody else can add one, and a pod cannot flood them.
func TestBootStepsAreReportedAndShown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.signUp("boot@example.com")
	e.deploy(c, podID)
	e.waitPod(c, podID, "running")
	var steps []string
	e.eventually("the boot steps shown", func() bool {
		res := e.api(c).Pod(podID)
		require.Equal(t, http.StatusOK, res.Code, res)
		p := res.Body
		steps = steps[:0]
		for _, s := range p.BootSteps {
			require.True(t, s.OK, s.Step)
			steps = append(steps, s.Step)
		}
		return len(steps) == 5
	})
	require.Equal(t, []string{"keys", "sshd", "workspace", "ide", "ready"}, steps)

	var secret string
	require.NoError(t, e.m.Pool.QueryRow(context.Background(), `SELECT boot_secret FROM pods WHERE id = $1`, podID).Scan(&secret))
	step := `{"step":"ide","ok":false,"detail":"restarted"}`
	require.Equal(t, http.StatusUnauthorized, e.bootReport(podID, "", step))
	require.Equal(t, http.StatusUnauthorized, e.bootReport(podID, "not-the-secret", step))
	require.Equal(t, http.StatusUnauthorized, e.bootReport("00000000-0000-0000-0000-000000000009", secret, step), "an unknown pod answers as a wrong secret")
	require.Equal(t, http.StatusUnauthorized, e.bootReport("not-a-uuid", secret, step))
	require.Equal(t, http.StatusUnprocessableEntity, e.bootReport(podID, secret, `{"step":"mine bitcoin","ok":true}`))
	require.Equal(t, http.StatusUnprocessableEntity, e.bootReport(podID, secret, `{"step":"ide"}`))
	require.Equal(t, http.StatusUnprocessableEntity, e.bootReport(podID, secret, `{"step":"ide","ok":true,"detail":"`+strings.Repeat("x", 501)+`"}`))
	require.Equal(t, 5, e.count(`SELECT count(*) FROM boot_steps WHERE pod_id = $1`, podID), "nothing refused was stored")
	for range 45 {
		require.Equal(t, http.StatusNoContent, e.bootReport(podID, secret, step))
	}
	require.Equal(t, http.StatusTooManyRequests, e.bootReport(podID, secret, step), "at most 50 steps a pod")
	require.Equal(t, "running", e.pod(c, podID).Status, "reports never move the pod")
}
