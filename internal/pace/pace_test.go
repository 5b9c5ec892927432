package pace

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Concurrent callers get slots an interval apart, in order, on a fake clock; zero turns it off.
func TestPacer(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var slept []time.Duration
	p := New(time.Second, func() time.Time { return start }, func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		return nil
	})
	for range 3 {
		require.NoError(t, p.Wait(context.Background()))
	}
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second}, slept, "the first goes at once")
	p.SetInterval(0)
	require.NoError(t, p.Wait(context.Background()))
	require.Len(t, slept, 2)
	require.Zero(t, p.Interval())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
}
