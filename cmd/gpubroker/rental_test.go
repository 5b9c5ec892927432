package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/internal/stripesim"
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
	code, body := e.do(c, "POST", "/api/checkout", e.order(email, "pro", "a100", "us-east", hours))
	require.Equal(e.t, http.StatusCreated, code, body)
	u, err := url.Parse(body["checkout_url"].(string))
	require.NoError(e.t, err)
	sid := u.Path[strings.LastIndex(u.Path, "/")+1:]
	require.Equal(e.t, http.StatusSeeOther, e.pay(sid, "4242424242424242").StatusCode)
	var podID string
	e.eventually("verify 200", 10*time.Second, func() bool {
		code, body := e.do(c, "GET", "/api/checkout/verify?session_id="+sid, nil)
		if code == http.StatusOK {
			podID = body["pod"].(map[string]any)["id"].(string)
		}
		return code == http.StatusOK
	})
	code, _ = e.do(c, "POST", "/api/activate", map[string]any{"token": e.activationToken(email, 1)})
	require.Equal(e.t, http.StatusOK, code)
	e.deploy(c, podID)
	e.waitPod(c, podID, "running", 20*time.Second)
	return c, podID
}

// ranFor pretends the pod started d ago (and ends when its hours say).
func (e *env) ranFor(podID string, d time.Duration) {
	e.t.Helper()
	_, err := e.m.Pool.Exec(context.Background(), `UPDATE pods SET started_at = now() - $2::interval,
		ends_at = now() - $2::interval + make_interval(hours => hours) WHERE id = $1`, podID, d.String())
	require.NoError(e.t, err)
}

// Issue 11.1, the worked example: a pod of 3 hours stopped 10 minutes in has started 1 hour;
// the 2 others are refunded (2 × the hourly rate), the plan fee is kept, in one partial refund
// of the order's payment under refund-<payment>-1, and the customer is told the amount.
func TestEarlyStopRefundsUnusedHours(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("early-stop@example.com", 3)
	p := e.rentalPod(c, podID)
	require.NotNil(t, p.SecondsLeft)
	require.InDelta(t, 3*3600, *p.SecondsLeft, 60)
	require.NotNil(t, p.RefundedCents)
	require.Zero(t, *p.RefundedCents)
	e.ranFor(podID, 10*time.Minute)

	code, body := e.do(c, "POST", "/api/pods/"+podID+"/terminate", nil)
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM river_job WHERE kind = 'unused_hours_refund'`), "queued with the move to terminating")
	e.waitPod(c, podID, "terminated", 10*time.Second)
	want := 2 * p.HourlyCents
	e.eventually("refunded", 10*time.Second, func() bool { p = e.rentalPod(c, podID); return *p.RefundedCents == want })
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
	var msg map[string]any
	e.eventually("refund email", 5*time.Second, func() bool {
		for _, m := range e.mails("early-stop@example.com") {
			if m["kind"] == "refunded" {
				msg = m
				return true
			}
		}
		return false
	})
	require.Contains(t, msg["text"], mail.Money(want))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_events WHERE pod_id = $1 AND action = 'pod.early_stop_refunded'`, podID))

	// Stopping again changes nothing.
	code, _ = e.do(c, "POST", "/api/pods/"+podID+"/terminate", nil)
	require.Equal(t, http.StatusAccepted, code)
	e.idle()
	require.Len(t, e.stripeCalls("POST", "/v1/refunds"), 1)
}

// Issue 11.1: a pod stopped in its last hour has no unused hour; nothing is refunded and no
// refund is asked of Stripe.
func TestEarlyStopInLastHourRefundsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{bootDelay: 50 * time.Millisecond})
	c, podID := e.runningPod("last-hour@example.com", 2)
	e.ranFor(podID, 61*time.Minute)
	code, _ := e.do(c, "POST", "/api/pods/"+podID+"/terminate", nil)
	require.Equal(t, http.StatusAccepted, code)
	e.waitPod(c, podID, "terminated", 10*time.Second)
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
		e.ranFor(podID, 70*time.Minute) // 2 hours started, 1 refunded
		p := e.rentalPod(c, podID)
		before := len(e.stripeCalls("POST", "/v1/refunds"))
		e.m.StripeSim.InjectFault(stripesim.Fault{Method: "POST", Path: "/v1/refunds", Mode: mode, Times: 1})
		code, _ := e.do(c, "POST", "/api/pods/"+podID+"/terminate", nil)
		require.Equal(t, http.StatusAccepted, code)
		e.eventually("refunded", 20*time.Second, func() bool { return *e.rentalPod(c, podID).RefundedCents == p.HourlyCents })
		e.idle()
		require.Equal(t, 1, e.m.StripeSim.RefundCount(e.piOf(podID)), email)
		require.Equal(t, p.HourlyCents, *e.rentalPod(c, podID).RefundedCents)
		calls := e.stripeCalls("POST", "/v1/refunds")[before:]
		if mode == stripesim.LoseAnswer {
			require.Len(t, calls, 1, "the retry found the refund instead of refunding again")
		} else {
			require.Len(t, calls, 2)
			require.NotEqual(t, calls[0].IdempotencyKey, calls[1].IdempotencyKey)
		}
	}
}
