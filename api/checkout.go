package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// handleCatalog serves the catalog the API prices from (the same files Hugo renders).
func (s *Server) handleCatalog(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_ = json.NewEncoder(w).Encode(s.Catalog)
}

// checkout validates and prices an order, stores it with its pod, and creates the Stripe
// Checkout Session (paid plans) or enqueues the account (free trial).
func (s *Server) checkout(ctx context.Context, c *call, req *gpubroker.OrderRequest) (*CheckoutStarted, error) {
	r := c.r
	if err := s.allow(c, "checkout:ip:"+s.rateNet(r), 20, 10*time.Minute); err != nil {
		return nil, err
	}
	// Priced as POST /api/quote answers, the Pro fee waived while the buyer's own is paid.
	q, _, err := s.quote(r, *req)
	if err != nil {
		return nil, err
	}
	if err := s.allow(c, "checkout:email:"+gpubroker.Mailbox(q.Request.Email), 10, 10*time.Minute); err != nil {
		return nil, err
	}
	if !q.Plan.PaymentRequired {
		// One trial per mailbox (a+1@gmail.com and A+2@googlemail.com are one), and a few a
		// day per client address. A mailbox that already had its trial answers 409 without
		// spending one of the address's trials; the claim in CreateOrder settles races.
		if err := postgres.CheckTrial(ctx, s.Pool, q.Request.Email); err != nil {
			return nil, err
		}
		if err := s.allow(c, "trial:ip:"+s.rateNet(r), trialsPerIP, 24*time.Hour); err != nil {
			return nil, err
		}
		var order *gpubroker.Order
		err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
			var err error
			if order, err = s.createOrder(ctx, tx, r, q); err != nil {
				return err
			}
			_, err = s.Jobs.InsertTx(ctx, tx, tasks.CreateAccountArgs{OrderID: order.ID}, nil)
			return err
		})
		if err != nil {
			return nil, err
		}
		return &CheckoutStarted{OrderID: order.ID, Next: "check_email", Currency: gpubroker.Currency}, nil
	}
	var order *gpubroker.Order
	err = postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		order, err = s.createOrder(ctx, tx, r, q)
		return err
	})
	if err != nil {
		return nil, err
	}
	sess, err := s.Payments.CreateCheckout(ctx, gpubroker.CheckoutParams{
		OrderID:        order.ID,
		Email:          order.Email,
		LineItems:      q.LineItems,
		Currency:       gpubroker.Currency,
		SuccessURL:     s.PublicURL + "/payment/success/?session_id={CHECKOUT_SESSION_ID}",
		CancelURL:      s.PublicURL + "/payment/cancel/?order_id=" + order.ID,
		ExpiresAt:      s.now().Add(gpubroker.CheckoutLifetime),
		IdempotencyKey: "checkout-" + order.ID,
	})
	if err != nil {
		logger(r).ErrorContext(ctx, "error creating checkout session", "order_id", order.ID, "error", err)
		return nil, errPaymentsUnavailable
	}
	if err := postgres.SetCheckoutSession(ctx, s.Pool, order.ID, sess.ID); err != nil {
		return nil, err
	}
	// The paying browser is the one that holds this cookie: the session id comes back in a URL,
	// which anyone can be sent, so it proves nothing about who paid (verify).
	cookie := s.checkoutCookie(r)
	if err := postgres.SetCheckoutCookie(ctx, s.Pool, order.ID, cookie); err != nil {
		return nil, err
	}
	http.SetCookie(c.w, &http.Cookie{Name: CheckoutCookie, Value: cookie, Path: checkoutCookiePath, MaxAge: int(checkoutCookieTTL.Seconds()),
		HttpOnly: true, Secure: s.SecureCookies, SameSite: http.SameSiteLaxMode})
	logger(r).InfoContext(ctx, "checkout started", "order_id", order.ID, "session_id", sess.ID, "amount_cents", q.AmountCents)
	return &CheckoutStarted{OrderID: order.ID, CheckoutURL: &sess.URL, AmountCents: q.AmountCents, Currency: gpubroker.Currency}, nil
}

// errPaymentsUnavailable is the answer when Stripe cannot be reached (503).
var errPaymentsUnavailable = &gpubroker.Error{Code: gpubroker.EUNAVAILABLE, Reason: "payments_unavailable", Message: "We could not reach our payment processor. Please try again."}

