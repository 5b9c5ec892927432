package lambda

import (
	"context"
	"sync"
	"time"
)

// pacer spaces calls at least interval apart. Lambda allows about one request a second and one
// launch every 12 seconds; over that it answers 429, which would cost a provision job a retry.
//
// Each caller reserves the next free slot under the lock and sleeps outside it, so concurrent
// callers queue up in order instead of all waking at once. A reserved slot is not returned when
// the caller's context ends; wasting a slot is harmless, reusing one is not. The pacing is per
// Client: workers in other processes are not paced against each other, and their 429s are
// handled as retryable errors.
type pacer struct {
	interval time.Duration
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error

	mu   sync.Mutex
	next time.Time
}

func newPacer(interval time.Duration, now func() time.Time, sleep func(context.Context, time.Duration) error) *pacer {
	return &pacer{interval: interval, now: now, sleep: sleep}
}

// wait blocks until the caller's slot comes, or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	if p.interval <= 0 {
		return nil
	}
	p.mu.Lock()
	now := p.now()
	slot := p.next
	if slot.Before(now) {
		slot = now
	}
	p.next = slot.Add(p.interval)
	p.mu.Unlock()
	if d := slot.Sub(now); d > 0 {
		return p.sleep(ctx, d)
	}
	return ctx.Err()
}

// sleepContext sleeps for d or until ctx ends.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
