package api

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/postgres"
)

// receipts are the account's payments as GET /api/me lists them, newest first: one per
// captured payment (an order's capture, each paid extension), each linking to Stripe's
// receipt through handleReceipt.
func (s *Server) receipts(r *http.Request, accountID string) ([]Receipt, error) {
	list, err := postgres.ListAccountReceipts(r.Context(), s.Pool, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]Receipt, 0, len(list))
	for _, x := range list {
		out = append(out, Receipt{
			ID: x.ID, PodID: x.PodID, Kind: string(x.Kind), Description: s.receiptDescription(x),
			AmountCents: x.AmountCents, RefundedCents: x.RefundedCents, Currency: x.Currency, PaidAt: x.PaidAt.UTC(),
			ReceiptURL: "/api/me/receipts/" + url.PathEscape(x.ID),
		})
	}
	return out, nil
}

// receiptDescription says what a payment bought, in the words of the site and the Stripe
// line items: "Pro plan (30 days) + 3 hours of NVIDIA A100 80GB in US East" for an order
// (without the plan when its fee was not charged), "1 more hour of … in US East" for an
// extension.
func (s *Server) receiptDescription(x postgres.Receipt) string {
	gpuName := x.GPU
	if g, ok := s.Catalog.GPUType(x.GPU); ok {
		gpuName = g.DisplayName
	}
	n, unit := strconv.Itoa(x.Hours), "hours"
	if x.Hours == 1 {
		unit = "hour"
	}
	what := gpuName + " in " + s.Catalog.RegionName(x.Region)
	if x.Kind == gpubroker.PaymentExtension {
		d := n + " more " + unit + " of " + what
		switch x.Refused {
		case gpubroker.RefundLateExtension:
			d += ": not added, the pod had already stopped (refunded in full)"
		case gpubroker.RefundOverLimit:
			most := "most"
			if p, ok := s.Catalog.Plan(x.Plan); ok && p.MaxHours > 0 {
				most = strconv.Itoa(p.MaxHours)
			}
			d += ": not added, past the " + planName(s.Catalog, x.Plan) + " plan's " + most + " hours (refunded in full)"
		}
		return d
	}
	d := n + " " + unit + " of " + what
	if fee := x.AmountCents - int64(x.Hours)*x.HourlyCents; fee > 0 {
		name := x.Plan + " plan"
		if p, ok := s.Catalog.Plan(x.Plan); ok {
			name = gpubroker.PlanFeeLine(p)
		}
		d = name + " + " + d
	}
	return d
}

func planName(c *gpubroker.Catalog, id string) string {
	if p, ok := c.Plan(id); ok {
		return p.Name
	}
	return id
}

// handleReceipt is GET /api/me/receipts/{payment id}: 303 to Stripe's receipt for the
// payment's charge (kept up to date by Stripe with its refunds). Only the payment's owner gets
// it; any other payment is 404.
func (s *Server) handleReceipt(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	acct := s.account(w, r)
	if acct == nil {
		return
	}
	// Each answer asks Stripe: a person opens a few receipts, a loop would spend our Stripe
	// rate limit.
	if !s.limit(w, r, "receipt:account:"+acct.ID, 60, 10*time.Minute) {
		return
	}
	piID, err := postgres.AccountPaymentIntent(r.Context(), s.Pool, acct.ID, ps.ByName("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	pi, err := s.Payments.GetPaymentIntent(r.Context(), piID)
	if err != nil && gpubroker.ErrorCode(err) != gpubroker.ENOTFOUND {
		logger(r).ErrorContext(r.Context(), "error fetching the payment intent of a receipt", "payment_intent", piID, "error", err)
		writeError(w, r, &gpubroker.Error{Code: gpubroker.EUNAVAILABLE, Reason: "payments_unavailable", Message: "We could not reach our payment processor. Please try again."})
		return
	}
	var u *url.URL
	if pi != nil && pi.ReceiptURL != "" {
		u, _ = url.Parse(pi.ReceiptURL)
	}
	if u == nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		writeError(w, r, gpubroker.Errorf(gpubroker.ENOTFOUND, "receipt_unavailable", "Stripe has no receipt for this payment."))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}
