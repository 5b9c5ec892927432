package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/postgres"
	"gpubroker/tasks"
)

// StripeEventArgs is tasks.StripeEventArgs: the workers' name for it.
type StripeEventArgs = tasks.StripeEventArgs

// StripeEventWorker acts on a webhook event. It never trusts the event's copy of an object or
// the order events arrive in: it fetches the Session and PaymentIntent from Stripe and moves
// the order only forward, so duplicates and reorders change nothing.
type StripeEventWorker struct {
	river.WorkerDefaults[StripeEventArgs]
	d *Deps
}

// Work implements river.Worker.
func (w *StripeEventWorker) Work(ctx context.Context, job *river.Job[StripeEventArgs]) error {
	d := w.d
	ev, err := postgres.GetStripeEvent(ctx, d.Pool, job.Args.EventID)
	if err != nil {
		return err
	}
	log := d.Logger.With("event_id", ev.ID, "event_type", ev.Type)
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded":
		err = w.sessionCompleted(ctx, job, ev)
	case "checkout.session.expired":
		err = w.sessionExpired(ctx, ev)
	case "payment_intent.canceled":
		err = w.paymentCanceled(ctx, ev)
	default:
		log.InfoContext(ctx, "stripe event ignored")
	}
	if err != nil {
		return err
	}
	return postgres.MarkStripeEventProcessed(ctx, d.Pool, ev.ID, d.now())
}

// orderOfSession finds our order of a Checkout Session: by session id, else by the session's
// client_reference_id. A session of another integration on the same Stripe account (a
// reference that is none of our ids, not even a uuid) is ENOTFOUND, so the caller logs it as
// not ours and completes instead of retrying.
func (w *StripeEventWorker) orderOfSession(ctx context.Context, s *gpubroker.CheckoutSession) (*gpubroker.Order, error) {
	o, err := postgres.GetOrderBySession(ctx, w.d.Pool, s.ID)
	if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND && s.ClientReferenceID != "" {
		o, err = postgres.GetOrder(ctx, w.d.Pool, s.ClientReferenceID)
	}
	return o, err
}

func (w *StripeEventWorker) sessionCompleted(ctx context.Context, job *river.Job[StripeEventArgs], ev *gpubroker.WebhookEvent) error {
	d := w.d
	s, err := d.Payments.GetCheckout(ctx, ev.ObjectID)
	if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND {
		return w.notOurs(ctx, ev, err)
	}
	if err != nil {
		return fmt.Errorf("error fetching checkout session: %w", err)
	}
	if x, err := postgres.ExtensionOfSession(ctx, d.Pool, s.ID, s.ClientReferenceID); err == nil {
		return w.extensionPaid(ctx, x, s)
	} else if gpubroker.ErrorCode(err) != gpubroker.ENOTFOUND {
		return err
	}
	o, err := w.orderOfSession(ctx, s)
	if err != nil {
		if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND {
			d.Logger.WarnContext(ctx, "checkout session of no order of ours", "session_id", s.ID)
			return nil
		}
		return err
	}
	if o.Status != gpubroker.OrderCheckoutPending {
		return nil // already settled by another event
	}
	if s.PaymentIntentID == "" {
		return fmt.Errorf("checkout session %s completed without a payment intent", s.ID)
	}
	pi, err := d.Payments.GetPaymentIntent(ctx, s.PaymentIntentID)
	if err != nil {
		return fmt.Errorf("error fetching payment intent: %w", err)
	}
	if pi.Amount != o.AmountCents || pi.Currency != o.Currency {
		// Never authorize an order for an amount we did not compute; release the card at once.
		if pi.Status == gpubroker.PIRequiresCapture {
			// Just fetched as requires_capture, so an earlier cancel did not take effect: a
			// retry may use a new key (a stored 500 under the first would be replayed).
			if _, err := d.Payments.Cancel(ctx, pi.ID, "fraudulent", gpubroker.RetryKey("mismatch-"+pi.ID, job.ID, job.Attempt)); err != nil && !errors.Is(err, gpubroker.ErrPaymentState) {
				return err
			}
		}
		return river.JobCancel(fmt.Errorf("payment intent %s is for %d %s, order %s is for %d %s", pi.ID, pi.Amount, pi.Currency, o.ID, o.AmountCents, o.Currency))
	}
	switch pi.Status {
	case gpubroker.PIRequiresCapture:
		return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
			o, err := postgres.GetOrderForUpdate(ctx, tx, o.ID)
			if err != nil {
				return err
			}
			// The hold's deadline is Stripe's (capture_before), not our processing time.
			// The hold lapses at Stripe's capture_before, or CardHoldLifetime after the
			// authorization (not after now: this job may run late).
			authorizedAt := pi.AuthorizedAt
			if authorizedAt.IsZero() {
				authorizedAt = d.now()
			}
			ok, err := lifecycle.AuthorizeOrder(ctx, tx, o, s.ID, pi.ID, d.now(), gpubroker.HoldDeadline(authorizedAt, pi.CaptureBefore),
				map[string]any{"payment_intent": pi.ID, "amount_cents": pi.Amount, "capture_before": pi.CaptureBefore})
			if err != nil || !ok {
				return err
			}
			o, err = postgres.GetOrder(ctx, tx, o.ID)
			if err != nil {
				return err
			}
			return attachAccount(ctx, tx, client(ctx), d, o)
		})
	case gpubroker.PICanceled:
		return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
			_, err := lifecycle.MoveOrder(ctx, tx, o, "", gpubroker.OrderCheckoutPending, gpubroker.OrderReleased, d.now(), map[string]any{"reason": "hold canceled before the session was processed"})
			return err
		})
	case gpubroker.PISucceeded:
		d.Logger.ErrorContext(ctx, "payment captured outside GPU Broker; needs a human", "order_id", o.ID, "payment_intent", pi.ID)
		return nil
	default:
		// requires_payment_method, processing…: not authorized yet; look again later.
		return fmt.Errorf("payment intent %s is %s, not requires_capture", pi.ID, pi.Status)
	}
}

