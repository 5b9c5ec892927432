package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

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

// quoteOrder answers what POST /api/checkout would charge for the same body, line by line,
// without storing anything: the get-started page shows it instead of pricing by itself.
func (s *Server) quoteOrder(ctx context.Context, c *call, req *gpubroker.OrderRequest) (*Quote, error) {
	q, feePaidUntil, err := s.quote(c.r, *req)
	if err != nil {
		return nil, err
	}
	out := &Quote{AmountCents: q.AmountCents, Currency: gpubroker.Currency, HourlyCents: q.HourlyCents, Hours: q.Request.Hours, LineItems: []QuoteLine{}}
	if q.Plan.PaymentRequired && q.Plan.FeeCents > 0 && !feePaidUntil.IsZero() {
		out.PlanFeeWaivedUntil = &feePaidUntil
	}
	for i, li := range q.LineItems {
		kind := "gpu_hours"
		if i < len(q.LineItems)-1 {
			kind = "plan_fee" // QuoteFor lists the fee, when charged, before the hours
		}
		out.LineItems = append(out.LineItems, QuoteLine{Kind: kind, Name: li.Name, UnitAmountCents: li.UnitAmountCent, Quantity: li.Quantity, AmountCents: li.UnitAmountCent * li.Quantity})
	}
	return out, nil
}

// extensionQuote answers what POST /api/pods/{id}/extend would charge for ?hours=, with its
// refusals (409 not_running or not_extendable, 422 fields.hours), storing nothing.
func (s *Server) extensionQuote(ctx context.Context, c *call, _ *noBody) (*ExtensionQuote, error) {
	hours, err := strconv.Atoi(strings.TrimSpace(c.r.URL.Query().Get("hours")))
	if err != nil {
		return nil, &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "Some fields need attention.", Fields: map[string]string{"hours": "Enter a whole number of hours."}}
	}
	pod, err := postgres.GetAccountPod(ctx, s.Pool, c.account.ID, c.param("id"))
	if err != nil {
		return nil, err
	}
	if err := s.checkExtension(ctx, s.Pool, pod, hours); err != nil {
		return nil, err
	}
	return &ExtensionQuote{Hours: hours, AmountCents: extensionCents(pod, hours), Currency: pod.Currency, HourlyCents: pod.HourlyCents}, nil
}
