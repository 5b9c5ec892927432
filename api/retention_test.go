package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"gpubroker"
	"gpubroker/postgres"
)

// prune runs every retention category to the end, as the hourly job does.
func prune(t *testing.T, pool *pgxpool.Pool, now time.Time) {
	t.Helper()
	for _, c := range postgres.Retention {
		for {
			n, err := c.PruneBatch(context.Background(), pool, now, postgres.RetentionBatch)
			require.NoError(t, err)
			if n < postgres.RetentionBatch {
				break
			}
		}
	}
}

// Issue 24.4: retention keeps a sign-in link's row 30 days after it was used or expired, so
// following it again within those days still answers 410 token_used or token_expired through
// the real router; only a link spent longer ago is forgotten (400 token_invalid).
func TestSpentLinksStillAnswerAfterRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ts := newTestServer(t)
	now := time.Now().UTC()
	var acct string
	require.NoError(t, postgres.Tx(ctx, ts.pool, func(tx pgx.Tx) error {
		a, _, err := postgres.UpsertAccount(ctx, tx, "links@example.com", "Ada", "")
		acct = a.ID
		return err
	}))
	issue := func(at time.Time) string {
		t.Helper()
		var secret string
		require.NoError(t, postgres.Tx(ctx, ts.pool, func(tx pgx.Tx) error {
			var err error
			secret, err = postgres.IssueToken(ctx, tx, acct, gpubroker.TokenLogin, at)
			return err
		}))
		return secret
	}
	follow := func(secret string) (int, string) {
		t.Helper()
		code, body := ts.call("POST", "/api/login/verify", map[string]string{"token": secret}, "")
		reason, _ := body["error"].(string)
		return code, reason
	}
	used29 := issue(now)
	code, _ := follow(used29)
	require.Equal(t, http.StatusOK, code)
	used31 := issue(now)
	code, _ = follow(used31)
	require.Equal(t, http.StatusOK, code)
	// Move the use and the expiry back in time.
	_, err := ts.pool.Exec(ctx, `UPDATE tokens SET used_at = $2, expires_at = $2::timestamptz + interval '30 minutes' WHERE hash = $1`, postgres.HashSecret(used29), now.Add(-29*24*time.Hour))
	require.NoError(t, err)
	_, err = ts.pool.Exec(ctx, `UPDATE tokens SET used_at = $2, expires_at = $2::timestamptz + interval '30 minutes' WHERE hash = $1`, postgres.HashSecret(used31), now.Add(-31*24*time.Hour))
	require.NoError(t, err)
	expired29 := issue(now.Add(-29 * 24 * time.Hour))
	expired31 := issue(now.Add(-31 * 24 * time.Hour))

	prune(t, ts.pool, now)

	code, reason := follow(used29)
	require.Equal(t, []any{http.StatusGone, "token_used"}, []any{code, reason})
	code, reason = follow(expired29)
	require.Equal(t, []any{http.StatusGone, "token_expired"}, []any{code, reason})
	code, reason = follow(used31)
	require.Equal(t, []any{http.StatusBadRequest, "token_invalid"}, []any{code, reason})
	code, reason = follow(expired31)
	require.Equal(t, []any{http.StatusBadRequest, "token_invalid"}, []any{code, reason})
}

// A Stripe event redelivered after retention dropped its payload is acknowledged as the
// duplicate it is: no second event, no second job.
func TestOldEventRedeliveredAfterRetention(t *testing.T) {
	t.Parallel()
	const secret = "whsec_retention"
	s, h := webhookServer(t, secret)
	ctx := context.Background()
	post := func(body []byte) int {
		req := httptest.NewRequest(http.MethodPost, "/api/stripe/webhook", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", sign(body, secret))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	count := func(sql string) (n int) {
		require.NoError(t, s.Pool.QueryRow(ctx, sql).Scan(&n))
		return n
	}
	body := benchEvent("evt_old_redelivered")
	require.Equal(t, http.StatusOK, post(body))
	_, err := s.Pool.Exec(ctx, `UPDATE stripe_events SET received_at = now() - interval '31 days', processed_at = now() - interval '31 days'`)
	require.NoError(t, err)
	prune(t, s.Pool, time.Now())
	require.Equal(t, 1, count(`SELECT count(*) FROM stripe_events WHERE payload IS NULL`))

	require.Equal(t, http.StatusOK, post(body), "a redelivery (Stripe's resend) a month later")
	require.Equal(t, 1, count(`SELECT count(*) FROM stripe_events`))
	require.Equal(t, 1, count(`SELECT count(*) FROM stripe_events WHERE payload IS NULL`), "the old event is not stored again")
	require.Equal(t, 1, count(`SELECT count(*) FROM river_job WHERE kind = 'stripe_event'`), "nor processed again")
}
