// Package apitest is a small typed client of GPU Broker's HTTP API for tests. Each method sends
// one request as the site's own pages do (JSON, with the site's Origin) from a browser (an
// http.Client whose cookie jar holds the session) and decodes the answer into the api package's
// wire types: a 2xx answer into Body, strictly (a field the wire type does not know fails), and
// any other into Err, the contract's error shape. Raw keeps the bytes, for checks that a secret
// is absent from an answer.
package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"gpubroker"
	"gpubroker/api"
)

// Client calls the API at URL from the browser HTTP.
type Client struct {
	URL  string       // the site's origin (http://host:port), also sent as Origin
	HTTP *http.Client // the browser: its cookie jar carries the session and checkout cookies
	// Header is sent with every request (X-Forwarded-For, Fetch Metadata …).
	Header http.Header
	// T, when set, fails the test on a request that does not complete or a 2xx answer that
	// does not decode; without it (a poller in its own goroutine) Result.Failure says so.
	T testing.TB
}

// New is a client of the API at url for the browser c, failing t on transport errors.
func New(t testing.TB, url string, c *http.Client) *Client {
	return &Client{URL: url, HTTP: c, T: t}
}

// With is a copy of c that also sends header key: value.
func (c *Client) With(key, value string) *Client {
	d := *c
	d.Header = c.Header.Clone()
	if d.Header == nil {
		d.Header = http.Header{}
	}
	d.Header.Set(key, value)
	return &d
}

// NoBody is the Body of an answer that has none (204, a redirect).
type NoBody struct{}

// Result is one answer.
type Result[T any] struct {
	Code   int
	Header http.Header
	Raw    []byte
	Body   T             // the answer, for a 2xx
	Err    api.ErrorBody // the error, for anything else
	// Failure is why the request did not complete or its answer did not decode (only when the
	// client has no T, which fails the test instead).
	Failure error
}

// String is the status and the raw answer, for failure messages.
func (r Result[T]) String() string {
	if r.Failure != nil {
		return "request failed: " + r.Failure.Error()
	}
	return strconv.Itoa(r.Code) + " " + string(r.Raw)
}

// OK reports whether the answer is a 2xx.
func (r Result[T]) OK() bool { return r.Code >= 200 && r.Code < 300 }

// SetsCookie reports whether the answer sets a non-empty cookie name.
func (r Result[T]) SetsCookie(name string) bool {
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == name && ck.Value != "" {
			return true
		}
	}
	return false
}

