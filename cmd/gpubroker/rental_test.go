package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/api"
	"gpubroker/billing/stripesim"
	"gpubroker/mail"
)

// rentalView is the part of the pod JSON the rental tests read.
type rentalView struct {
	Status        string     `json:"status"`
	Hours         int        `json:"hours"`
	HourlyCents   int64      `json:"hourly_cents"`
	AmountCents   int64      `json:"amount_cents"`
	OrderStatus   string     `json:"order_status"`
	EndsAt        *time.Time `json:"ends_at"`
	SecondsLeft   *int64     `json:"seconds_left"`
	RefundedCents *int64     `json:"refunded_cents"`
	HoursTotal    int        `json:"hours_total"`
}

// opsFunnel is the part of /ops/funnel the tests read.
type opsFunnel struct {
	CheckoutsStarted       int64    `json:"checkouts_started"`
	Authorized             int64    `json:"authorized"`
	Activated              int64    `json:"activated"`
	Deployed               int64    `json:"deployed"`
	Running                int64    `json:"running"`
	RunningNow             int64    `json:"running_now"`
	PaymentSuccessRate     float64  `json:"payment_success_rate"`
	ProvisioningSecondsP50 *float64 `json:"provisioning_seconds_p50"`
	Extensions             int64    `json:"extensions"`
	EarlyStopRefunds       int64    `json:"early_stop_refunds"`
	EarlyStopRefundedCents int64    `json:"early_stop_refunded_cents"`
	DeadPods               int64    `json:"dead_pods"`
}

// funnel reads /ops/funnel as ops do.
func (e *env) funnel() opsFunnel {
	e.t.Helper()
	code, body := e.opsGet("/ops/funnel")
	require.Equal(e.t, http.StatusOK, code)
	var f opsFunnel
	require.NoError(e.t, json.Unmarshal(body, &f))
	return f
}

// opsGet is GET path as ops (basic auth), after a collection of the ops numbers: the status
// and the body.
func (e *env) opsGet(path string) (int, []byte) {
	e.t.Helper()
	e.collect()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.SetBasicAuth("admin", "ops-secret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, body
}

func (e *env) rentalPod(c *http.Client, id string) rentalView {
	e.t.Helper()
	var v rentalView
	req, err := http.NewRequest("GET", e.url+"/api/pods/"+id, nil)
	require.NoError(e.t, err)
	resp, err := c.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	require.Equal(e.t, http.StatusOK, resp.StatusCode)
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&v))
	return v
}

// runningPod signs up a Pro order of hours hours, deploys it and waits until it runs.
func (e *env) runningPod(email string, hours int) (*http.Client, string) {
	e.t.Helper()
	c := newBrowser()
	res := e.api(c).Checkout(e.order(email, "pro", "a100", "us-east", hours))
	require.Equal(e.t, http.StatusCreated, res.Code, res)
	sid := e.sessionOf(res.Body.CheckoutURL)
	require.Equal(e.t, http.StatusSeeOther, e.pay(sid, "4242424242424242").StatusCode)
	var podID string
	e.eventually("verify 200", func() bool {
		v := e.api(c).Verify(sid)
		if v.Code == http.StatusOK && v.Body.Verify != nil {
			podID = v.Body.Pod.ID
		}
		return podID != ""
	})
	require.Equal(e.t, http.StatusOK, e.api(c).Activate(e.activationToken(email, 1)).Code)
	e.deploy(c, podID)
	e.waitPod(c, podID, "running")
	return c, podID
}

// The stop (or first dead check) comes moments after ranFor: 30 s short of the minute, so that
// the minutes used (a begun minute counts) are 10 and 70 however slow the machine.
const (
	tenMinutesIn     = 10*time.Minute - 30*time.Second
	seventyMinutesIn = 70*time.Minute - 30*time.Second
)

// ranFor pretends the pod started d ago.
func (e *env) ranFor(podID string, d time.Duration) {
	e.t.Helper()
	// The rental keeps its length (the order's hours and any paid extension's), moved back.
	_, err := e.m.Pool.Exec(context.Background(), `UPDATE pods SET started_at = now() - $2::interval,
		ends_at = now() - $2::interval + (ends_at - started_at) WHERE id = $1`, podID, d.String())
	require.NoError(e.t, err)
}