func (w *StripeEventWorker) sessionExpired(ctx context.Context, ev *gpubroker.WebhookEvent) error {
	d := w.d
	s, err := d.Payments.GetCheckout(ctx, ev.ObjectID)
	if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND {
		return w.notOurs(ctx, ev, err)
	}
	if err != nil {
		return fmt.Errorf("error fetching checkout session: %w", err)
	}
	if s.Status != gpubroker.SessionExpired {
		return nil
	}
	if x, err := postgres.ExtensionOfSession(ctx, d.Pool, s.ID, s.ClientReferenceID); err == nil {
		// An extension never paid: nothing changes but its status.
		return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
			ok, err := lifecycle.MoveExtension(ctx, tx, x, gpubroker.ExtensionExpired, "", "", d.now())
			if err != nil || !ok {
				return err
			}
			return postgres.Audit(ctx, tx, postgres.AuditEvent{OrderID: x.OrderID, PodID: x.PodID, Action: gpubroker.ActionPodExtensionExpired, Detail: map[string]any{"extension": x.ID}})
		})
	} else if gpubroker.ErrorCode(err) != gpubroker.ENOTFOUND {
		return err
	}
	o, err := w.orderOfSession(ctx, s)
	if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		_, err := lifecycle.MoveOrder(ctx, tx, o, "", gpubroker.OrderCheckoutPending, gpubroker.OrderExpired, d.now(), nil)
		return err
	})
}

// paymentCanceled handles a hold that was cancelled or lapsed at Stripe.
func (w *StripeEventWorker) paymentCanceled(ctx context.Context, ev *gpubroker.WebhookEvent) error {
	d := w.d
	pi, err := d.Payments.GetPaymentIntent(ctx, ev.ObjectID)
	if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND {
		return w.notOurs(ctx, ev, err)
	}
	if err != nil {
		return fmt.Errorf("error fetching payment intent: %w", err)
	}
	if pi.Status != gpubroker.PICanceled {
		return nil
	}
	o, err := postgres.GetOrderByPaymentIntent(ctx, d.Pool, pi.ID)
	if gpubroker.ErrorCode(err) == gpubroker.ENOTFOUND {
		// The completed event has not been processed yet; its job will see the cancelled hold.
		return nil
	} else if err != nil {
		return err
	}
	return releaseOrder(ctx, d, o.ID, "Your card hold was released by your bank or card network before you deployed.")
}

// notOurs completes an event whose own object Stripe answers 404 for (another integration's on
// the same account, or deleted): there is nothing of ours to act on, and retrying for days
// would only fill the River UI.
func (w *StripeEventWorker) notOurs(ctx context.Context, ev *gpubroker.WebhookEvent, err error) error {
	w.d.Logger.WarnContext(ctx, "stripe event for an object Stripe does not know; ignored", "event_id", ev.ID, "event_type", ev.Type, "object_id", ev.ObjectID, "error", err)
	return nil
}

// releaseOrder records a released hold: the order becomes released, its undeployed pod failed,
// and the user is told. It does nothing unless the order is still authorized.
func releaseOrder(ctx context.Context, d *Deps, orderID, reason string) error {
	return postgres.Tx(ctx, d.Pool, func(tx pgx.Tx) error {
		o, err := postgres.GetOrder(ctx, tx, orderID)
		if err != nil {
			return err
		}
		pod, err := postgres.GetOrderPod(ctx, tx, orderID)
		if err != nil {
			return err
		}
		ok, err := lifecycle.MoveOrder(ctx, tx, o, pod.ID, gpubroker.OrderAuthorized, gpubroker.OrderReleased, d.now(), map[string]any{"reason": reason})
		if err != nil || !ok {
			return err
		}
		// A failed pod of an authorized order is one the hold release claimed: its note
		// becomes the outcome too.
		for _, from := range []gpubroker.PodStatus{gpubroker.PodConfigured, gpubroker.PodDeploying, gpubroker.PodFailed} {
			if _, err := lifecycle.MovePod(ctx, tx, pod, from, gpubroker.PodFailed, gpubroker.PodUpdate{Error: gpubroker.Ptr("The card hold was released before deploy; nothing was charged.")}, nil); err != nil {
				return err
			}
		}
		return lifecycle.QueueEmailTx(ctx, tx, client(ctx), gpubroker.MailHoldReleased, o.Email, "hold_released:"+o.ID, mailData(d, o.Name, o.Email, pod, reason))
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
