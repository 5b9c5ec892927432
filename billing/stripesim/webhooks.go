package stripesim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// rawJSON is answered as is.
type rawJSON = json.RawMessage

func roundTrip(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// newEventLocked records an event whose data.object is a snapshot of obj now.
func (s *Server) newEventLocked(typ string, obj any) *event {
	objJSON, err := json.Marshal(obj)
	if err != nil {
		panic("stripesim: marshal event object: " + err.Error()) // our own structs: cannot happen
	}
	now := s.now()
	ev := &event{Event: Event{ID: newID("evt_", 24), Type: typ, Created: now}}
	ev.j = eventJSON{
		ID: ev.ID, Object: objectEvent, APIVersion: APIVersion, Created: now.Unix(),
		Data: eventData{Object: objJSON}, Type: typ,
	}
	if s.hookURL != "" {
		ev.j.PendingWebhooks = 1
	}
	ev.marshal()
	s.events = append(s.events, ev)
	s.eventByID[ev.ID] = ev
	return ev
}

// setRequest records the API request that caused the event, as Stripe does; called with the
// lock held, before the event leaves the server.
func (e *event) setRequest(reqID, key string) {
	e.j.Request.ID = ptr(reqID)
	if key != "" {
		e.j.Request.IdempotencyKey = ptr(key)
	}
	e.marshal()
}

func (e *event) marshal() {
	b, err := json.MarshalIndent(e.j, "", "  ")
	if err != nil {
		panic("stripesim: marshal event: " + err.Error())
	}
	e.Raw = b
}

// dispatchAll delivers events in the background: first attempt now, retries on failure.
func (s *Server) dispatchAll(evs []*event) {
	if s.paused.Load() {
		return
	}
	for _, ev := range evs {
		if !s.startWorker() {
			return
		}
		go func() {
			defer s.wg.Done()
			if s.deliverEvent(s.ctx, ev) {
				return
			}
			s.retryLoop(ev)
		}()
	}
}

// dispatchSync makes the first delivery attempt before returning (so a redirect after
// payment happens after the webhook was answered) and retries failures in the background.
// It returns the status of the first attempt (0 when it failed without an answer or nothing
// is configured).
func (s *Server) dispatchSync(ctx context.Context, ev *event) int {
	if s.hookURL == "" || s.paused.Load() {
		return 0
	}
	status, ok, _ := s.deliverEventStatus(ctx, ev)
	if !ok && s.startWorker() {
		go func() {
			defer s.wg.Done()
			s.retryLoop(ev)
		}()
	}
	return status
}

// startWorker registers a background goroutine unless the server is closed.
func (s *Server) startWorker() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.hookURL == "" {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) retryLoop(ev *event) {
	for i, d := range s.retry {
		t := time.NewTimer(d)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if s.deliverEvent(s.ctx, ev) {
			return
		}
		if i == len(s.retry)-1 {
			s.log.Warn("webhook delivery abandoned", "event", ev.ID, "type", ev.Type, "attempts", len(s.retry)+1)
		}
	}
}

func (s *Server) deliverEvent(ctx context.Context, ev *event) bool {
	_, ok, _ := s.deliverEventStatus(ctx, ev)
	return ok
}

// deliverEventStatus makes one attempt and records it on the event. ok means a 2xx answer.
func (s *Server) deliverEventStatus(ctx context.Context, ev *event) (status int, ok bool, err error) {
	s.mu.Lock()
	raw := ev.Raw
	s.mu.Unlock()
	status, err = s.post(ctx, raw)
	ok = err == nil && status >= 200 && status < 300
	s.mu.Lock()
	ev.Attempts++
	if ok {
		ev.Delivered = true
	}
	attempt := ev.Attempts
	s.mu.Unlock()
	switch {
	case err != nil:
		s.log.Warn("webhook delivery failed", "event", ev.ID, "type", ev.Type, "attempt", attempt, "err", err)
	case !ok:
		s.log.Warn("webhook delivery refused", "event", ev.ID, "type", ev.Type, "attempt", attempt, "status", status)
	default:
		s.log.Debug("webhook delivered", "event", ev.ID, "type", ev.Type, "attempt", attempt, "status", status)
	}
	return status, ok, err
}

// post signs raw with the wall clock, exactly as Stripe does (t=…,v1=HMAC-SHA256(secret,
// "t.body")), and POSTs it to the webhook URL.
func (s *Server) post(ctx context.Context, raw []byte) (int, error) {
	if s.hookURL == "" {
		return 0, ErrNoWebhookURL
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
		Payload: raw, Secret: s.secret, Timestamp: time.Now(),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.hookURL, bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", signed.Header)
	req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// Resend delivers an already emitted event once more, freshly signed, as "Resend" in Stripe's
// dashboard does. It does not schedule retries.
func (s *Server) Resend(ctx context.Context, eventID string) (int, error) {
	s.mu.Lock()
	ev, ok := s.eventByID[eventID]
	s.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("%w: event %s", ErrNotFound, eventID)
	}
	if s.hookURL == "" {
		return 0, ErrNoWebhookURL
	}
	status, _, err := s.deliverEventStatus(ctx, ev)
	return status, err
}

// Deliver signs arbitrary bytes with the webhook secret and POSTs them once to the webhook
// URL: for tests of duplicates, foreign API versions or unknown event types.
func (s *Server) Deliver(ctx context.Context, rawEvent []byte) (int, error) {
	return s.post(ctx, rawEvent)
}

// PauseDelivery holds back automatic delivery of new events while paused (they are still
// recorded, and Resend and Deliver still work), so tests can deliver events late, twice or out
// of order, as Stripe may.
func (s *Server) PauseDelivery(paused bool) { s.paused.Store(paused) }