// healthChecks waits until n pod_health runs that started after this call have completed.
func (e *env) healthChecks(n int) {
	e.t.Helper()
	var since time.Time
	require.NoError(e.t, e.m.Pool.QueryRow(context.Background(), `SELECT now()`).Scan(&since))
	e.eventually("health checks", func() bool {
		return e.count(`SELECT count(*) FROM river_job WHERE kind = 'pod_health' AND state = 'completed' AND attempted_at > $1`, since) >= n
	})
}

// endEmail waits for the pod_terminated email to an address and returns it.
func (e *env) endEmail(to string) api.DevEmail {
	e.t.Helper()
	return e.mailOf(to, "pod_terminated")
}

// mailOf waits for the newest email of kind to to whose text holds every one of texts.
func (e *env) mailOf(to, kind string, texts ...string) api.DevEmail {
	e.t.Helper()
	var msg api.DevEmail
	e.eventually(kind+" email to "+to, func() bool {
	next:
		for _, m := range e.mails(to) {
			if m.Kind != kind {
				continue
			}
			for _, s := range texts {
				if !strings.Contains(m.Text, s) {
					continue next
				}
			}
			msg = m
			return true
		}
		return false
	})
	return msg
}

// requireSaysEnded checks that a pod's end email says when the pod really ended (its
// terminated_at), not when it was due to end.
func (e *env) requireSaysEnded(msg api.DevEmail, podID string) {
	e.t.Helper()
	var ended time.Time
	require.NoError(e.t, e.m.Pool.QueryRow(context.Background(), `SELECT terminated_at FROM pods WHERE id = $1`, podID).Scan(&ended))
	text := msg.Text
	require.Contains(e.t, text, "Ended:      "+ended.UTC().Format("Mon 2 Jan 2006, 15:04 UTC"))
	require.NotContains(e.t, text, "Ends:")
}

// Issue 11.1 and 19.3, the worked example: a pod of 3 hours at $1.79 stopped 10 minutes in has
// used 10 minutes; the 170 others are refunded (170 × 179 / 60 = 507.16… → $5.07), the plan fee
// is kept, in one partial refund of the order's payment under refund-<payment>-1, and the end
// email tells the amount.
func TestEarlyStopRefundsUnusedMinutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("early-stop@example.com", 3)
	p := e.rentalPod(c, podID)
	require.NotNil(t, p.SecondsLeft)
	require.InDelta(t, 3*3600, *p.SecondsLeft, 60)
	require.NotNil(t, p.RefundedCents)
	require.Zero(t, *p.RefundedCents)
	e.ranFor(podID, tenMinutesIn)

	stop := e.api(c).Terminate(podID)
	require.Equal(t, http.StatusAccepted, stop.Code, stop)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'unused_hours_refund'`), "queued with the move to terminating")
	want := int64(507)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM refunds WHERE pod_id = $1 AND amount_cents = $2`, podID, want), "planned with the move to terminating")
	e.waitPod(c, podID, "terminated")
	e.eventually("refunded", func() bool { p = e.rentalPod(c, podID); return *p.RefundedCents == want })
	e.idle()
	p = e.rentalPod(c, podID)
	require.Equal(t, want, *p.RefundedCents)
	require.Zero(t, *p.SecondsLeft)
	require.Equal(t, "captured", p.OrderStatus, "a partial refund leaves the order captured")

	pi := e.piOf(podID)
	calls := e.stripeCalls("POST", "/v1/refunds")
	require.Len(t, calls, 1)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM refunds r JOIN payments y ON y.id = r.payment_id
		WHERE y.payment_intent_id = $1 AND r.amount_cents = $2 AND r.idempotency_key = 'refund-' || y.id || '-1' AND r.stripe_refund_id IS NOT NULL`, pi, want))
	msg := e.endEmail("early-stop@example.com")
	require.Contains(t, msg.Text, mail.Money(want), "the end email says the refund")
	require.Contains(t, msg.Text, "every minute you paid for and did not use, at $1.79 an hour")
	require.Contains(t, msg.Text, "The plan fee is not refunded.")
	e.requireSaysEnded(msg, podID)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE pod_id = $1 AND action = 'pod.early_stop_refunded'`, podID))
	f := e.funnel()
	require.EqualValues(t, 1, f.EarlyStopRefunds)
	require.EqualValues(t, want, f.EarlyStopRefundedCents)

	// Stopping again changes nothing.
	require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
	e.idle()
	require.Len(t, e.stripeCalls("POST", "/v1/refunds"), 1)
}

