package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/postgres"
)

// quote prices an order request as checkout charges it: the catalog's price, without the plan
// fee when a signed-in buyer orders for their own account's email while the fee they paid is
// still running (gpubroker.PlanFeePeriod). It returns the quote and until when the fee is paid
// (zero: it is charged).
func (s *Server) quote(r *http.Request, req gpubroker.OrderRequest) (*gpubroker.Quote, time.Time, error) {
	var feePaidUntil time.Time
	if acct := s.signedInAccount(r); acct != nil && acct.Email == gpubroker.NormalizeEmail(req.Email) {
		until, err := postgres.PlanFeePaidUntil(r.Context(), s.Pool, acct.ID, req.Plan)
		if err != nil {
			return nil, time.Time{}, err
		}
		feePaidUntil = until
	}
	q, err := s.Catalog.QuoteFor(req, feePaidUntil, s.now())
	if err != nil {
		return nil, time.Time{}, err
	}
	if !feePaidUntil.After(s.now()) {
		feePaidUntil = time.Time{}
	}
	return q, feePaidUntil, nil
}

// quoteLineJSON is one line of a quote: unit price × quantity = amount, so the page adds up
// nothing. kind is "plan_fee" or "gpu_hours" (the page words them its own way).
type quoteLineJSON struct {
	Kind            string `json:"kind"`
	Name            string `json:"name"`
	UnitAmountCents int64  `json:"unit_amount_cents"`
	Quantity        int64  `json:"quantity"`
	AmountCents     int64  `json:"amount_cents"`
}

type quoteJSON struct {
	AmountCents int64           `json:"amount_cents"`
	Currency    string          `json:"currency"`
	HourlyCents int64           `json:"hourly_cents"`
	Hours       int             `json:"hours"`
	LineItems   []quoteLineJSON `json:"line_items"`
	// PlanFeeWaivedUntil is set when the plan's fee is not charged because the buyer's is paid
	// until then.
	PlanFeeWaivedUntil *time.Time `json:"plan_fee_waived_until"`
}

// handleQuote answers what POST /api/checkout would charge for the same body, line by line,
// without storing anything: the get-started page shows it instead of pricing by itself.
func (s *Server) handleQuote(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var req gpubroker.OrderRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	q, feePaidUntil, err := s.quote(r, req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := quoteJSON{AmountCents: q.AmountCents, Currency: gpubroker.Currency, HourlyCents: q.HourlyCents, Hours: q.Request.Hours, LineItems: []quoteLineJSON{}}
	if q.Plan.PaymentRequired && q.Plan.FeeCents > 0 && !feePaidUntil.IsZero() {
		out.PlanFeeWaivedUntil = &feePaidUntil
	}
	for i, li := range q.LineItems {
		kind := "gpu_hours"
		if i < len(q.LineItems)-1 {
			kind = "plan_fee" // QuoteFor lists the fee, when charged, before the hours
		}
		out.LineItems = append(out.LineItems, quoteLineJSON{Kind: kind, Name: li.Name, UnitAmountCents: li.UnitAmountCent, Quantity: li.Quantity, AmountCents: li.UnitAmountCent * li.Quantity})
	}
	writeJSON(w, http.StatusOK, out)
}

// handleExtensionQuote answers what POST /api/pods/{id}/extend would charge for ?hours=, with
// its refusals (409 not_running or not_extendable, 422 fields.hours), storing nothing.
func (s *Server) handleExtensionQuote(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	acct := s.account(w, r)
	if acct == nil {
		return
	}
	hours, err := strconv.Atoi(strings.TrimSpace(r.URL.Query().Get("hours")))
	if err != nil {
		writeError(w, r, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "Some fields need attention.", Fields: map[string]string{"hours": "Enter a whole number of hours."}})
		return
	}
	ctx := r.Context()
	pod, err := postgres.GetAccountPod(ctx, s.Pool, acct.ID, ps.ByName("id"))
	if err == nil {
		err = s.checkExtension(ctx, s.Pool, pod, hours)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	cents := extensionCents(pod, hours)
	writeJSON(w, http.StatusOK, map[string]any{"hours": hours, "amount_cents": cents, "currency": pod.Currency, "hourly_cents": pod.HourlyCents})
}
