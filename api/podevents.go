package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"gpubroker"
	"gpubroker/postgres"
)

// PodChanges tells the event streams when a pod may have changed (postgres.PodListener): the
// channel receives a coalesced "read it again" until cancel is called.
type PodChanges interface {
	Subscribe(podID string) (changed <-chan struct{}, cancel func())
}

// The event stream's timings, when the Server's fields leave them zero.
const (
	// DefaultStreamKeepalive is under CloudFront's 30 s origin read timeout, which would
	// otherwise cut a stream with nothing to say.
	DefaultStreamKeepalive = 25 * time.Second
	// DefaultStreamLifetime bounds one stream; EventSource reconnects by itself (retry: 3000).
	DefaultStreamLifetime = 10 * time.Minute
	// streamWriteTimeout is how long one write may take: a client that reads nothing for
	// that long is gone.
	streamWriteTimeout = 10 * time.Second
)

// handlePodEvents is GET /api/pods/{id}/events: the pod JSON as Server-Sent Events, at once
// and again whenever a notification says it may have changed and it did, until the pod has
// ended with nothing more to come (podStreamDone). Signed in and found as GET /api/pods/{id}
// (401, 404); the JSON is that endpoint's, byte for byte. The stream holds no pool
// connection: each read borrows one for its queries.
func (s *Server) handlePodEvents(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	ctx := r.Context()
	acct, err := s.sessionAccount(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if s.PodChanges == nil {
		writeError(w, r, gpubroker.Errorf(gpubroker.EUNAVAILABLE, "unavailable", "Live updates are not available: ask for the pod instead."))
		return
	}
	// Subscribed before the first read, so a change committed after it always signals.
	id := strings.ToLower(ps.ByName("id"))
	changed, cancel := s.PodChanges.Subscribe(id)
	defer func() { cancel() }()
	body, view, err := s.podEvent(ctx, acct, id)
	if err == nil && view.ID != id { // another spelling of the id: the notifications name it as Postgres does
		cancel()
		changed, cancel = s.PodChanges.Subscribe(view.ID)
		body, view, err = s.podEvent(ctx, acct, view.ID)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	id = view.ID

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // proxies that buffer answers must not hold events back
	w.WriteHeader(http.StatusOK)
	lifetime := orDefault(s.StreamLifetime, DefaultStreamLifetime)
	// Each write sets its own deadline: the server's WriteTimeout, counted from the request,
	// would cut the stream. (Its ReadTimeout does not: net/http clears the read deadline once
	// the request is read.)
	write := func(b []byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if write(append([]byte("retry: 3000\n\n"), podEventFrame(body)...)) != nil || podStreamDone(view) {
		return
	}
	keepalive := time.NewTicker(orDefault(s.StreamKeepalive, DefaultStreamKeepalive))
	defer keepalive.Stop()
	end := time.NewTimer(lifetime)
	defer end.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streamsClosing():
			return
		case <-end.C:
			return
		case <-keepalive.C:
			if write([]byte(": keepalive\n\n")) != nil {
				return
			}
		case <-changed:
			next, v, err := s.reread(r, id)
			if err != nil {
				if code := gpubroker.ErrorCode(err); !errors.Is(err, context.Canceled) && code != gpubroker.ENOTFOUND && code != gpubroker.EUNAUTHORIZED {
					logger(r).WarnContext(ctx, "error reading a pod for its event stream; ending it", "pod_id", id, "error", err)
				}
				return // the browser reconnects and reads again
			}
			if !bytes.Equal(next, body) {
				body = next
				if write(podEventFrame(body)) != nil {
					return
				}
				keepalive.Reset(orDefault(s.StreamKeepalive, DefaultStreamKeepalive))
			}
			if podStreamDone(v) {
				return
			}
		}
	}
}

// reread reads a streamed pod again, as one of at most maxStreamReads at a time: a change to a
// pod watched by many streams (or the listener's reconnection, which wakes them all) must not
// take every connection of the pool from the other requests. The session is checked again
// (signed out, the stream ends), and the account read with it: its status shows in the pod
// JSON (deploy_blocked).
func (s *Server) reread(r *http.Request, id string) ([]byte, *Pod, error) {
	select {
	case s.streamReads() <- struct{}{}:
		defer func() { <-s.streamReads() }()
	case <-r.Context().Done():
		return nil, nil, r.Context().Err()
	}
	acct, err := s.sessionAccount(r)
	if err != nil {
		return nil, nil, err
	}
	return s.podEvent(r.Context(), acct, id)
}

// maxStreamReads bounds the pool connections the event streams' reads take at once.
const maxStreamReads = 4

func (s *Server) streamReads() chan struct{} {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streamReadSlots == nil {
		s.streamReadSlots = make(chan struct{}, maxStreamReads)
	}
	return s.streamReadSlots
}

// podEvent is the pod's JSON as GET /api/pods/{id} answers it (without writeJSON's newline).
func (s *Server) podEvent(ctx context.Context, acct *gpubroker.Account, id string) ([]byte, *Pod, error) {
	pod, err := postgres.GetAccountPod(ctx, s.Pool, acct.ID, id)
	if err != nil {
		return nil, nil, err
	}
	view, err := s.podView(ctx, acct, pod)
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(view)
	return b, &view, err
}

func podEventFrame(body []byte) []byte {
	b := make([]byte, 0, len(body)+32)
	b = append(b, "event: pod\ndata: "...)
	b = append(b, body...)
	return append(b, "\n\n"...)
}

// podStreamDone holds for a pod that will not change again: ended, with no refund still to
// make (a refund planned or queued after the end is pushed too).
func podStreamDone(p *Pod) bool { return p.Status.Ended() && p.RefundDueCents == 0 }

// CloseStreams ends every open event stream (graceful shutdown: http.Server.Shutdown waits for
// requests to finish, and a stream would not).
func (s *Server) CloseStreams() {
	s.closeStreams.Do(func() { close(s.streamsClosing()) })
}

func (s *Server) streamsClosing() chan struct{} {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streamsDone == nil {
		s.streamsDone = make(chan struct{})
	}
	return s.streamsDone
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