// Issue 11.1: a pod stopped in its last minute has no unused minute; nothing is refunded and no
// refund is asked of Stripe.
func TestEarlyStopInLastMinuteRefundsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("last-minute@example.com", 2)
	e.ranFor(podID, 119*time.Minute+45*time.Second)
	require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
	e.waitPod(c, podID, "terminated")
	e.idle()
	require.Zero(t, *e.rentalPod(c, podID).RefundedCents)
	require.Empty(t, e.stripeCalls("POST", "/v1/refunds"))
}

// Issue 11.1: the refund fails (a stored 500) or its answer is lost after Stripe refunded. The
// retry asks Stripe for the refund by its key (FindRefund) first: a lost answer is found, not
// refunded again; a 500 is retried under a new idempotency key. One refund, of the right amount.
func TestEarlyStopRefundAfterFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	for i, mode := range []stripesim.FaultMode{stripesim.FailBefore, stripesim.LoseAnswer} {
		email := []string{"early500@example.com", "earlylost@example.com"}[i]
		c, podID := e.runningPod(email, 3)
		e.ranFor(podID, seventyMinutesIn) // 70 minutes used, 110 refunded: 110 × 179 / 60 → $3.28
		const want = int64(328)
		before := len(e.stripeCalls("POST", "/v1/refunds"))
		e.m.StripeSim.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/refunds", Mode: mode, Times: 1})
		require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
		e.eventually("refunded", func() bool { return *e.rentalPod(c, podID).RefundedCents == want })
		e.idle()
		require.Equal(t, 1, e.m.StripeSim.RefundCount(e.piOf(podID)), email)
		require.Equal(t, want, *e.rentalPod(c, podID).RefundedCents)
		calls := e.stripeCalls("POST", "/v1/refunds")[before:]
		if mode == stripesim.LoseAnswer {
			require.Len(t, calls, 1, "the retry found the refund instead of refunding again")
		} else {
			require.Len(t, calls, 2)
			require.NotEqual(t, calls[0].IdempotencyKey, calls[1].IdempotencyKey)
		}
	}
}

// extend asks for hours more on a running pod and pays the extension's checkout with the test
// card; it returns the session id.
func (e *env) extend(c *http.Client, podID string, hours int, wantCents int64) string {
	e.t.Helper()
	sid, x := e.openExtension(c, podID, hours)
	require.EqualValues(e.t, wantCents, x.AmountCents)
	require.Equal(e.t, "usd", x.Currency)
	require.Equal(e.t, http.StatusSeeOther, e.pay(sid, "4242424242424242").StatusCode)
	return sid
}

