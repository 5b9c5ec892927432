package api

import (
	"context"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"gpubroker"
)

// An endpoint is one route of the API as a typed function, in the shape of River UI's
// apiendpoint: it takes its decoded request body and returns its answer or an error, and knows
// nothing of JSON, status codes or the error shape. serve adapts it to httprouter.
//
// The call carries what an endpoint needs of the HTTP request beyond its body: cookies,
// headers, the query, the route's parameters, the writer for the cookies and headers it sets,
// and, for a signedIn endpoint, the session's account.
type endpoint[Req, Resp any] func(ctx context.Context, c *call, req *Req) (*Resp, error)

// call is an endpoint's view of its HTTP request.
type call struct {
	w  http.ResponseWriter
	r  *http.Request
	ps httprouter.Params
	// account is the signed-in account, for endpoints served signedIn (nil otherwise).
	account *gpubroker.Account
}

func (c *call) param(name string) string { return c.ps.ByName(name) }

// noBody is the request of an endpoint that reads no body: serve leaves the body unread.
type noBody struct{}

// noContent is the answer of an endpoint that answers its status alone (204).
type noContent struct{}

// access says who may call an endpoint.
type access int

const (
	// anyone: the endpoint checks what it needs itself.
	anyone access = iota
	// signedIn: the session's account, found before the body is read (an unauthenticated
	// request is 401 whatever its body), is the call's account.
	signedIn
)

// statusCoder is an answer whose status is its own rather than its endpoint's (verify's 202
// while pending).
type statusCoder interface{ statusCode() int }

// serve adapts an endpoint to httprouter: for a signedIn endpoint it finds the session's
// account first, then decodes the body into Req with readJSON (its size limit and its refusal of
// malformed, non-UTF-8 or NUL-carrying bodies; not for noBody), calls the endpoint, and answers
// its Resp as JSON with status (or the answer's own, statusCoder; noContent: no body). Any
// error, from any of these steps, is answered by writeError, which maps gpubroker.Error codes
// to statuses: the one place errors become HTTP.
func serve[Req, Resp any](s *Server, status int, who access, e endpoint[Req, Resp]) httprouter.Handle {
	_, skipBody := any(new(Req)).(*noBody)
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		c := &call{w: w, r: r, ps: ps}
		resp, err := func() (*Resp, error) {
			if who == signedIn {
				acct, err := s.sessionAccount(r)
				if err != nil {
					return nil, err
				}
				c.account = acct
			}
			var req Req
			if !skipBody {
				if err := readJSON(w, r, &req); err != nil {
					return nil, err
				}
			}
			return e(r.Context(), c, &req)
		}()
		if err != nil {
			writeError(w, r, err)
			return
		}
		code := status
		if sc, ok := any(resp).(statusCoder); ok {
			code = sc.statusCode()
		}
		if _, empty := any(resp).(*noContent); empty || resp == nil {
			w.WriteHeader(code)
			return
		}
		writeJSON(w, code, resp)
	}
}

// allow counts a hit against a rate limit as limit does, for endpoints: over the limit it sets
// Retry-After and returns the 429.
func (s *Server) allow(c *call, key string, n int, window time.Duration) error {
	if s.allowed(c.r, key, n, window) {
		return nil
	}
	c.w.Header().Set("Retry-After", retryAfter(window))
	return errRateLimited
}
