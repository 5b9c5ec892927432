package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/postgres"
)

// extensionPaid settles an extension's completed Checkout Session. Only a PaymentIntent that
// Stripe shows succeeded, for the amount and currency we computed, extends the pod; then, in
// one transaction, the extension moves pending → paid (guarded: a duplicated or late event
// finds it paid and changes nothing), its payment enters the ledger, the pod's ends_at moves by
// its hours and a terminate job is scheduled for the new end (the one for the old end finds
// the pod extended and leaves it running).
func (w *StripeEventWorker) extensionPaid(ctx context.Context, x *postgres.Extension, s *gpubroker.CheckoutSession) error {
	d := w.d
	if x.Status != postgres.ExtensionPending {
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
		ok, err := postgres.PayExtension(ctx, tx, x.ID, s.ID, pi.ID, now)
		if err != nil || !ok {
			return err
		}
		if err := postgres.RecordPayment(ctx, tx, x.OrderID, postgres.PaymentExtension, pi.ID, x.AmountCents, x.Hours, x.Currency, now); err != nil {
			return err
		}
		if pod.Status != gpubroker.PodRunning || pod.EndsAt == nil {
			// Paid after the pod stopped: nothing runs longer, so the payment goes back in full,
			// planned in the ledger and queued in this transaction.
			d.Logger.WarnContext(ctx, "extension paid after its pod stopped; refunding it", "extension_id", x.ID, "pod_id", pod.ID, "status", pod.Status)
			if err := postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: deref(pod.AccountID), OrderID: pod.OrderID, PodID: pod.ID, Action: "pod.extension_paid_late",
				Detail: map[string]any{"extension": x.ID, "payment_intent": pi.ID, "amount_cents": x.AmountCents}}); err != nil {
				return err
			}
			paymentID, err := postgres.PaymentIDByIntent(ctx, tx, pi.ID)
			if err != nil {
				return err
			}
			if err := postgres.PlanRefunds(ctx, tx, pod.ID, postgres.RefundLateExtension, []gpubroker.RefundShare{{PaymentID: paymentID, AmountCents: x.AmountCents}}); err != nil {
				return err
			}
			_, err = client(ctx).InsertTx(ctx, tx, UnusedHoursRefundArgs{PodID: pod.ID, Reason: postgres.RefundLateExtension, StoppedAt: now}, nil)
			return err
		}
		ends := pod.EndsAt.Add(time.Duration(x.Hours) * time.Hour)
		ok, err = postgres.MovePod(ctx, tx, pod.ID, gpubroker.PodRunning, gpubroker.PodRunning, gpubroker.PodUpdate{EndsAt: &ends})
		if err != nil || !ok {
			return err
		}
		if err := postgres.Audit(ctx, tx, postgres.AuditEvent{AccountID: deref(pod.AccountID), OrderID: pod.OrderID, PodID: pod.ID, Action: "pod.extended",
			Detail: map[string]any{"extension": x.ID, "hours": x.Hours, "amount_cents": x.AmountCents, "payment_intent": pi.ID, "ends_at": ends}}); err != nil {
			return err
		}
		if err := reminderTx(ctx, tx, pod.ID, 1+int(ReminderLead/time.Hour), ends); err != nil { // extended: longer than an hour
			return err
		}
		_, err = client(ctx).InsertTx(ctx, tx, TerminateArgs{PodID: pod.ID, EndsAt: &ends}, &river.InsertOpts{ScheduledAt: ends})
		return err
	})
}