// Issue 11.2: an extension is hours × the pod's hourly rate (no plan fee), paid at once
// (automatic capture). Once paid, ends_at moves by the hours and the termination with it: the
// terminate job that wakes at the old end finds the pod extended and leaves it running. A
// duplicated or late webhook for the same session extends once.
func TestExtendMovesTheEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("extend@example.com", 2)
	p := e.rentalPod(c, podID)
	oldEnd := *p.EndsAt

	sid := e.extend(c, podID, 2, 2*p.HourlyCents)
	pi := e.m.StripeSim.Session(sid).PaymentIntent
	require.NotNil(t, pi)
	require.Equal(t, "succeeded", e.m.StripeSim.PaymentIntent(*pi).Status, "an extension is captured at once")
	e.eventually("extended", func() bool { p = e.rentalPod(c, podID); return p.EndsAt.After(oldEnd) })
	require.WithinDuration(t, oldEnd.Add(2*time.Hour), *p.EndsAt, time.Second)
	require.InDelta(t, 4*3600, *p.SecondsLeft, 60)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'terminate' AND state = 'scheduled' AND abs(extract(epoch FROM scheduled_at - $2::timestamptz)) < 1 AND args->>'pod_id' = $1`, podID, p.EndsAt.UTC()))

	// The same session's completion delivered again (a new event id, as Stripe may) and the
	// first event resent: still one extension.
	var raw []byte
	for _, ev := range e.m.StripeSim.Events() {
		if ev.Type == "checkout.session.completed" && strings.Contains(string(ev.Raw), sid) {
			raw = ev.Raw
			_, err := e.m.StripeSim.Resend(context.Background(), ev.ID)
			require.NoError(t, err)
		}
	}
	require.NotNil(t, raw)
	var evt struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(raw, &evt))
	dup := []byte(strings.Replace(string(raw), evt.ID, "evt_dup_"+sid, 1))
	code, err := e.m.StripeSim.Deliver(context.Background(), dup)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	e.idle()
	p = e.rentalPod(c, podID)
	require.WithinDuration(t, oldEnd.Add(2*time.Hour), *p.EndsAt, time.Second, "extended once")
	require.Equal(t, 1, e.count(`SELECT count(*) FROM payments WHERE kind = 'extension'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE pod_id = $1 AND action = 'pod.extended'`, podID))
	require.EqualValues(t, 1, e.funnel().Extensions)

	// The terminate job scheduled for the old end wakes: the pod stays running.
	// Made available, not just due: idle does not wait for scheduled jobs.
	tag, err := e.m.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'available', scheduled_at = now() WHERE kind = 'terminate' AND state = 'scheduled' AND scheduled_at < $1`, p.EndsAt.Add(-time.Minute))
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), "the terminate job for the old end")
	e.idle()
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'terminate' AND state = 'completed'`))
	require.Equal(t, "running", e.rentalPod(c, podID).Status)
}

// Issue 11.2: only a running pod can be extended, and never past the plan's max_hours; an
// extension checkout left unpaid changes nothing.
func TestExtendRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("extend-no@example.com", 2)
	x := e.api(c).Extend(podID, 167)
	require.Equal(t, http.StatusUnprocessableEntity, x.Code, x)
	x = e.api(c).Extend(podID, 0)
	require.Equal(t, http.StatusUnprocessableEntity, x.Code, x)

	end := *e.rentalPod(c, podID).EndsAt
	sid, _ := e.openExtension(c, podID, 1)
	require.NoError(t, e.m.StripeSim.ExpireSession(context.Background(), sid))
	e.idle()
	require.Equal(t, end, *e.rentalPod(c, podID).EndsAt, "an expired extension changes nothing")
	require.Equal(t, 1, e.count(`SELECT count(*) FROM extensions WHERE status = 'expired'`))

	require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
	e.waitPod(c, podID, "terminated")
	x = e.api(c).Extend(podID, 1)
	require.Equal(t, http.StatusConflict, x.Code, x)
	require.Equal(t, "not_running", x.Err.Error)
}

// Issue 11.2 with 11.1: a pod of 2 hours extended by 1 and stopped 10 minutes in has 170 unused
// minutes (170 × 179 / 60 → $5.07): the extension is refunded first (all of its $1.79), then
// $3.28 of the order's payment.
func TestExtendedThenStoppedRefundsTheExtensionFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("extend-stop@example.com", 2)
	p := e.rentalPod(c, podID)
	oldEnd := *p.EndsAt
	sid := e.extend(c, podID, 1, p.HourlyCents)
	e.eventually("extended", func() bool { return e.rentalPod(c, podID).EndsAt.After(oldEnd) })
	e.ranFor(podID, tenMinutesIn)

	require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
	e.eventually("refunded", func() bool { return *e.rentalPod(c, podID).RefundedCents == 507 })
	e.idle()
	extPI := *e.m.StripeSim.Session(sid).PaymentIntent
	require.Equal(t, 1, e.m.StripeSim.RefundCount(extPI))
	require.Equal(t, 1, e.m.StripeSim.RefundCount(e.piOf(podID)))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM refunds r JOIN payments y ON y.id = r.payment_id WHERE y.payment_intent_id = $1 AND r.amount_cents = $2`, extPI, p.HourlyCents))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM refunds r JOIN payments y ON y.id = r.payment_id WHERE y.payment_intent_id = $1 AND r.amount_cents = $2`, e.piOf(podID), 507-p.HourlyCents))
}

// Issue 11.3 and 19.3: the instance of a running pod dies at the provider. Within two health
// checks the pod is failed with a clear error, the instance is terminated, every unused minute is
// refunded as for a stop (3 hours bought, 70 minutes run to the first dead check: 110 minutes,
// 110 × 179 / 60 → $3.28) and the customer is emailed.
func TestDeadPodIsNoticedAndRefunded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, periodic: true, env: map[string]string{"POD_HEALTH_INTERVAL": "300ms"}})
	c, podID := e.runningPod("dead-pod@example.com", 3)
	e.ranFor(podID, seventyMinutesIn)
	const want = int64(328)
	var instanceID string
	require.NoError(t, e.m.Pool.QueryRow(context.Background(), `SELECT instance_id FROM pods WHERE id = $1`, podID).Scan(&instanceID))
	e.healthChecks(2) // healthy checks pass and change nothing
	require.Equal(t, "running", e.rentalPod(c, podID).Status)

	require.True(t, e.m.Sim.Fail(instanceID, "the host failed"))
	e.waitPod(c, podID, "failed")
	e.eventually("refunded", func() bool { return *e.rentalPod(c, podID).RefundedCents == want })
	require.Contains(t, e.pod(c, podID).Error, "stopped working")
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE pod_id = $1 AND action = 'pod.died'`, podID))
	e.eventually("instance terminated", func() bool { return e.m.Sim.Terminations() >= 1 })
	e.mailOf("dead-pod@example.com", "refunded", mail.Money(want), "after 70 minutes of the 180 minutes you paid for", "The plan fee is not refunded.")
	require.Equal(t, 1, e.m.StripeSim.RefundCount(e.piOf(podID)))
	require.EqualValues(t, 1, e.funnel().DeadPods)
	e.requireSaysEnded(e.endEmail("dead-pod@example.com"), podID)
}

