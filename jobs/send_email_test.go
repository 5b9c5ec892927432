package jobs

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/lifecycle"
	"gpubroker/mail"
	"gpubroker/mail/ses"
	"gpubroker/mail/ses/sesfake"
	"gpubroker/postgres"
)

// sesBundle is the jobs' world with the real SES sender in front of the SES stand-in.
func sesBundle(t *testing.T) (*testBundle, *sesfake.SES) {
	t.Helper()
	b := setup(t)
	fake := &sesfake.SES{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := sesv2.New(sesv2.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
	b.deps.Sender = ses.New(client, ses.Options{From: "GPU Broker <no-reply@mail.gpubroker.example>", MaxRate: 1000})
	return b, fake
}

// queueEmail stores an email of kind for to in the outbox (its send job too) and returns its id.
func (b *testBundle) queueEmail(t *testing.T, kind, to string) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	require.NoError(t, postgres.Tx(ctx, b.pool, func(tx pgx.Tx) error {
		if err := lifecycle.QueueEmailTx(ctx, tx, b.inserter, kind, to, "", mail.Data{Name: "Ada", Link: "https://gpubroker.example/activate/?token=abc", ExpiresIn: "24 hours"}); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT max(id) FROM emails`).Scan(&id)
	}))
	return id
}

func (b *testBundle) email(t *testing.T, id int64) *postgres.Email {
	t.Helper()
	e, err := postgres.GetEmail(context.Background(), b.pool, id)
	require.NoError(t, err)
	return e
}

// An SES account in the sandbox refuses recipients that are not verified (issue 21.5). The
// activation email is not dropped: the job comes back later, again and again, each wait longer
// than the last (snoozed, so River's attempts are not used up), and the first refusal is
// audited (email.sandbox_rejected, which ops/alerts.yml pages on), once per email. Once the
// address is verified, or the account has production access, the next try delivers it.
func TestSendEmailSandboxRejectionIsRetried(t *testing.T) {
	t.Parallel()
	b, fake := sesBundle(t)
	fake.SetSandbox(true)
	w := &SendEmailWorker{d: b.deps}
	id := b.queueEmail(t, gpubroker.MailActivation, "new@example.com")

	var waits []time.Duration
	for range 3 {
		before := time.Now()
		res := work(t, b, w, SendEmailArgs{EmailID: id})
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind, "a sandbox rejection comes back later")
		waits = append(waits, res.Job.ScheduledAt.Sub(before))
		e := b.email(t, id)
		require.Equal(t, gpubroker.EmailPending, e.Status)
		require.Contains(t, *e.Error, "Email address is not verified")
	}
	require.Greater(t, waits[0], 30*time.Second, "not at once: SES will say the same")
	require.Greater(t, waits[1], waits[0])
	require.Greater(t, waits[2], waits[1])
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM audit_events WHERE action = 'email.sandbox_rejected'`), "audited once, on the first refusal")
	var detail map[string]any
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT detail FROM audit_events WHERE action = 'email.sandbox_rejected'`).Scan(&detail))
	require.EqualValues(t, id, detail["email_id"])
	require.Equal(t, "activation", detail["kind"])

	fake.Verify("new@example.com")
	res := work(t, b, w, SendEmailArgs{EmailID: id})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Equal(t, gpubroker.EmailStatus("sent"), b.email(t, id).Status)
	require.Len(t, fake.SentTo("new@example.com"), 4)
}

// An email still refused once its link has expired is given up: marked failed with SES's
// answer, which the order's story in the ops console shows (24 hours for an activation email,
// as long as its link works; 30 minutes for a sign-in link).
func TestSendEmailSandboxRejectionGivesUp(t *testing.T) {
	t.Parallel()
	b, fake := sesBundle(t)
	fake.SetSandbox(true)
	w := &SendEmailWorker{d: b.deps}
	ctx := context.Background()

	for _, tc := range []struct {
		kind      string
		age, left time.Duration // how old the email is (tried 10 times); how long it is still tried
	}{
		{gpubroker.MailActivation, 23 * time.Hour, time.Hour},
		{gpubroker.MailActivation, 24*time.Hour + time.Minute, 0},
		{gpubroker.MailLogin, 20 * time.Minute, 10 * time.Minute},
		{gpubroker.MailLogin, 31 * time.Minute, 0},
	} {
		id := b.queueEmail(t, tc.kind, tc.kind+"@example.com")
		_, err := b.pool.Exec(ctx, `UPDATE emails SET created_at = now() - $2::interval, attempts = 10 WHERE id = $1`, id, tc.age.String())
		require.NoError(t, err)
		before := time.Now()
		res := work(t, b, w, SendEmailArgs{EmailID: id})
		e := b.email(t, id)
		if tc.left == 0 {
			require.Equal(t, river.EventKindJobCompleted, res.EventKind, "%s after %s: given up", tc.kind, tc.age)
			require.Equal(t, gpubroker.EmailFailed, e.Status)
			require.Contains(t, *e.Error, "Email address is not verified")
			require.Contains(t, *e.Error, "SES sandbox")
			continue
		}
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind, "%s after %s: tried again", tc.kind, tc.age)
		require.Equal(t, gpubroker.EmailPending, e.Status)
		require.LessOrEqual(t, res.Job.ScheduledAt.Sub(before), tc.left+time.Minute, "never waits past the link's life")
	}
}
