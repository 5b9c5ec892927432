package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"gpubroker"
)

// EventWriter stores webhook events as they arrive, letting concurrent ones share a commit.
//
// It runs one statement at a time. An event that arrives while none is running is stored at
// once, alone, by its own caller: an idle writer adds no wait. Events that arrive while one
// runs queue up, and the next statement stores all of them (up to maxEventBatch) together
// with InsertStripeEvents. Under a burst the database then does one durable commit per batch
// instead of one per event, which is where the webhook's time went (measured by make load:
// one statement at a time beat two or four, whose batches stayed small). Each caller still
// learns its own event's fate, and answers only once it has committed: each event is stored
// with its job or not at all.
//
// A batch that fails for anything but an outage (a signed payload Postgres cannot store, an
// id too long for its index) is retried one event at a time, so one event's failure is only
// its own caller's; an outage is every caller's in the batch (all answer 503, and Stripe
// retries).
type EventWriter struct {
	q Querier

	mu      sync.Mutex
	queue   []*pendingEvent
	writing bool // a statement is running (or about to)
}

const (
	// maxEventBatch bounds one statement: about 80 KB of events, well under a millisecond of
	// the database's work.
	maxEventBatch = 32
	// eventWriteTimeout bounds a batch's statement, which runs for several callers and so
	// outlives any one caller's cancellation.
	eventWriteTimeout = 15 * time.Second
)

type pendingEvent struct {
	EventJob
	inserted bool
	err      error
	done     chan struct{}
}

// NewEventWriter returns a writer storing through q (a pool).
func NewEventWriter(q Querier) *EventWriter { return &EventWriter{q: q} }

// Insert stores e and, if e is new, job, like InsertStripeEvent: it reports false for an event
// already stored. It returns once the event's batch has committed or failed, or early with
// ctx's error if ctx ends first (the event may still be stored; its redelivery is then a
// duplicate).
func (w *EventWriter) Insert(ctx context.Context, e *gpubroker.WebhookEvent, job river.JobArgs) (bool, error) {
	p := &pendingEvent{EventJob: EventJob{Event: e, Job: job}, done: make(chan struct{})}
	w.mu.Lock()
	w.queue = append(w.queue, p)
	var batch []*pendingEvent
	if !w.writing {
		w.writing = true
		batch = w.take()
	}
	w.mu.Unlock()
	if batch != nil {
		// This caller stores its own event (and any queued with it), then hands the writing
		// to a goroutine if more events queued meanwhile, so its own answer is not delayed.
		w.store(context.WithoutCancel(ctx), batch)
		if more := w.next(); more != nil {
			go w.drain(more)
		}
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		select {
		case <-p.done: // stored after all: say so
		default:
			return false, ctx.Err()
		}
	}
	return p.inserted, p.err
}

// take removes up to maxEventBatch queued events. mu must be held.
func (w *EventWriter) take() []*pendingEvent {
	n := min(len(w.queue), maxEventBatch)
	batch := w.queue[:n:n]
	w.queue = w.queue[n:]
	return batch
}

// next returns the next batch to store, or nil, and the writing ends, when nothing is queued.
func (w *EventWriter) next() []*pendingEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		w.writing = false
		return nil
	}
	return w.take()
}

// drain stores batch and then the queued batches until the queue is empty.
func (w *EventWriter) drain(batch []*pendingEvent) {
	for ; batch != nil; batch = w.next() {
		w.store(context.Background(), batch)
	}
}

// store runs one batch's statement and wakes its callers.
func (w *EventWriter) store(ctx context.Context, batch []*pendingEvent) {
	ctx, cancel := context.WithTimeout(ctx, eventWriteTimeout)
	defer cancel()
	jobs := make([]EventJob, len(batch))
	for i, p := range batch {
		jobs[i] = p.EventJob
	}
	inserted, err := insertRecovered(ctx, w.q, jobs)
	if err != nil && len(batch) > 1 && !Unavailable(err) {
		for i := range batch {
			w.store(ctx, batch[i:i+1])
		}
		return
	}
	for i, p := range batch {
		if err == nil {
			p.inserted = inserted[i]
		}
		p.err = err
		close(p.done)
	}
}

// insertRecovered is InsertStripeEvents with a panic turned into the batch's error: a panic
// must not leave the writer marked as writing, which would hang every later webhook.
func insertRecovered(ctx context.Context, q Querier, jobs []EventJob) (inserted []bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			inserted, err = nil, fmt.Errorf("postgres: panic storing webhook events: %v", v)
		}
	}()
	return InsertStripeEvents(ctx, q, jobs)
}
