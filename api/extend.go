package api

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"gpubroker"
	"gpubroker/postgres"
)

// extend sells more hours on a running pod: hours × the pod's hourly rate (no plan fee),
// paid at once through its own Checkout Session (automatic capture). The extension is stored
// pending, under the pod's lock, before Stripe is asked; the webhook job moves the pod's end
// once the payment has succeeded. The total may not pass the plan's max_hours, counting the
// hours in extension checkouts still open: two open checkouts could otherwise both be paid past
// it (the webhook job then refunds the second in full, which this keeps rare). The checkout's
// success URL is /dashboard/?extended=<pod>&hours=<n>&ends=<unix seconds>, ends the pod's end
// once this extension is paid: the dashboard says it is being applied until the pod shows it.
func (s *Server) extend(ctx context.Context, c *call, req *ExtendRequest) (*Extension, error) {
	acct := c.account
	var x *postgres.Extension
	var email, gpu string
	var back string // what the dashboard reads on return: the pod, the hours, the end once paid
	err := postgres.Tx(ctx, s.Pool, func(tx pgx.Tx) error {
		pod, err := lockOwnPod(ctx, tx, acct.ID, c.param("id"))
		if err != nil {
			return err
		}
		if err := s.checkExtension(ctx, tx, pod, req.Hours); err != nil {
			return err
		}
		o, err := postgres.GetOrder(ctx, tx, pod.OrderID)
		if err != nil {
			return err
		}
		email, gpu = o.Email, pod.GPU
		x, err = postgres.CreateExtension(ctx, tx, pod.ID, pod.OrderID, req.Hours, extensionCents(pod, req.Hours), pod.Currency)
		if err != nil {
			return err
		}
		back = "extended=" + url.QueryEscape(pod.ID) + "&hours=" + strconv.Itoa(req.Hours)
		if pod.EndsAt != nil {
			back += "&ends=" + strconv.FormatInt(pod.EndsAt.Add(s.Clock.Hours(req.Hours)).Unix(), 10)
		}
		return postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: acct.ID, OrderID: pod.OrderID, PodID: pod.ID, Action: gpubroker.ActionPodExtensionRequested,
			Detail: map[string]any{"extension": x.ID, "hours": x.Hours, "amount_cents": x.AmountCents}})
	})
	if err != nil {
		return nil, err
	}
	sess, err := s.Payments.CreateCheckout(ctx, gpubroker.CheckoutParams{
		OrderID:          x.OrderID,
		ExtensionID:      x.ID,
		Email:            email,
		LineItems:        []gpubroker.LineItem{{Name: s.extensionLine(gpu), UnitAmountCent: x.AmountCents / int64(x.Hours), Quantity: int64(x.Hours)}},
		Currency:         x.Currency,
		SuccessURL:       s.PublicURL + "/dashboard/?" + back,
		CancelURL:        s.PublicURL + "/dashboard/",
		ExpiresAt:        s.now().Add(gpubroker.CheckoutLifetime),
		IdempotencyKey:   "checkout-extension-" + x.ID,
		AutomaticCapture: true,
	})
	if err != nil {
		logger(c.r).ErrorContext(ctx, "error creating extension checkout session", "extension_id", x.ID, "error", err)
		return nil, errPaymentsUnavailable
	}
	if err := postgres.SetExtensionSession(ctx, s.Pool, x.ID, sess.ID); err != nil {
		return nil, err
	}
	return &Extension{CheckoutURL: sess.URL, AmountCents: x.AmountCents, Currency: x.Currency, ExtensionID: x.ID}, nil
}

// extensionLine is the name of an extension's Stripe line item: one unit, one more hour of the
// pod's GPU ("A100 80GB: 1 more hour"); its quantity is the hours bought, its unit amount the
// hourly rate, so Checkout shows "A100 80GB: 1 more hour × 2".
func (s *Server) extensionLine(gpu string) string {
	if g, ok := s.Catalog.GPUType(gpu); ok && g.DisplayName != "" {
		gpu = g.DisplayName
	}
	return gpu + ": 1 more hour"
}

// extensionCents is the price of hours more on a pod: its hourly rate, no plan fee.
func extensionCents(pod *gpubroker.Pod, hours int) int64 { return int64(hours) * pod.HourlyCents }

// extensionRoom is how many hours more the pod's plan allows now (limited false: no limit),
// counting the paid extensions and those in checkouts that may still be paid, and the hours
// already bought (paid extensions included).
func (s *Server) extensionRoom(ctx context.Context, q postgres.Querier, pod *gpubroker.Pod) (room int, limited bool, extra, open int, err error) {
	plan, _ := s.Catalog.Plan(pod.Plan)
	if extra, err = postgres.PaidExtensionHours(ctx, q, pod.ID); err != nil {
		return 0, false, 0, 0, err
	}
	if open, err = postgres.OpenExtensionHours(ctx, q, pod.ID, s.now()); err != nil {
		return 0, false, 0, 0, err
	}
	if plan.MaxHours <= 0 {
		return 0, false, extra, open, nil
	}
	return max(0, plan.MaxHours-pod.Hours-extra-open), true, extra, open, nil
}

// checkExtension refuses hours more on a pod as POST /api/pods/{id}/extend does: a pod that is
// not running or not paid (409), fewer than one hour or past the plan's max_hours (422). The
// quote of an extension runs the same checks.
func (s *Server) checkExtension(ctx context.Context, q postgres.Querier, pod *gpubroker.Pod, hours int) error {
	if pod.Status != gpubroker.PodRunning {
		return gpubroker.Errorf(gpubroker.ECONFLICT, "not_running", "Only a running pod can be extended.")
	}
	if pod.OrderStatus != gpubroker.OrderCaptured || pod.HourlyCents <= 0 {
		return gpubroker.Errorf(gpubroker.ECONFLICT, "not_extendable", "A free pod cannot be extended.")
	}
	if hours < 1 {
		return &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "Some fields need attention.", Fields: map[string]string{"hours": "Extend by at least one hour."}}
	}
	room, limited, extra, open, err := s.extensionRoom(ctx, q, pod)
	if err != nil || !limited || hours <= room {
		return err
	}
	plan, _ := s.Catalog.Plan(pod.Plan)
	msg := "The " + plan.Name + " plan allows at most " + strconv.Itoa(plan.MaxHours) + " hours per pod; this one has " + strconv.Itoa(pod.Hours+extra)
	if open > 0 {
		msg += ", and " + strconv.Itoa(open) + " more in a checkout not yet paid (it expires within " +
			strconv.Itoa(int(gpubroker.CheckoutLifetime/time.Minute)) + " minutes)"
	}
	return &gpubroker.Error{Code: gpubroker.EINVALID, Reason: "invalid_fields", Message: "Some fields need attention.", Fields: map[string]string{"hours": msg + "."}}
}