// createOrder stores a quoted order with its pod, and the SSH key typed at checkout together
// with the account the buyer is signed in to: the account job saves the key only on an account
// the buyer may add keys to (a paid checkout with someone else's email must not put the
// payer's key on that person's pods).
func (s *Server) createOrder(ctx context.Context, tx pgx.Tx, r *http.Request, q *gpubroker.Quote) (*gpubroker.Order, error) {
	order, _, err := postgres.CreateOrder(ctx, tx, q)
	if err != nil {
		return nil, err
	}
	key := strings.TrimSpace(q.Request.SSHPublicKey)
	if key == "" {
		return order, nil
	}
	buyer := ""
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		if acct, err := postgres.SessionAccount(ctx, tx, c.Value, s.now()); err == nil {
			buyer = acct.ID
		}
	}
	return order, postgres.SetOrderSSHKey(ctx, tx, order.ID, key, buyer)
}

// signedInAccount is the account of the request's session cookie, or nil.
func (s *Server) signedInAccount(r *http.Request) *gpubroker.Account {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	acct, err := postgres.SessionAccount(r.Context(), s.Pool, c.Value, s.now())
	if err != nil {
		return nil
	}
	return acct
}

// CheckoutCookie names the paying browser: POST /api/checkout sets it, and the hash of its value
// is stored on the order. Its path reaches only /api/checkout/verify.
const CheckoutCookie = "gb_checkout"

const (
	checkoutCookiePath = "/api/checkout"
	// payerWindow is how long after payment the checkout cookie reads verify's full answer and
	// signs in; the cookie lives that long past the longest a checkout stays open.
	payerWindow       = 24 * time.Hour
	checkoutCookieTTL = payerWindow + time.Hour
)

// checkoutCookie is the browser's checkout cookie, or a new one. One browser keeps one value
// across its checkouts, so a second checkout does not orphan the first one's success page; a
// value too short to be ours is replaced.
func (s *Server) checkoutCookie(r *http.Request) string {
	if c, err := r.Cookie(CheckoutCookie); err == nil && len(c.Value) >= 43 && len(c.Value) <= 64 {
		return c.Value
	}
	secret, _ := postgres.NewSecret()
	return secret
}

// trialsPerIP is how many free trials one client address may start a day.
const trialsPerIP = 3

// navigatedHere reports whether a verify request may be a browser that another site, a link
// or the address bar sent here, rather than the success page's own fetch. Browsers label
// every request with Sec-Fetch-Site; only "same-origin" (and not a navigation) is our page.
// Without Fetch Metadata it is a non-browser client, unless it carries the header browsers
// too old for Fetch Metadata send on navigations.
func navigatedHere(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin":
		return r.Header.Get("Sec-Fetch-Mode") == "navigate"
	case "":
		return r.Header.Get("Upgrade-Insecure-Requests") != ""
	default: // cross-site, same-site, none
		return true
	}
}

// maxWebhookBody is Stripe's practical event size with a wide margin.
const maxWebhookBody = 256 << 10

// handleWebhook verifies a Stripe event on its raw body, stores it under its id and enqueues
// its job in the same transaction, then answers 200. Slow work happens in the job.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	body, err := readBody(http.MaxBytesReader(w, r.Body, maxWebhookBody), min(r.ContentLength, maxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, r, gpubroker.Errorf(gpubroker.ETOOLARGE, "too_large", "Webhook bodies are limited to 256 KiB."))
			return
		}
		writeError(w, r, gpubroker.Errorf(gpubroker.EBADREQUEST, "bad_request", "Could not read the body."))
		return
	}
	ev, err := s.ParseWebhook(body, r.Header.Get("Stripe-Signature"), s.WebhookSecret)
	if err != nil {
		logger(r).WarnContext(r.Context(), "webhook refused", "error", err)
		writeError(w, r, gpubroker.Errorf(gpubroker.EBADREQUEST, "bad_signature", "The signature or body of this event is not valid."))
		return
	}
	ctx := r.Context()
	// The event and its job in one statement, shared with events arriving at the same time:
	// one round trip and one commit for the lot.
	inserted, err := s.Events.Insert(ctx, ev, tasks.StripeEventArgs{EventID: ev.ID})
	if gpubroker.ErrorCode(postgres.ClassifyError(err)) == gpubroker.EBADREQUEST {
		// Signed, but with bytes Postgres refuses (a \u0000 in the payload): storing it will
		// never work, so Stripe must not retry it.
		logger(r).WarnContext(ctx, "webhook not storable", "event_id", ev.ID, "error", err)
		writeError(w, r, gpubroker.Errorf(gpubroker.EBADREQUEST, "bad_payload", "The body of this event cannot be stored."))
		return
	}
	if err != nil {
		logger(r).ErrorContext(ctx, "webhook not stored", "event_id", ev.ID, "error", err)
		writeError(w, r, &gpubroker.Error{Code: gpubroker.EUNAVAILABLE, Reason: "unavailable", Message: "Could not store the event; retry later."})
		return
	}
	logAttrs(r, "event_id", ev.ID, "event_type", ev.Type, "duplicate", !inserted) // on the request's log line
	// writeJSON's answer, without encoding a map per event.
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(`{"received":true}` + "\n"))
}