// Issue 19.3: one rule, by the minute, whoever ends the pod. Two pods of 2 hours at $1.79 on
// Pro, 20 s run: one stopped with Stop, the other dead at its provider (as when the customer
// shuts their own container down). Both are refunded the same, the unused minutes at the rate
// rounded down to the cent: 1 minute used, 119 × 179 / 60 = 355.01… → $3.55, the fee kept.
func TestStopAndDeathRefundTheSameByTheMinute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond, periodic: true, env: map[string]string{"POD_HEALTH_INTERVAL": "300ms"}})
	const want = int64(355)
	stopC, stopped := e.runningPod("stop-20s@example.com", 2)
	deadC, dead := e.runningPod("dead-20s@example.com", 2)
	require.Equal(t, int64(179), e.rentalPod(stopC, stopped).HourlyCents)

	e.ranFor(stopped, 20*time.Second)
	stop := e.api(stopC).Terminate(stopped)
	require.Equal(t, http.StatusAccepted, stop.Code, stop)

	e.ranFor(dead, 20*time.Second)
	var instanceID string
	require.NoError(t, e.m.Pool.QueryRow(context.Background(), `SELECT instance_id FROM pods WHERE id = $1`, dead).Scan(&instanceID))
	require.True(t, e.m.Sim.Fail(instanceID, "the customer shut the container down"))
	e.waitPod(deadC, dead, "failed")

	e.waitPod(stopC, stopped, "terminated")
	e.eventually("both refunded", func() bool {
		return *e.rentalPod(stopC, stopped).RefundedCents > 0 && *e.rentalPod(deadC, dead).RefundedCents > 0
	})
	e.idle()
	byStop, byDeath := *e.rentalPod(stopC, stopped).RefundedCents, *e.rentalPod(deadC, dead).RefundedCents
	require.Equal(t, byStop, byDeath, "stopped and dead 20 s in are refunded the same")
	require.Equal(t, want, byStop, "119 unused minutes × 179 / 60, rounded down")
	require.Contains(t, e.endEmail("stop-20s@example.com").Text, mail.Money(want))
	e.mailOf("dead-20s@example.com", "refunded", mail.Money(want), "119 minutes")
}

