package jobs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/mail"
	"gpubroker/postgres"
	"gpubroker/site"
)

// A free trial's account job makes the account, attaches the order and its pod, queues one
// activation email and no hold release; a rerun changes nothing.
func TestCreateAccountWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	orderID, podID := b.order(t, "free", "trial@example.com")
	w := &CreateAccountWorker{d: b.deps}

	res := work(t, b, w, CreateAccountArgs{OrderID: orderID})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	acct, err := postgres.GetAccountByEmail(context.Background(), b.pool, "trial@example.com")
	require.NoError(t, err)
	require.Equal(t, gpubroker.AccountPending, acct.Status)
	require.Equal(t, acct.ID, *b.pod(t, podID).AccountID)
	require.Equal(t, []string{"send_email"}, b.enqueued(t), "the activation email, and no hold release for a free order")

	work(t, b, w, CreateAccountArgs{OrderID: orderID})
	require.Equal(t, []string{"send_email"}, b.enqueued(t), "a rerun queues nothing more")
}

// The email job sends an outbox row once; a suppressed address is never sent to; a permanent
// rejection is recorded and not retried; a transient failure is retried.
func TestSendEmailWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	w := &SendEmailWorker{d: b.deps}
	queue := func(to string) int64 {
		var id int64
		require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
			if err := lifecycle.QueueEmailTx(ctx, tx, b.inserter, gpubroker.MailLogin, to, "", mail.Data{Name: "Ada", Link: "https://gpubroker.example/login/?token=abc", ExpiresIn: "30 minutes"}); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `SELECT max(id) FROM emails`).Scan(&id)
		}))
		return id
	}
	status := func(id int64) string {
		var s string
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT status FROM emails WHERE id = $1`, id).Scan(&s))
		return s
	}

	id := queue("ada@example.com")
	work(t, b, w, SendEmailArgs{EmailID: id})
	work(t, b, w, SendEmailArgs{EmailID: id})
	require.Len(t, b.sender.messages(), 1, "sent once however often the job runs")
	require.Equal(t, "sent", status(id))

	_, err := b.pool.Exec(ctx, `INSERT INTO suppressions (email, reason) VALUES ('gone@example.com', 'permanent bounce')`)
	require.NoError(t, err)
	id = queue("gone@example.com")
	work(t, b, w, SendEmailArgs{EmailID: id})
	require.Equal(t, "suppressed", status(id))
	require.Len(t, b.sender.messages(), 1)

	b.sender.err = fmt.Errorf("rejected: %w", gpubroker.ErrPermanent)
	id = queue("bad@example.com")
	res := work(t, b, w, SendEmailArgs{EmailID: id})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind, "a permanent rejection is not retried")
	require.Equal(t, "failed", status(id))

	b.sender.err = errors.New("SES is down")
	id = queue("later@example.com")
	res = work(t, b, w, SendEmailArgs{EmailID: id})
	require.Equal(t, river.EventKindJobFailed, res.EventKind, "a transient failure is retried")
	require.Equal(t, "pending", status(id))
}

// Capture takes the hold once and hands the pod to provisioning in the same transaction; a
// repeated run captures nothing more; a hold released at Stripe fails the pod, charging nothing.
func TestCaptureWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	w := &CaptureWorker{d: b.deps}

	orderID, podID, pi := b.authorized(t, "cap@example.com")
	res := work(t, b, w, CaptureArgs{PodID: podID})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, gpubroker.PodProvisioning, b.pod(t, podID).Status)
	o, err := postgres.GetOrder(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.Equal(t, gpubroker.OrderCaptured, o.Status)
	require.Equal(t, []string{"provision"}, b.enqueued(t))
	require.Equal(t, 1, b.stripe.CaptureCount(pi))
	work(t, b, w, CaptureArgs{PodID: podID})
	require.Equal(t, 1, b.stripe.CaptureCount(pi), "captured once")

	_, podID2, pi2 := b.authorized(t, "released@example.com")
	_, err = b.deps.Payments.Cancel(ctx, pi2, "abandoned", "test-cancel")
	require.NoError(t, err)
	res = work(t, b, w, CaptureArgs{PodID: podID2})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, gpubroker.PodFailed, b.pod(t, podID2).Status)
	require.Equal(t, 0, b.stripe.CaptureCount(pi2))
}

// Provision launches once under the pod's name and snoozes while the GPU boots, then stores
// the connection and schedules the end; terminate ends the instance and the pod.
func TestProvisionThenTerminate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, podID, _ := b.authorized(t, "run@example.com")
	work(t, b, &CaptureWorker{d: b.deps}, CaptureArgs{PodID: podID})

	p := &ProvisionWorker{d: b.deps}
	res := work(t, b, p, ProvisionArgs{PodID: podID})
	require.Equal(t, river.EventKindJobSnoozed, res.EventKind, "launched; waits for the boot without holding a worker")
	require.NotNil(t, b.pod(t, podID).InstanceID)
	res = work(t, b, p, ProvisionArgs{PodID: podID})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	pod := b.pod(t, podID)
	require.Equal(t, gpubroker.PodRunning, pod.Status)
	require.NotNil(t, pod.Connection)
	require.NotNil(t, pod.EndsAt)
	require.Equal(t, 1, b.sim.Launches())
	require.Contains(t, b.enqueued(t), "terminate")

	work(t, b, p, ProvisionArgs{PodID: podID})
	require.Equal(t, 1, b.sim.Launches(), "a late rerun launches nothing")

	res = work(t, b, &TerminateWorker{d: b.deps}, TerminateArgs{PodID: podID})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, gpubroker.PodTerminated, b.pod(t, podID).Status)
	require.Equal(t, 1, b.sim.Terminations())
}

// An event whose own object Stripe does not know (404: another account's, or deleted) is not
// ours to act on: it completes at once with a warning instead of retrying for days.
func TestStripeEventForAnUnknownObject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	for i, ev := range []gpubroker.WebhookEvent{
		{ID: "evt_unknown_1", Type: "checkout.session.completed", ObjectID: "cs_test_nobody"},
		{ID: "evt_unknown_2", Type: "checkout.session.expired", ObjectID: "cs_test_nobody"},
		{ID: "evt_unknown_3", Type: "payment_intent.canceled", ObjectID: "pi_nobody"},
	} {
		ev.Payload = []byte(`{}`)
		_, err := postgres.InsertStripeEvent(ctx, b.pool, &ev, StripeEventArgs{EventID: ev.ID})
		require.NoError(t, err)
		res := work(t, b, &StripeEventWorker{d: b.deps}, StripeEventArgs{EventID: ev.ID})
		require.Equal(t, river.EventKindJobCompleted, res.EventKind, "event %d (%s)", i, ev.Type)
	}
}

// noDeadline is Stripe without capture_before on the charge.
type noDeadline struct{ gpubroker.Payments }

func (p noDeadline) GetPaymentIntent(ctx context.Context, id string) (*gpubroker.PaymentIntent, error) {
	pi, err := p.Payments.GetPaymentIntent(ctx, id)
	if pi != nil {
		pi.CaptureBefore = time.Time{}
	}
	return pi, err
}

// Without Stripe's capture_before, the hold's deadline counts from when the card was
// authorized (the charge's creation), not from when we processed the event: a job that ran
// hours late must not promise the customer hours the card network will not give.
func TestHoldDeadlineWithoutCaptureBeforeCountsFromTheAuthorization(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	orderID, _ := b.order(t, "pro", "late@example.com")
	authorized := time.Now()
	cs := b.paidOrderSession(t, orderID)

	d := *b.deps
	d.Payments = noDeadline{b.deps.Payments}
	d.Now = func() time.Time { return time.Now().Add(5 * time.Hour) } // the event is processed 5 hours later
	ev := gpubroker.WebhookEvent{ID: "evt_late", Type: "checkout.session.completed", ObjectID: cs.ID, ClientReferenceID: orderID, Payload: []byte(`{}`)}
	_, err := postgres.InsertStripeEvent(ctx, b.pool, &ev, StripeEventArgs{EventID: ev.ID})
	require.NoError(t, err)
	res := work(t, b, &StripeEventWorker{d: &d}, StripeEventArgs{EventID: ev.ID})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	o, err := postgres.GetOrder(ctx, b.pool, orderID)
	require.NoError(t, err)
	require.Equal(t, gpubroker.OrderAuthorized, o.Status)
	want := authorized.Add(gpubroker.CardHoldLifetime)
	// Seconds of slack for a stalled machine between Pay and the stand-in's clock; processing
	// five hours later would be five hours off.
	require.WithinDuration(t, want, *o.HoldExpiresAt, time.Minute, "deadline from the authorization, not from processing")
}

// Emails name the region as the site does ("US East"), not by its id.
func TestPodMailNamesTheRegion(t *testing.T) {
	t.Parallel()
	cat, err := site.Catalog()
	require.NoError(t, err)
	m := podMail(&Deps{Catalog: cat}, &gpubroker.Pod{ID: "p1", GPU: "a100", Region: "us-east", Hours: 2, Template: "data-science"})
	require.Equal(t, "US East", m.Region)
	require.Equal(t, "NVIDIA A100 80GB", m.GPU)
}