// verify is polled by the success page: 202 until the account exists, then 200 with a session
// cookie, so the buyer is signed in without a password.
func (s *Server) verify(ctx context.Context, c *call, _ *noBody) (*VerifyAnswer, error) {
	r := c.r
	sid := r.URL.Query().Get("session_id")
	if sid == "" {
		return nil, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "session_id is required.", Fields: map[string]string{"session_id": "required"}}
	}
	o, err := postgres.GetOrderBySession(ctx, s.Pool, sid)
	if err != nil {
		return nil, err
	}
	switch {
	case o.Status == gpubroker.OrderExpired:
		return nil, gpubroker.Errorf(gpubroker.EGONE, "expired", "This checkout expired before it was paid. Start again from the get-started page.")
	case o.AccountID == nil && o.Status == gpubroker.OrderReleased:
		return nil, gpubroker.Errorf(gpubroker.EGONE, "released", "This payment was cancelled before it completed, so nothing was charged. Start again from the get-started page.")
	case o.AccountID == nil:
		return &VerifyAnswer{Status: &Status{Status: "pending", Message: "We are confirming your payment and creating your account."}, code: http.StatusAccepted}, nil
	}
	// The full answer (the buyer's name, email and pod) goes only to the paying browser, for a
	// day after payment, or to a session of the account the order landed on. Whoever else holds
	// the session id (it is in a URL) learns the status alone, and is never signed in.
	payer := false
	if ck, err := r.Cookie(CheckoutCookie); err == nil && o.AuthorizedAt != nil && s.now().Sub(*o.AuthorizedAt) < payerWindow {
		if payer, err = postgres.IsCheckoutPayer(ctx, s.Pool, o.ID, ck.Value); err != nil {
			return nil, err
		}
	}
	if !payer {
		if acct := s.signedInAccount(r); acct == nil || acct.ID != *o.AccountID {
			return &VerifyAnswer{Status: &Status{Status: string(o.Status)}}, nil
		}
	}
	acct, err := postgres.GetAccount(ctx, s.Pool, *o.AccountID)
	if err != nil {
		return nil, err
	}
	pod, err := postgres.GetOrderPod(ctx, s.Pool, o.ID)
	if err != nil {
		return nil, err
	}
	// Auto-login only for the paying browser, only into the account this very checkout created
	// (recorded when it was created), still unconfirmed, and only for the success page's own
	// fetch: paying with someone else's email must never open their account, and a link must
	// not sign a browser in (login CSRF). The session is provisional; activation ends it.
	// Returning customers sign in with an emailed link.
	signIn := payer && acct.Status == gpubroker.AccountPending && !navigatedHere(r)
	if signIn {
		var secret string
		var expires time.Time
		err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
			var err error
			secret, expires, signIn, err = postgres.CreateCheckoutSession(ctx, tx, acct.ID, o.ID, s.now())
			return err
		})
		if err != nil {
			return nil, err
		}
		if signIn {
			s.setSessionCookie(c.w, secret, expires)
		}
	}
	// Never the pod's connection or IDE secret, which only its signed-in owner gets.
	pj, err := s.podView(ctx, acct, pod)
	if err != nil {
		return nil, err
	}
	pj.Connection = nil
	return &VerifyAnswer{Verify: &Verify{Account: toAccountJSON(acct), Order: toOrderJSON(o), Pod: pj, SignedIn: signIn}}, nil
}
