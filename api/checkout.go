package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/jobs"
	"gpubroker/postgres"
)

// handleCatalog serves the catalog the API prices from (the same files Hugo renders).
func (s *Server) handleCatalog(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_ = json.NewEncoder(w).Encode(s.Catalog)
}

// handleCheckout validates and prices an order, stores it with its pod, and creates the Stripe
// Checkout Session (paid plans) or enqueues the account (free trial).
func (s *Server) handleCheckout(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var req gpubroker.OrderRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	if !s.limit(w, r, "checkout:ip:"+s.clientIP(r), 20, 10*time.Minute) {
		return
	}
	q, err := s.Catalog.Quote(req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !s.limit(w, r, "checkout:email:"+q.Request.Email, 10, 10*time.Minute) {
		return
	}
	ctx := r.Context()
	if !q.Plan.PaymentRequired {
		var order *gpubroker.Order
		err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
			var err error
			if order, _, err = postgres.CreateOrder(ctx, tx, q); err != nil {
				return err
			}
			_, err = s.Jobs.InsertTx(ctx, tx, jobs.CreateAccountArgs{OrderID: order.ID}, nil)
			return err
		})
		if err != nil {
			writeError(w, r, unavailable(err))
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"order_id": order.ID, "checkout_url": nil, "next": "check_email", "amount_cents": 0, "currency": gpubroker.Currency})
		return
	}
	var order *gpubroker.Order
	err = postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		order, _, err = postgres.CreateOrder(ctx, tx, q)
		return err
	})
	if err != nil {
		writeError(w, r, unavailable(err))
		return
	}
	sess, err := s.Payments.CreateCheckout(ctx, gpubroker.CheckoutParams{
		OrderID:        order.ID,
		Email:          order.Email,
		LineItems:      q.LineItems,
		Currency:       gpubroker.Currency,
		SuccessURL:     s.PublicURL + "/payment/success/?session_id={CHECKOUT_SESSION_ID}",
		CancelURL:      s.PublicURL + "/payment/cancel/?order_id=" + order.ID,
		ExpiresAt:      s.now().Add(30 * time.Minute),
		IdempotencyKey: "checkout-" + order.ID,
	})
	if err != nil {
		logger(r).ErrorContext(ctx, "error creating checkout session", "order_id", order.ID, "error", err)
		writeError(w, r, &gpubroker.Error{Code: gpubroker.EUNAVAILABLE, Reason: "payments_unavailable", Message: "We could not reach our payment processor. Please try again."})
		return
	}
	if err := postgres.SetCheckoutSession(ctx, s.Pool, order.ID, sess.ID); err != nil {
		writeError(w, r, unavailable(err))
		return
	}
	logger(r).InfoContext(ctx, "checkout started", "order_id", order.ID, "session_id", sess.ID, "amount_cents", q.AmountCents)
	writeJSON(w, http.StatusCreated, map[string]any{"order_id": order.ID, "checkout_url": sess.URL, "amount_cents": q.AmountCents, "currency": gpubroker.Currency})
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
	// The event and its job in one statement: one round trip, one commit.
	inserted, err := postgres.InsertStripeEvent(ctx, s.Pool, ev, jobs.StripeEventArgs{EventID: ev.ID})
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

// handleVerify is polled by the success page: 202 until the account exists, then 200 with a
// session cookie, so the buyer is signed in without a password.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ctx := r.Context()
	sid := r.URL.Query().Get("session_id")
	if sid == "" {
		writeError(w, r, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "session_id is required.", Fields: map[string]string{"session_id": "required"}})
		return
	}
	o, err := postgres.GetOrderBySession(ctx, s.Pool, sid)
	if err != nil {
		writeError(w, r, unavailable(err))
		return
	}
	switch {
	case o.Status == gpubroker.OrderExpired:
		writeError(w, r, gpubroker.Errorf(gpubroker.EGONE, "expired", "This checkout expired before it was paid. Start again from the get-started page."))
		return
	case o.AccountID == nil && (o.Status == gpubroker.OrderReleased || o.Status == gpubroker.OrderDeclined):
		writeError(w, r, gpubroker.Errorf(gpubroker.EGONE, "released", "This payment was cancelled before it completed, so nothing was charged. Start again from the get-started page."))
		return
	case o.AccountID == nil:
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "pending", "message": "We are confirming your payment and creating your account."})
		return
	}
	acct, err := postgres.GetAccount(ctx, s.Pool, *o.AccountID)
	if err != nil {
		writeError(w, r, unavailable(err))
		return
	}
	pod, err := postgres.GetOrderPod(ctx, s.Pool, o.ID)
	if err != nil {
		writeError(w, r, unavailable(err))
		return
	}
	// Auto-login only into an account this very checkout created, still unconfirmed, within a
	// day: paying with someone else's email must never open their account. Returning customers
	// sign in with an emailed link; activation ends sessions opened before it.
	signIn := acct.Status == gpubroker.AccountPending && o.AuthorizedAt != nil && s.now().Sub(*o.AuthorizedAt) < 24*time.Hour
	if signIn {
		first, err := postgres.FirstOrderID(ctx, s.Pool, acct.ID)
		if err != nil {
			writeError(w, r, unavailable(err))
			return
		}
		signIn = first == o.ID
	}
	if signIn {
		if err := s.startSession(w, r, acct.ID); err != nil {
			writeError(w, r, unavailable(err))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"account": acct, "order": o, "pod": pod, "signed_in": signIn})
}
