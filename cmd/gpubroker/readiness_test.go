package main

import (
	"context"
	"net"
	"net/http"
	"strconv"
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
	code, body := e.do(c, "POST", "/api/me/ssh-keys", map[string]any{"name": "laptop", "public_key": key})
	require.Equal(t, http.StatusCreated, code, body)

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