// Do sends method path with body (JSON; nil for none) and decodes the answer as T: the escape
// hatch for a route without a method here.
func Do[T any](c *Client, method, path string, body any) Result[T] {
	if c.T != nil {
		c.T.Helper()
	}
	var res Result[T]
	fail := func(err error) Result[T] {
		if c.T != nil {
			c.T.Helper()
			c.T.Fatalf("%s %s: %v", method, path, err)
		}
		res.Failure = err
		return res
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fail(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
	if err != nil {
		return fail(err)
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Origin", c.URL)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	if res.Raw, err = io.ReadAll(resp.Body); err != nil {
		return fail(err)
	}
	res.Code, res.Header = resp.StatusCode, resp.Header
	if !res.OK() {
		_ = json.Unmarshal(res.Raw, &res.Err)
		return res
	}
	if _, none := any(res.Body).(NoBody); none {
		return res
	}
	dec := json.NewDecoder(bytes.NewReader(res.Raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res.Body); err != nil {
		return fail(fmt.Errorf("answer %d does not decode as %T: %w: %s", res.Code, res.Body, err, res.Raw))
	}
	return res
}

// Checkout is POST /api/checkout.
func (c *Client) Checkout(o gpubroker.OrderRequest) Result[api.CheckoutStarted] {
	return Do[api.CheckoutStarted](c, "POST", "/api/checkout", o)
}

// Quote is POST /api/quote.
func (c *Client) Quote(o gpubroker.OrderRequest) Result[api.Quote] {
	return Do[api.Quote](c, "POST", "/api/quote", o)
}

// Verify is GET /api/checkout/verify?session_id=.
func (c *Client) Verify(sessionID string) Result[api.VerifyAnswer] {
	return Do[api.VerifyAnswer](c, "GET", "/api/checkout/verify?session_id="+url.QueryEscape(sessionID), nil)
}

// Activate is POST /api/activate.
func (c *Client) Activate(token string) Result[api.SignIn] {
	return Do[api.SignIn](c, "POST", "/api/activate", api.TokenRequest{Token: token})
}

// LoginVerify is POST /api/login/verify.
func (c *Client) LoginVerify(token string) Result[api.SignIn] {
	return Do[api.SignIn](c, "POST", "/api/login/verify", api.TokenRequest{Token: token})
}

// Login is POST /api/login.
func (c *Client) Login(email string) Result[api.Status] {
	return Do[api.Status](c, "POST", "/api/login", api.EmailRequest{Email: email})
}

// ResendActivation is POST /api/activation/resend.
func (c *Client) ResendActivation(email string) Result[api.Status] {
	return Do[api.Status](c, "POST", "/api/activation/resend", api.EmailRequest{Email: email})
}

// Logout is POST /api/logout.
func (c *Client) Logout() Result[NoBody] { return Do[NoBody](c, "POST", "/api/logout", nil) }

// Me is GET /api/me.
func (c *Client) Me() Result[api.Me] { return Do[api.Me](c, "GET", "/api/me", nil) }

// Pod is GET /api/pods/{id}.
func (c *Client) Pod(id string) Result[api.Pod] {
	return Do[api.Pod](c, "GET", "/api/pods/"+url.PathEscape(id), nil)
}

// Deploy is POST /api/pods/{id}/deploy.
func (c *Client) Deploy(id string) Result[api.Status] {
	return Do[api.Status](c, "POST", "/api/pods/"+url.PathEscape(id)+"/deploy", nil)
}

// Terminate is POST /api/pods/{id}/terminate.
func (c *Client) Terminate(id string) Result[api.Status] {
	return Do[api.Status](c, "POST", "/api/pods/"+url.PathEscape(id)+"/terminate", nil)
}

// Extend is POST /api/pods/{id}/extend.
func (c *Client) Extend(id string, hours int) Result[api.Extension] {
	return Do[api.Extension](c, "POST", "/api/pods/"+url.PathEscape(id)+"/extend", api.ExtendRequest{Hours: hours})
}

// ExtensionQuote is GET /api/pods/{id}/extend?hours=.
func (c *Client) ExtensionQuote(id string, hours int) Result[api.ExtensionQuote] {
	return Do[api.ExtensionQuote](c, "GET", "/api/pods/"+url.PathEscape(id)+"/extend?hours="+strconv.Itoa(hours), nil)
}

// SSHKeys is GET /api/me/ssh-keys.
func (c *Client) SSHKeys() Result[api.SSHKeys] {
	return Do[api.SSHKeys](c, "GET", "/api/me/ssh-keys", nil)
}

// AddSSHKey is POST /api/me/ssh-keys.
func (c *Client) AddSSHKey(name, publicKey string) Result[api.SSHKey] {
	return Do[api.SSHKey](c, "POST", "/api/me/ssh-keys", api.AddSSHKeyRequest{Name: name, PublicKey: publicKey})
}

// DeleteSSHKey is DELETE /api/me/ssh-keys/{id}.
func (c *Client) DeleteSSHKey(id string) Result[NoBody] {
	return Do[NoBody](c, "DELETE", "/api/me/ssh-keys/"+url.PathEscape(id), nil)
}

// Receipt is GET of a receipt_url from /api/me (a 303 to Stripe's receipt: see Header's
// Location).
func (c *Client) Receipt(receiptURL string) Result[NoBody] {
	return Do[NoBody](c, "GET", receiptURL, nil)
}

// Contact is POST /api/contact.
func (c *Client) Contact(m api.ContactRequest) Result[api.Status] {
	return Do[api.Status](c, "POST", "/api/contact", m)
}

// Mails is the dev outbox for an address (GET /dev/mail?to= as JSON), newest first.
func (c *Client) Mails(to string) Result[[]api.DevEmail] {
	d := c.With("Accept", "application/json")
	return Do[[]api.DevEmail](d, "GET", "/dev/mail?to="+url.QueryEscape(to), nil)
}