// Issue 11.5: the Pro fee buys 30 days from its capture. Signed in to an account whose Pro fee
// was captured, a checkout for the account's own email is priced without the fee, and /api/me
// says until when; signed out (or for another email) the fee is charged.
func TestProFeeCoversAMonth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	const email = "pro-month@example.com"
	c, podID := e.runningPod(email, 2)
	hourly := e.rentalPod(c, podID).HourlyCents

	me := e.api(c).Me()
	require.Equal(t, http.StatusOK, me.Code)
	require.NotNil(t, me.Body.ProActiveUntil)
	until := *me.Body.ProActiveUntil
	var captured time.Time
	require.NoError(t, e.m.Pool.QueryRow(context.Background(), `SELECT captured_at FROM orders WHERE id = $1`, e.orderOf(podID)).Scan(&captured))
	require.WithinDuration(t, captured.Add(30*24*time.Hour), until, time.Second)

	res := e.api(c).Checkout(e.order(email, "pro", "a100", "us-east", 3))
	require.Equal(t, http.StatusCreated, res.Code, res)
	require.EqualValues(t, 3*hourly, res.Body.AmountCents, "no fee while Pro is active")

	res = e.api(newBrowser()).Checkout(e.order(email, "pro", "a100", "us-east", 3))
	require.Equal(t, http.StatusCreated, res.Code, res)
	require.EqualValues(t, 4900+3*hourly, res.Body.AmountCents, "signed out: the fee is charged")
	res = e.api(c).Checkout(e.order("someone-else@example.com", "pro", "a100", "us-east", 3))
	require.Equal(t, http.StatusCreated, res.Code, res)
	require.EqualValues(t, 4900+3*hourly, res.Body.AmountCents, "another email: the fee is charged")

	// 30 days later the fee is due again.
	_, err := e.m.Pool.Exec(context.Background(), `UPDATE orders SET captured_at = captured_at - interval '31 days' WHERE id = $1`, e.orderOf(podID))
	require.NoError(t, err)
	res = e.api(c).Checkout(e.order(email, "pro", "a100", "us-east", 3))
	require.Equal(t, http.StatusCreated, res.Code, res)
	require.EqualValues(t, 4900+3*hourly, res.Body.AmountCents)
}

// An extension paid after its pod stopped buys nothing: it is refunded in full, on its own
// payment, and the pod stays ended.
func TestExtensionPaidAfterTheStopIsRefunded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("late-extension@example.com", 2)
	p := e.rentalPod(c, podID)
	sid, _ := e.openExtension(c, podID, 1)

	require.Equal(t, http.StatusAccepted, e.api(c).Terminate(podID).Code)
	e.waitPod(c, podID, "terminated")
	e.idle()

	require.Equal(t, http.StatusSeeOther, e.pay(sid, "4242424242424242").StatusCode)
	extPI := *e.m.StripeSim.Session(sid).PaymentIntent
	e.eventually("the late extension refunded", func() bool { return e.m.StripeSim.RefundCount(extPI) == 1 })
	e.idle()
	require.Equal(t, 1, e.count(`SELECT count(*) FROM refunds r JOIN payments y ON y.id = r.payment_id
		WHERE y.payment_intent_id = $1 AND r.amount_cents = $2 AND r.reason = 'late_extension' AND r.stripe_refund_id IS NOT NULL`, extPI, p.HourlyCents))
	require.Equal(t, "terminated", e.rentalPod(c, podID).Status)
	require.Equal(t, 1, e.m.StripeSim.RefundCount(extPI), "once")
}

