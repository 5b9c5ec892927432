package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"gpubroker/internal/stripesim"
)

// Scenarios: what a customer does once their pod runs (or instead of deploying).
const (
	scRun        = "run"         // leaves the pod running
	scStop       = "stop"        // stops it early: the unused minutes come back
	scExtend     = "extend"      // buys an hour more and leaves it running
	scExtendStop = "extend-stop" // buys an hour more, then stops early
	scDie        = "die"         // its instance dies at the provider: the unused minutes come back
	scIdle       = "idle"        // pays and activates but never deploys: the hold stays
	scDecline    = "decline"     // the first card is declined, the second pays; then runs
	scFree       = "free"        // a free trial, stopped early
	scStrand     = "strand"      // drift on purpose: its provisioning job is lost and the pod failed by hand
	scManual     = "manual"      // drift on purpose: ops refund part of it by hand in Stripe's dashboard
)

var rotation = []string{scRun, scStop, scExtend, scDie, scExtendStop, scIdle, scDecline, scFree, scStop, scRun}

// scenarioOf is customer i's scenario: the rotation, with the two drifts at fixed places.
func scenarioOf(i int) string {
	switch i {
	case 2:
		return scStrand
	case 5:
		return scManual
	}
	return rotation[i%len(rotation)]
}

// outcome is what the driver saw happen to one customer, for the checks.
type outcome struct {
	i          int
	scenario   string
	email      string
	orderID    string
	podID      string
	deployed   bool
	ran        bool      // the pod reached running
	stoppedAt  time.Time // when the owner pressed terminate
	killedAt   time.Time // when the driver killed its instance
	extended   int       // hours bought through extensions
	manualCent int64     // refunded by hand at Stripe
	err        error     // the journey could not be completed (a violation unless explained)
}

// customer drives one person through the product over HTTP, as the site's pages would.
type customer struct {
	r      *run
	i      int
	client *http.Client
	addr   string // the client address the front reports (X-Forwarded-For)
	out    *outcome
}

var tokenRE = regexp.MustCompile(`token=([A-Za-z0-9_\-]+)`)

func newCustomer(r *run, i int) *customer {
	jar, _ := cookiejar.New(nil)
	return &customer{
		r: r, i: i,
		client: &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		addr:   fmt.Sprintf("10.%d.%d.%d", 1+i/65536%200, i/256%256, i%256),
		out:    &outcome{i: i, scenario: scenarioOf(i), email: fmt.Sprintf("chaos-%d-%d@example.com", r.opts.Seed, i)},
	}
}

