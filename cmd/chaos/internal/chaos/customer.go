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

	"gpubroker/billing/stripesim"
	"gpubroker/jobs"
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

// rotation is the scenarios in turn: fourteen customers meet every one, and every aimed fault
// (chainOf: three idle holds meet the three kinds that act on a release, two early stops and two
// deaths the four on a refund, two extensions the four on a read).
var rotation = []string{scRun, scStop, scStrand, scDie, scExtendStop, scIdle, scDecline, scFree, scStop, scIdle, scExtend, scManual, scIdle, scDie}

func scenarioOf(i int) string { return rotation[i%len(rotation)] }

// outcome is what the driver saw happen to one customer, for the checks: its own record, never
// read from our tables.
type outcome struct {
	i            int
	scenario     string
	email        string
	noRedeliver  bool     // its events are never sent twice (as Stripe, once answered 200)
	ids          []string // its order, sessions and PaymentIntents, to find its events (under run.mu)
	orderID      string
	podID        string
	hours        int
	hourly       int64     // the catalog's rate it was shown
	shown        int64     // the price it was shown: the plan fee and the hours at that rate
	pi           string    // its order's PaymentIntent
	paidAt       time.Time // when its card was authorized (the hold's deadline runs from here)
	deployed     bool
	deployAt     time.Time
	ran          bool      // the pod reached running
	sawRunning   time.Time // when it first saw it running (its paid time began before)
	toldStart    time.Time // the started_at its pod showed it, used once checked between its boot and sawRunning
	stoppedAt    time.Time // when the owner pressed terminate
	stopAnswered time.Time // when the terminate request was answered
	killedAt     time.Time // when the driver killed its instance
	sawDead      time.Time // when the driver saw the product notice
	sawEnded     time.Time // a pod left to run: when it saw it end with its paid time
	extended     int       // hours bought through extensions that moved the pod's end
	lateHours    int       // hours bought through extensions paid after the pod ended
	manualCent   int64     // refunded by hand at Stripe
	err          error     // the journey could not be completed (a violation unless explained)
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
		out:    &outcome{i: i, scenario: scenarioOf(i), email: fmt.Sprintf("chaos-%d-%d@example.com", r.opts.Seed, i), noRedeliver: i%3 == 1},
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
	o.hours = order["hours"].(int)
	if err := c.quote(ctx, order["plan"].(string), order["gpu"].(string), order["region"].(string)); err != nil {
		return err
	}
	code, body, err := c.call(ctx, "POST", "/api/checkout", order)
	if err != nil {
		return err
	}
	if code != http.StatusCreated {
		return fmt.Errorf("checkout: %d %v", code, body)
	}
	o.orderID, _ = body["order_id"].(string)
	c.remember(o.orderID, o.email)
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
		// Never deployed: the hold is released a margin before its deadline, through faults.
		c.r.aimStripe(c, pathRelease, "POST", "/v1/payment_intents/"+o.pi+"/cancel", nil)
		return nil
	}
	if o.pi != "" {
		c.r.aimStripe(c, pathCapture, "POST", "/v1/payment_intents/"+o.pi+"/capture", nil)
	}
	if o.scenario == scStrand {
		// Its provisioning job is deleted while the pod provisions (strand): its launches hang,
		// so the pod is still provisioning when the run gets to it, and no aimed fault waits
		// on a launch that may never come.
		c.r.front.stallLaunches(jobs.InstanceName(o.podID))
	} else {
		c.r.aimLaunch(c, jobs.InstanceName(o.podID))
	}
	o.deployAt = time.Now()
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
	o.sawRunning = time.Now()
	// The start the product tells its owner, checked against the stand-in's boot and this
	// customer's own clock (check.go) before the money is computed from it.
	if p, err := c.pod(ctx); err == nil {
		if s, ok := p["started_at"].(string); ok {
			o.toldStart, _ = time.Parse(time.RFC3339Nano, s)
		}
	}
	if o.scenario == scStop || o.scenario == scDie {
		c.r.aimStripe(c, pathRefund, "POST", "/v1/refunds", map[string]string{"payment_intent": o.pi})
	}
	switch o.scenario {
	case scStop, scFree:
		return c.stop(ctx)
	case scExtend:
		if err := c.extend(ctx); err != nil {
			return err
		}
		return c.waitEnd(ctx)
	case scExtendStop:
		if err := c.extend(ctx); err != nil {
			return err
		}
		if o.lateHours > 0 {
			return nil // it ended before the extension went through
		}
		return c.stop(ctx)
	case scDie:
		return c.r.kill(ctx, o)
	case scManual:
		if err := c.r.refundByHand(ctx, o); err != nil {
			return err
		}
	}
	return c.waitEnd(ctx)
}

