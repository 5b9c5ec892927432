package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
)

// extensionPaid settles an extension's completed Checkout Session. Only a PaymentIntent that
// Stripe shows succeeded, for the amount and currency we computed, extends the pod; then, in
// one transaction, the extension moves pending → paid (guarded: a duplicated or late event
// finds it paid and changes nothing), its payment enters the ledger, the pod's ends_at moves by
// its hours and a terminate job is scheduled for the new end (the one for the old end finds
// the pod extended and leaves it running).
//
// A payment that extends nothing is refunded in full on its own payment, planned in the ledger
// and queued in the same transaction: one paid after the pod stopped (late_extension), and one
// that would take the pod past its plan's max_hours (over_limit: the extension becomes
// over_limit). The API refuses a checkout that could pass the limit with those still open, but
// two checkouts can still both be paid (one opened after the other's lifetime, paid late), so
// the limit is checked again here, under the pod's lock, against what is paid.
func (w *StripeEventWorker) extensionPaid(ctx context.Context, x *postgres.Extension, s *gpubroker.CheckoutSession) error {
	d := w.d
	if x.Status != gpubroker.ExtensionPending {
		return nil // settled by an earlier event
	}
	if s.PaymentIntentID == "" {
		return fmt.Errorf("extension checkout session %s completed without a payment intent", s.ID)
	}
	pi, err := d.Payments.GetPaymentIntent(ctx, s.PaymentIntentID)
	if err != nil {
		return fmt.Errorf("error fetching payment intent: %w", err)
	}
	if pi.Amount != x.AmountCents || pi.Currency != x.Currency {
		d.Logger.ErrorContext(ctx, "extension paid for an amount we did not compute; needs a human", "extension_id", x.ID, "payment_intent", pi.ID, "amount", pi.Amount)
		return river.JobCancel(fmt.Errorf("payment intent %s is for %d %s, extension %s is for %d %s", pi.ID, pi.Amount, pi.Currency, x.ID, x.AmountCents, x.Currency))
	}
	if pi.Status != gpubroker.PISucceeded {
		// processing, requires_action…: not paid yet; look again later.
		return fmt.Errorf("extension payment intent %s is %s, not succeeded", pi.ID, pi.Status)
	}
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		pod, err := postgres.LockPod(ctx, tx, x.PodID)
		if err != nil {
			return err
		}
		now := d.now()
		running := pod.Status == gpubroker.PodRunning && pod.EndsAt != nil
		overLimit := false
		if plan, _ := d.Catalog.Plan(pod.Plan); running && plan.MaxHours > 0 {
			paid, err := postgres.PaidExtensionHours(ctx, tx, pod.ID) // not counting this one yet
			if err != nil {
				return err
			}
			overLimit = pod.Hours+paid+x.Hours > plan.MaxHours
		}
		to := gpubroker.ExtensionPaid
		if overLimit {
			to = gpubroker.ExtensionOverLimit
		}
		ok, err := lifecycle.MoveExtension(ctx, tx, x, to, s.ID, pi.ID, now)
		if err != nil || !ok {
			return err
		}
		if err := postgres.RecordPayment(ctx, tx, x.OrderID, gpubroker.PaymentExtension, pi.ID, x.AmountCents, x.Hours, x.Currency, now); err != nil {
			return err
		}
		if !running {
			// Paid after the pod stopped: nothing runs longer, so the payment goes back in full.
			d.Logger.WarnContext(ctx, "extension paid after its pod stopped; refunding it", "extension_id", x.ID, "pod_id", pod.ID, "status", pod.Status)
			return refundExtensionTx(ctx, tx, pod, x, pi.ID, gpubroker.RefundLateExtension, gpubroker.ActionPodExtensionPaidLate, now, nil)
		}
		if overLimit {
			// Another extension was paid first: this one would pass the plan's limit.
			d.Logger.WarnContext(ctx, "extension paid past its plan's max_hours; refunding it", "extension_id", x.ID, "pod_id", pod.ID, "hours", x.Hours)
			return refundExtensionTx(ctx, tx, pod, x, pi.ID, gpubroker.RefundOverLimit, gpubroker.ActionPodExtensionOverLimit, now, map[string]any{"plan": pod.Plan})
		}
		ends := pod.EndsAt.Add(d.Clock.Hours(x.Hours))
		ok, err = lifecycle.MovePod(ctx, tx, pod, gpubroker.PodRunning, gpubroker.PodRunning, gpubroker.PodUpdate{EndsAt: &ends},
			map[string]any{"extension": x.ID, "hours": x.Hours, "amount_cents": x.AmountCents, "payment_intent": pi.ID, "ends_at": ends})
		if err != nil || !ok {
			return err
		}
		if err := reminderTx(ctx, tx, pod.ID, 2, ends, d.Clock); err != nil { // extended: longer than an hour
			return err
		}
		_, err = client(ctx).InsertTx(ctx, tx, TerminateArgs{PodID: pod.ID, EndsAt: &ends}, &river.InsertOpts{ScheduledAt: ends})
		return err
	})
}

// refundExtensionTx plans the full refund of an extension's payment (it extended nothing) and
// queues the job that makes it and emails the customer why, with an audit event, in tx.
func refundExtensionTx(ctx context.Context, tx pgx.Tx, pod *gpubroker.Pod, x *postgres.Extension, piID string, reason gpubroker.RefundReason, action gpubroker.AuditAction, now time.Time, detail map[string]any) error {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["extension"], detail["payment_intent"], detail["amount_cents"], detail["hours"] = x.ID, piID, x.AmountCents, x.Hours
	if err := postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: deref(pod.AccountID), OrderID: pod.OrderID, PodID: pod.ID, Action: action, Detail: detail}); err != nil {
		return err
	}
	paymentID, err := postgres.PaymentIDByIntent(ctx, tx, piID)
	if err != nil {
		return err
	}
	if err := postgres.PlanRefunds(ctx, tx, pod.ID, reason, []gpubroker.RefundShare{{PaymentID: paymentID, AmountCents: x.AmountCents}}); err != nil {
		return err
	}
	_, err = client(ctx).InsertTx(ctx, tx, UnusedHoursRefundArgs{PodID: pod.ID, Reason: reason, StoppedAt: now}, nil)
	return err
}
