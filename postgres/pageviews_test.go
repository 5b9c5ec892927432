package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"gpubroker/internal/testdb"
	"gpubroker/postgres"
)

// Page views are counters per UTC day and path: no row per visit, nothing about the visitor.
// Visitors are the views of the landing page since a time, counted by whole UTC days.
func TestPageViewsCountPerDayAndPath(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 23, 59, 0, 0, time.UTC)
	for _, p := range []string{"/", "/", "/plans/"} {
		require.NoError(t, postgres.CountPageView(ctx, pool, p, now))
	}
	require.NoError(t, postgres.CountPageView(ctx, pool, "/", now.Add(2*time.Minute))) // the next UTC day
	require.NoError(t, postgres.CountPageView(ctx, pool, "/", now.Add(-10*24*time.Hour)))

	var rows, n int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), sum(n) FROM page_views`).Scan(&rows, &n))
	require.Equal(t, int64(4), rows, "one row per day and path")
	require.Equal(t, int64(5), n)

	v, err := postgres.CountVisitors(ctx, pool, time.Time{})
	require.NoError(t, err)
	require.Equal(t, int64(4), v, "all time: every view of /")
	v, err = postgres.CountVisitors(ctx, pool, now.Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(3), v, "since an hour ago: the whole day it falls in and the next")
}

// Concurrent views of one path on one day all count (the upsert's hot row).
func TestPageViewsConcurrent(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	now := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				require.NoError(t, postgres.CountPageView(ctx, pool, "/", now))
			}
		}()
	}
	wg.Wait()
	v, err := postgres.CountVisitors(ctx, pool, now.Add(-time.Minute))
	require.NoError(t, err)
	require.Equal(t, int64(200), v)
}

// BenchmarkPageViewHotRow increments one row (today's "/") from parallel goroutines: the
// worst case of the upsert, every view waiting on the same row lock.
func BenchmarkPageViewHotRow(b *testing.B) {
	pool := testdb.New(b)
	ctx := context.Background()
	now := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := postgres.CountPageView(ctx, pool, "/", now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
