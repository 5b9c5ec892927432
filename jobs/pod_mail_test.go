package jobs

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/billing/stripesim"
	"gpubroker/mail"
)

// emailText is the plain-text body of the email queued under dedupe key key.
func (b *testBundle) emailText(t *testing.T, key string) string {
	t.Helper()
	var text string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT text_body FROM emails WHERE dedupe_key = $1`, key).Scan(&text))
	return text
}

// Issue 25 item 2: after an extension the pod's emails say what the dashboard says (hours_total,
// paid_cents: the order's and its paid extensions'), not the order's own numbers; the dead pod's
// refund email counts minutes and names the plan fee only when the order paid one.
//
// 2 hours of an A100 at $1.79 on Pro ($49 + 2 × $1.79 = $52.58), extended by 1 hour ($1.79): 3
// hours, $54.37 paid. It dies 10 minutes in: 170 of 180 minutes unused, 170 × 179 / 60 → $5.07.
func TestPodEmailsSayTheExtendedTotals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, fee := range []bool{true, false} {
		b := setup(t)
		email := "totals-fee@example.com"
		if !fee {
			email = "totals-nofee@example.com"
		}
		orderID, podID, _ := b.running(t, email)
		if !fee { // a Pro order within the fee's 30 days pays the hours alone
			_, err := b.pool.Exec(ctx, `UPDATE orders SET amount_cents = hours * hourly_cents WHERE id = $1`, orderID)
			require.NoError(t, err)
			_, err = b.pool.Exec(ctx, `UPDATE payments SET amount_cents = 358 WHERE order_id = $1`, orderID)
			require.NoError(t, err)
		}
		sess := b.openExtension(t, podID, 1)
		_, err := b.stripe.Pay(ctx, sess, stripesim.CardSucceeds)
		require.NoError(t, err)
		b.sessionCompleted(t, sess)
		pod := b.pod(t, podID)
		require.Equal(t, 3, pod.HoursTotal)
		paid := "$54.37"
		if !fee {
			paid = "$5.37"
		}
		require.Equal(t, paid, mail.Money(pod.PaidCents))

		// The reminder an hour before the end.
		work(t, b, &PodEndingWorker{d: b.deps}, PodEndingArgs{PodID: podID, EndsAt: *pod.EndsAt})
		ending := b.emailText(t, "pod_ending:"+podID+":"+strconv.FormatInt(pod.EndsAt.Unix(), 10))
		require.Contains(t, ending, "Hours:      3\n", "the reminder: the hours bought, extension included")
		require.Contains(t, ending, "Amount:     "+paid+"\n", "the reminder: what was paid")

		// Dead at its provider: two dead checks.
		require.True(t, b.sim.Fail(*pod.InstanceID, "the host failed"))
		w := &PodHealthWorker{d: b.deps}
		work(t, b, w, PodHealthArgs{})
		work(t, b, w, PodHealthArgs{})
		require.Equal(t, gpubroker.PodFailed, b.pod(t, podID).Status)
		ended := b.emailText(t, "pod_terminated:"+podID)
		require.Contains(t, ended, "Hours:      3\n", "the end email: the hours bought, extension included")
		require.Contains(t, ended, "Amount:     "+paid+"\n", "the end email: what was paid")
		require.Contains(t, ended, "every paid minute it did not use is refunded")
		require.NotContains(t, ended, "plan fee")

		work(t, b, &UnusedHoursRefundWorker{d: b.deps}, UnusedHoursRefundArgs{PodID: podID, Reason: gpubroker.RefundPodDied, StoppedAt: pod.StartedAt.Add(10 * time.Minute)})
		refund := b.emailText(t, "pod_died_refund:"+podID)
		require.Contains(t, refund, "Your pod stopped working after 10 minutes of the 180 minutes you paid for, so we refunded the 170 minutes it did not use at $1.79 an hour, rounded down to the cent: $5.07.")
		require.NotContains(t, refund, " hours you paid for")
		require.Contains(t, refund, "Hours:      3\n")
		require.Contains(t, refund, "Amount:     $5.07\n", "the refund email's amount is the refund")
		if fee {
			require.Contains(t, refund, "The plan fee is not refunded.")
		} else {
			require.NotContains(t, refund, "plan fee", "no fee was paid")
		}
	}
}
