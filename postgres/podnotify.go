package postgres

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// PodChannel is the channel migration 024's triggers notify, with the pod's id as payload, in
// the transaction that changes what the pod JSON shows.
const PodChannel = "pod_changed"

// PodListenerName is the application_name of the listener's connection (pg_stat_activity).
const PodListenerName = "gpubroker pod listener"

// PodListener holds one connection of its own (not the pool's) listening on PodChannel and
// wakes the subscribers of each pod notified, so any number of event streams wait on no pool
// connection. A subscriber gets a coalesced signal: a buffered channel of one, sent to without
// blocking, which means "read the pod again". After a lost connection it reconnects with
// backoff and then signals every subscriber, since notifications sent meanwhile are lost.
type PodListener struct {
	config *pgx.ConnConfig
	logger *slog.Logger

	// The backoff after a failed connection (doubling, with jitter) and how long the
	// connection may stay silent before it is pinged (a half-open TCP connection reads nothing).
	MinBackoff, MaxBackoff, PingInterval time.Duration

	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

// NewPodListener returns a listener that connects with config (a pool's ConnConfig will do: it
// is copied). Run starts it.
func NewPodListener(config *pgx.ConnConfig, logger *slog.Logger) *PodListener {
	c := config.Copy()
	c.RuntimeParams["application_name"] = PodListenerName
	if logger == nil {
		logger = slog.Default()
	}
	return &PodListener{
		config: c, logger: logger, subs: map[string]map[chan struct{}]struct{}{},
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, PingInterval: 30 * time.Second,
	}
}

// Subscribe returns a channel signalled when the pod may have changed, and the function that
// ends the subscription. Subscribe before reading the pod: a change committed after the read
// then always signals.
func (l *PodListener) Subscribe(podID string) (<-chan struct{}, func()) {
	podID = strings.ToLower(podID) // the payload is Postgres' text form of a uuid
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	if l.subs[podID] == nil {
		l.subs[podID] = map[chan struct{}]struct{}{}
	}
	l.subs[podID][ch] = struct{}{}
	l.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			delete(l.subs[podID], ch)
			if len(l.subs[podID]) == 0 {
				delete(l.subs, podID)
			}
		})
	}
}

// Subscribers is how many subscriptions are open (for tests and metrics).
func (l *PodListener) Subscribers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.subs {
		n += len(s)
	}
	return n
}

// signal wakes the subscribers of one pod, or of every pod when podID is "".
func (l *PodListener) signal(podID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	wake := func(subs map[chan struct{}]struct{}) {
		for ch := range subs {
			select {
			case ch <- struct{}{}:
			default: // a signal is pending already: the reader will see this change too
			}
		}
	}
	if podID != "" {
		wake(l.subs[podID])
		return
	}
	for _, subs := range l.subs {
		wake(subs)
	}
}

// Run listens until ctx is done, reconnecting after any failure.
func (l *PodListener) Run(ctx context.Context) {
	backoff := l.MinBackoff
	for ctx.Err() == nil {
		listened, err := l.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if listened {
			backoff = l.MinBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jittered: api processes do not reconnect in step
		l.logger.Warn("pod listener lost its connection; reconnecting", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, l.MaxBackoff)
	}
}

// listen connects, listens, tells every subscriber to read again (changes may have been
// missed before the LISTEN), then fans notifications out until the connection fails. listened
// reports whether the LISTEN succeeded.
func (l *PodListener) listen(ctx context.Context) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, l.config)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+PodChannel); err != nil {
		return false, err
	}
	l.signal("")
	for {
		waitCtx, cancel := context.WithTimeout(ctx, l.PingInterval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			l.signal(n.Payload)
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Silent for PingInterval: a timed-out wait leaves the connection usable; check it answers.
			pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}
