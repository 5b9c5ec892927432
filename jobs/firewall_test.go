package jobs

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"gpubroker/gpu/lambda"
	"gpubroker/gpu/lambda/lambdafake"
)

// Issue 20.4: with a Lambda key, the worker's River client runs lambda_firewall when it
// starts (and every 10 minutes): it opens SSH, 80 and 443 in the account's firewall, keeping
// ops' rules, and writes nothing more once they are open. A failure is logged at error level
// and audited as lambda.firewall_failed (gpubroker_audit_events_total, which ops/alerts.yml
// pages on), and the next run tries again. A real River client on a real database, the real
// Lambda client against the firewall stand-in.
func TestLambdaFirewallJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	fw := &lambdafake.Firewall{APIKey: "secret_fw"}
	srv := httptest.NewServer(fw)
	t.Cleanup(srv.Close)
	ops := lambdafake.Rule{Protocol: "tcp", PortRange: []int{9000, 9100}, SourceNetwork: "203.0.113.0/24", Description: "ops: metrics"}
	fw.SetRules([]lambdafake.Rule{ops})
	fw.FailNext(http.StatusInternalServerError, 1) // the run on start

	logs := &errorLog{}
	b.deps.Logger = slog.New(logs)
	b.deps.Firewall = lambda.New(lambda.Config{APIKey: "secret_fw", BaseURL: srv.URL, RequestInterval: -1, LaunchInterval: -1})
	workers := river.NewWorkers()
	Register(workers, b.deps)
	periodic := PeriodicJobs(time.Hour, time.Hour)
	if b.deps.Firewall != nil {
		periodic = append(periodic, FirewallPeriodicJob())
	}
	client, err := river.NewClient[pgx.Tx](riverpgxv5.New(b.pool), &river.Config{
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}, QueuePods: {MaxWorkers: 2}, QueuePayments: {MaxWorkers: 1}, QueueEmail: {MaxWorkers: 1}},
		Workers:       workers,
		PeriodicJobs:  periodic,
		Logger:        slog.New(slog.DiscardHandler),
		FetchCooldown: 10 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.WithoutCancel(ctx)) })

	audited := func(action string) int {
		return b.count(t, `SELECT count(*) FROM audit_events WHERE action = $1`, action)
	}
	require.Eventually(t, func() bool { return audited("lambda.firewall_failed") == 1 }, 10*time.Second, 20*time.Millisecond, "the run on start failed, and says so")
	require.Contains(t, logs.errors(), "could not open Lambda's firewall")
	require.Zero(t, fw.Puts())

	completed := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool {
			return b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'lambda_firewall' AND state = 'completed'`) == n
		}, 10*time.Second, 20*time.Millisecond)
	}
	completed(1)
	_, err = client.Insert(ctx, LambdaFirewallArgs{}, nil) // as the next period would
	require.NoError(t, err)
	require.Eventually(t, func() bool { return audited("lambda.firewall_opened") == 1 }, 10*time.Second, 20*time.Millisecond)
	rules := fw.Rules()
	require.Equal(t, ops, rules[0], "ops' rule is kept")
	require.Len(t, rules, 4)
	require.Equal(t, 1, fw.Puts())

	completed(2)
	_, err = client.Insert(ctx, LambdaFirewallArgs{}, nil)
	require.NoError(t, err)
	completed(3)
	require.Equal(t, 1, fw.Puts(), "all open: nothing written")
	require.Equal(t, 1, audited("lambda.firewall_opened"))
	require.Equal(t, 1, audited("lambda.firewall_failed"))
}

// Without a Lambda key there is no firewall to keep: the job does nothing.
func TestLambdaFirewallJobWithoutLambda(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := work(t, b, &LambdaFirewallWorker{d: b.deps}, LambdaFirewallArgs{})
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	require.Zero(t, b.count(t, `SELECT count(*) FROM audit_events WHERE action LIKE 'lambda.%'`))
}

// errorLog keeps the messages logged at error level.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (h *errorLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *errorLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.mu.Lock()
		h.msgs = append(h.msgs, r.Message)
		h.mu.Unlock()
	}
	return nil
}
func (h *errorLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorLog) WithGroup(string) slog.Handler      { return h }

func (h *errorLog) errors() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := ""
	for _, m := range h.msgs {
		out += m + "\n"
	}
	return out
}
