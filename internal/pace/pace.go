// Package pace spaces calls to an outside service at least an interval apart, so a client
// stays under the service's published rate (Lambda's one request a second, SES's send rate)
// instead of learning it from 429s.
package pace

import (
	"context"
	"sync"
	"time"
)

// Pacer hands out slots an interval apart. Each caller reserves the next free slot under the
// lock and sleeps outside it, so concurrent callers queue up in order instead of all waking at
// once. A reserved slot is not returned when the caller's context ends: wasting a slot is
// harmless, reusing one is not. Pacing is per Pacer: other processes are not paced against it.
type Pacer struct {
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

// New returns a Pacer; now and sleep default to the clock and Sleep (tests pass fakes).
// An interval of zero or less turns pacing off.
func New(interval time.Duration, now func() time.Time, sleep func(context.Context, time.Duration) error) *Pacer {
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = Sleep
	}
	return &Pacer{interval: interval, now: now, sleep: sleep}
}

// SetInterval changes the spacing of the slots handed out from now on.
func (p *Pacer) SetInterval(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.interval = d
}

// Interval returns the spacing of the slots.
func (p *Pacer) Interval() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.interval
}

// Wait blocks until the caller's slot comes, or ctx ends.
func (p *Pacer) Wait(ctx context.Context) error {
	p.mu.Lock()
	if p.interval <= 0 {
		p.mu.Unlock()
		return ctx.Err()
	}
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

// Sleep sleeps for d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
