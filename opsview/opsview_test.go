package opsview_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/internal/testdb"
	"gpubroker/opsview"
)

// Run collects on its interval; before the first collection only the collector's own series are
// exported (gpubroker_pods absent, the last success at 0), so nothing reads numbers that were
// never collected as zeros.
func TestCollectorRunsOnItsInterval(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	c := &opsview.Collector{DB: pool, Interval: 50 * time.Millisecond, Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	var b bytes.Buffer
	c.WriteMetrics(&b)
	require.Contains(t, b.String(), "\ngpubroker_collector_last_success_timestamp_seconds 0\n")
	require.NotContains(t, b.String(), "gpubroker_pods")
	require.Nil(t, c.Snapshot())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	require.Eventually(t, func() bool { return c.Snapshot() != nil }, 5*time.Second, 10*time.Millisecond)
	first := c.Snapshot()
	require.Eventually(t, func() bool { return c.Snapshot().At.After(first.At) }, 5*time.Second, 10*time.Millisecond, "collected again")
	b.Reset()
	c.WriteMetrics(&b)
	for _, want := range []string{`gpubroker_pods{status="running"} 0`, `gpubroker_funnel_orders{step="checkouts_started"} 0`, `gpubroker_audit_events_total{action="refund.failed"} 0`} {
		require.Contains(t, b.String(), want)
	}
	require.Zero(t, c.Status().Failures)
}

// A database that is gone fails the collection: counted, logged at error level, the last
// Snapshot kept; a shutdown (ctx ended) is not a failure.
func TestCollectorKeepsTheLastSnapshotOnFailure(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	var logs bytes.Buffer
	c := &opsview.Collector{DB: pool, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	require.NoError(t, c.Collect(context.Background()))
	good := c.Snapshot()
	pool.Close()
	require.Error(t, c.Collect(context.Background()))
	require.Same(t, good, c.Snapshot())
	st := c.Status()
	require.EqualValues(t, 1, st.Failures)
	require.Equal(t, good.At, st.LastSuccess)
	require.NotEmpty(t, st.LastError)
	require.Contains(t, logs.String(), "level=ERROR")
	require.True(t, strings.Contains(logs.String(), "error collecting the ops numbers"))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.Collect(ctx), context.Canceled)
	require.EqualValues(t, 1, c.Status().Failures, "shutting down is not a failure")
}

// A running collector whose first collection failed answers requests with an error at once:
// a scrape or a console reload never runs the queries itself.
func TestRunningCollectorNeverCollectsOnRequest(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	pool.Close()
	c := &opsview.Collector{DB: pool, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	require.Eventually(t, func() bool {
		_, err := c.Latest(context.Background())
		return err != nil && strings.Contains(err.Error(), "not been collected yet")
	}, 5*time.Second, 10*time.Millisecond)
	failures := c.Status().Failures
	for range 5 {
		_, err := c.Latest(context.Background())
		require.ErrorContains(t, err, "not been collected yet")
	}
	require.Equal(t, failures, c.Status().Failures, "no query was run for the requests")
}