// call sends a JSON request through the front with the site's Origin, retrying while the
// service is unavailable (503, a refused connection during a database restart): a person
// would press again. It returns the status and the decoded body.
func (c *customer) call(ctx context.Context, method, path string, body any) (int, map[string]any, error) {
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, method, c.r.front.url+path, bytes.NewReader(payload))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", c.r.front.url)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set(clientHeader, c.addr)
		resp, err := c.client.Do(req)
		if err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out := map[string]any{}
			_ = json.Unmarshal(raw, &out)
			if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusBadGateway {
				return resp.StatusCode, out, nil
			}
			err = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, nil, fmt.Errorf("%s %s kept failing: %w", method, path, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// until polls f every interval until it reports done, an error, or the timeout.
func until(ctx context.Context, what string, timeout time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := f()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// journey runs the customer's scenario; errors end up in the outcome.
func (c *customer) journey(ctx context.Context) {
	c.out.err = c.steps(ctx)
}

func (c *customer) steps(ctx context.Context) error {
	o := c.out
	gpus := []struct{ gpu, region string }{{"a100", "us-east"}, {"h100", "us-west"}, {"a100", "eu-central"}, {"rtx4090", "us-east"}, {"h100", "us-east"}}
	g := gpus[c.i%len(gpus)]
	template := []string{"data-science", "developer"}[c.i%2]
	order := map[string]any{"email": o.email, "name": fmt.Sprintf("Chaos %d", c.i), "plan": "pro", "template": template, "gpu": g.gpu, "region": g.region, "hours": 2}
	if o.scenario == scFree {
		order["plan"], order["gpu"], order["region"], order["hours"] = "free", "rtx4090", "us-east", 1
	}
	code, body, err := c.call(ctx, "POST", "/api/checkout", order)
	if err != nil {
		return err
	}
	if code != http.StatusCreated {
		return fmt.Errorf("checkout: %d %v", code, body)
	}
	o.orderID, _ = body["order_id"].(string)
	if o.scenario != scFree {
		if err := c.pay(ctx, body["checkout_url"]); err != nil {
			return err
		}
	}
	if err := c.activate(ctx); err != nil {
		return err
	}
	code, me, err := c.call(ctx, "GET", "/api/me", nil)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("me: %d %v %v", code, me, err)
	}
	pods, _ := me["pods"].([]any)
	if len(pods) != 1 {
		return fmt.Errorf("me: want one pod, got %v", me["pods"])
	}
	o.podID, _ = pods[0].(map[string]any)["id"].(string)
	if o.scenario == scIdle {
		return nil
	}
	if code, body, err := c.call(ctx, "POST", "/api/pods/"+o.podID+"/deploy", nil); err != nil || code != http.StatusAccepted {
		return fmt.Errorf("deploy: %d %v %v", code, body, err)
	}
	o.deployed = true
	if o.scenario == scStrand {
		return c.r.strand(ctx, o)
	}
	status, err := c.waitPod(ctx, "running", "failed")
	if err != nil || status != "running" {
		return err // failed: no GPU could be started (the checks expect its refund)
	}
	o.ran = true
	switch o.scenario {
	case scStop, scFree:
		return c.stop(ctx)
	case scExtend:
		return c.extend(ctx)
	case scExtendStop:
		if err := c.extend(ctx); err != nil {
			return err
		}
		return c.stop(ctx)
	case scDie:
		return c.r.kill(ctx, o)
	case scManual:
		return c.r.refundByHand(ctx, o)
	}
	return nil
}

// pay pays a Checkout Session on the Stripe stand-in (declining first in the decline
// scenario) and waits for the success page's verify call to sign the buyer in.
func (c *customer) pay(ctx context.Context, checkoutURL any) error {
	sid, err := sessionOf(checkoutURL)
	if err != nil {
		return err
	}
	if c.out.scenario == scDecline {
		if _, err := c.r.front.stripe.Pay(ctx, sid, stripesim.CardDeclined); err == nil {
			return errors.New("the declined card paid")
		}
	}
	if _, err := c.r.front.stripe.Pay(ctx, sid, stripesim.CardSucceeds); err != nil {
		return fmt.Errorf("pay: %w", err)
	}
	return until(ctx, "verify 200", 2*time.Minute, func() (bool, error) {
		code, body, err := c.call(ctx, "GET", "/api/checkout/verify?session_id="+sid, nil)
		return code == http.StatusOK && body["signed_in"] == true, err
	})
}

// sessionOf is the Checkout Session id a checkout URL ends with.
func sessionOf(checkoutURL any) (string, error) {
	link, _ := checkoutURL.(string)
	u, err := url.Parse(link)
	if err != nil || link == "" {
		return "", fmt.Errorf("checkout url %q", link)
	}
	return u.Path[strings.LastIndex(u.Path, "/")+1:], nil
}

// activate follows the activation link of the email the account job queued.
func (c *customer) activate(ctx context.Context) error {
	var token string
	err := until(ctx, "activation email", 2*time.Minute, func() (bool, error) {
		var text string
		err := c.r.pool.QueryRow(ctx, `SELECT text_body FROM emails WHERE to_email = $1 AND kind = 'activation' ORDER BY id DESC LIMIT 1`, c.out.email).Scan(&text)
		if err != nil {
			return false, nil // not yet (or the database is restarting)
		}
		if m := tokenRE.FindStringSubmatch(text); m != nil {
			token = m[1]
		}
		return token != "", nil
	})
	if err != nil {
		return err
	}
	code, body, err := c.call(ctx, "POST", "/api/activate", map[string]any{"token": token})
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("activate: %d %v %v", code, body, err)
	}
	return nil
}

// pod reads the pod as its owner.
func (c *customer) pod(ctx context.Context) (map[string]any, error) {
	code, body, err := c.call(ctx, "GET", "/api/pods/"+c.out.podID, nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("pod: %d %v", code, body)
	}
	return body, nil
}

// waitPod waits until the pod is in one of the statuses and returns it.
func (c *customer) waitPod(ctx context.Context, statuses ...string) (string, error) {
	var status string
	err := until(ctx, "pod "+strings.Join(statuses, " or "), 4*time.Minute, func() (bool, error) {
		p, err := c.pod(ctx)
		if err != nil {
			return false, err
		}
		status, _ = p["status"].(string)
		for _, s := range statuses {
			if status == s {
				return true, nil
			}
		}
		return false, nil
	})
	return status, err
}

// stop presses Terminate on the running pod.
func (c *customer) stop(ctx context.Context) error {
	c.out.stoppedAt = time.Now()
	code, body, err := c.call(ctx, "POST", "/api/pods/"+c.out.podID+"/terminate", nil)
	if err != nil || code != http.StatusAccepted {
		return fmt.Errorf("terminate: %d %v %v", code, body, err)
	}
	_, err = c.waitPod(ctx, "terminated", "failed")
	return err
}

// extend buys one more hour and waits until the pod's end has moved.
func (c *customer) extend(ctx context.Context) error {
	before, err := c.pod(ctx)
	if err != nil {
		return err
	}
	code, body, err := c.call(ctx, "POST", "/api/pods/"+c.out.podID+"/extend", map[string]any{"hours": 1})
	if err != nil || code != http.StatusCreated {
		return fmt.Errorf("extend: %d %v %v", code, body, err)
	}
	sid, err := sessionOf(body["checkout_url"])
	if err != nil {
		return fmt.Errorf("extension %w", err)
	}
	if _, err := c.r.front.stripe.Pay(ctx, sid, stripesim.CardSucceeds); err != nil {
		return fmt.Errorf("pay extension: %w", err)
	}
	c.out.extended++
	return until(ctx, "the end to move", 2*time.Minute, func() (bool, error) {
		p, err := c.pod(ctx)
		if err != nil {
			return false, err
		}
		return p["ends_at"] != before["ends_at"], nil
	})
}