// waitEnd waits for a pod left running to end with its paid time.
func (c *customer) waitEnd(ctx context.Context) error {
	hours := c.out.hours + c.out.extended
	status, err := c.waitPodFor(ctx, c.r.opts.RentalHour*time.Duration(hours)+3*time.Minute, "terminated", "failed")
	if err != nil {
		return fmt.Errorf("its paid time passed and it still runs: %w", err)
	}
	c.out.sawEnded = time.Now()
	if status != "terminated" {
		return fmt.Errorf("it ended %s", status)
	}
	return nil
}

// quote is the price the site shows for the order, from the catalog: the plan fee and the hours
// at the GPU's hourly rate in the region.
func (c *customer) quote(ctx context.Context, plan, gpuID, region string) error {
	code, body, err := c.call(ctx, "GET", "/api/catalog", nil)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("catalog: %d %v", code, err)
	}
	raw, _ := json.Marshal(body)
	var cat struct {
		Plans []struct {
			ID       string `json:"id"`
			FeeCents int64  `json:"fee_cents"`
		} `json:"plans"`
		GPUs []struct {
			GPU     string `json:"gpu"`
			Regions []struct {
				Region      string `json:"region"`
				HourlyCents int64  `json:"hourly_cents"`
			} `json:"regions"`
		} `json:"gpus"`
	}
	if err := json.Unmarshal(raw, &cat); err != nil {
		return err
	}
	var fee int64 = -1
	for _, p := range cat.Plans {
		if p.ID == plan {
			fee = p.FeeCents
		}
	}
	for _, g := range cat.GPUs {
		for _, rg := range g.Regions {
			if g.GPU == gpuID && rg.Region == region {
				c.out.hourly = rg.HourlyCents
			}
		}
	}
	if fee < 0 || c.out.hourly == 0 {
		return fmt.Errorf("catalog has no %s plan or no %s in %s", plan, gpuID, region)
	}
	c.out.shown = fee + int64(c.out.hours)*c.out.hourly
	if plan == "free" {
		c.out.shown, c.out.hourly = 0, 0
	}
	return nil
}

// remember notes ids that name this customer's objects in Stripe's events.
func (c *customer) remember(ids ...string) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	c.out.ids = append(c.out.ids, ids...)
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
	paid, err := c.r.front.stripe.Pay(ctx, sid, stripesim.CardSucceeds)
	if err != nil {
		return fmt.Errorf("pay: %w", err)
	}
	c.out.pi, c.out.paidAt = paid.PaymentIntentID, time.Now()
	c.remember(sid, paid.PaymentIntentID)
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
	// Five minutes: under kill -9 every few seconds a send job may be rescued several times.
	err := until(ctx, "activation email", 5*time.Minute, func() (bool, error) {
		// The customer's inbox: what the workers sent through SES.
		for _, m := range c.r.front.ses.SentTo(c.out.email) {
			if s := m.Content.Simple; s != nil && s.Body.Text != nil {
				if found := tokenRE.FindStringSubmatch(s.Body.Text.Data); found != nil && strings.Contains(s.Body.Text.Data, "/activate") {
					token = found[1]
				}
			}
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
	return c.waitPodFor(ctx, 8*time.Minute, statuses...)
}

func (c *customer) waitPodFor(ctx context.Context, timeout time.Duration, statuses ...string) (string, error) {
	var status string
	err := until(ctx, "pod "+strings.Join(statuses, " or "), timeout, func() (bool, error) {
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
	c.out.stopAnswered = time.Now()
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
	c.r.aimStripe(c, pathExtension, "GET", "/v1/checkout/sessions/"+sid, nil)
	paid, err := c.r.front.stripe.Pay(ctx, sid, stripesim.CardSucceeds)
	if err != nil {
		return fmt.Errorf("pay extension: %w", err)
	}
	c.remember(sid, paid.PaymentIntentID)
	// The faults may hold the extension back past the pod's end: then it is paid late and
	// must come back in full.
	return until(ctx, "the end to move", 4*time.Minute, func() (bool, error) {
		p, err := c.pod(ctx)
		if err != nil {
			return false, err
		}
		switch {
		case p["ends_at"] != before["ends_at"]:
			c.out.extended++
			return true, nil
		case p["status"] != "running":
			c.out.lateHours++
			return true, nil
		}
		return false, nil
	})
}