// openExtension asks for hours more on a running pod and leaves its checkout open (unpaid); it
// returns the Checkout Session id and the answer.
func (e *env) openExtension(c *http.Client, podID string, hours int) (sid string, x api.Extension) {
	e.t.Helper()
	res := e.api(c).Extend(podID, hours)
	require.Equal(e.t, http.StatusCreated, res.Code, res)
	return e.sessionOf(&res.Body.CheckoutURL), res.Body
}

// The plan's max_hours counts extension checkouts still open: a second checkout that could
// take the pod past it is refused while the first can still be paid; once the first has
// expired, the same request is accepted.
func TestExtendCountsOpenCheckouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("extend-open@example.com", 2)
	sid, _ := e.openExtension(c, podID, 100) // 2 + 100 of Pro's 168
	x := e.api(c).Extend(podID, 100)
	require.Equal(t, http.StatusUnprocessableEntity, x.Code, x)
	require.Contains(t, x.Err.Fields["hours"], "100 more in a checkout not yet paid")
	x = e.api(c).Extend(podID, 66)
	require.Equal(t, http.StatusCreated, x.Code, x, "2 + 100 open + 66 = 168 fits")

	require.NoError(t, e.m.StripeSim.ExpireSession(context.Background(), sid))
	e.idle()
	e.openExtension(c, podID, 100) // 2 + 66 open + 100 = 168
}

// Two extension checkouts opened before either is paid, both within max_hours alone and past it
// together, are both paid: the first paid extends the pod; the second, checked again in the
// transaction that records its payment, extends nothing and is refunded in full on its own
// payment (ledger reason over_limit), and the customer is told why.
func TestExtensionsPaidPastMaxHoursRefundTheLast(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	const email = "extend-race@example.com"
	c, podID := e.runningPod(email, 2)
	p := e.rentalPod(c, podID)
	oldEnd := *p.EndsAt
	sidA, a := e.openExtension(c, podID, 100)
	extA := a.ExtensionID
	// The API counts an open checkout only until its session's lifetime is over; a payment
	// begun before then can still complete. Age A past it, so the API lets B open.
	_, err := e.m.Pool.Exec(context.Background(), `UPDATE extensions SET created_at = created_at - interval '1 hour' WHERE id = $1`, extA)
	require.NoError(t, err)
	sidB, _ := e.openExtension(c, podID, 100)

	require.Equal(t, http.StatusSeeOther, e.pay(sidA, "4242424242424242").StatusCode)
	require.Equal(t, http.StatusSeeOther, e.pay(sidB, "4242424242424242").StatusCode)
	want := 100 * p.HourlyCents
	e.eventually("one extension refunded", func() bool { return *e.rentalPod(c, podID).RefundedCents == want })
	e.idle()

	p = e.rentalPod(c, podID)
	require.Equal(t, "running", p.Status)
	require.WithinDuration(t, oldEnd.Add(100*time.Hour), *p.EndsAt, time.Second, "extended once")
	require.Equal(t, 102, p.HoursTotal)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM extensions WHERE pod_id = $1 AND status = 'paid'`, podID))
	var refusedPI string
	require.NoError(t, e.m.Pool.QueryRow(context.Background(), `SELECT payment_intent_id FROM extensions WHERE pod_id = $1 AND status = 'over_limit'`, podID).Scan(&refusedPI))
	require.Equal(t, 1, e.m.StripeSim.RefundCount(refusedPI))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM refunds r JOIN payments y ON y.id = r.payment_id
		WHERE y.payment_intent_id = $1 AND r.amount_cents = $2 AND r.reason = 'over_limit' AND r.stripe_refund_id IS NOT NULL`, refusedPI, want))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'terminate' AND state = 'scheduled' AND args->>'pod_id' = $1
		AND abs(extract(epoch FROM scheduled_at - $2::timestamptz)) < 1`, podID, p.EndsAt.UTC()), "one termination at the new end")
	e.mailOf(email, "refunded", mail.Money(want), "168 hours")
}
