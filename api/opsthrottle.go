package api

import (
	"sync"
	"time"
)

// Ops basic auth is throttled per client address (the IPv4 address, or the IPv6 /64):
// opsFreeFailures wrong passwords in a row cost nothing, then each one closes the door to that
// address for a backoff that doubles, up to opsMaxBackoff. While it is closed, requests from
// that address are answered 429 without their password being looked at, so guessing runs at
// about one try per backoff. It is never a lockout: the right password works again as soon as
// the backoff has passed, and every other address is never affected, so an attacker cannot
// keep ops out during an incident. The state is per process (each api process throttles on its
// own), kept in memory, and forgotten after opsAuthWindow without failures.
const (
	opsFreeFailures = 5
	opsBaseBackoff  = time.Second
	opsMaxBackoff   = time.Minute
	// opsAuthWindow is the audit window: one ops.auth_failed event per client per window.
	opsAuthWindow = 10 * time.Minute
)

type opsThrottle struct {
	mu      sync.Mutex
	clients map[string]*opsClient
}

type opsClient struct {
	failures int       // wrong passwords in a row
	until    time.Time // closed to this address until then
	last     time.Time // the last failure
	window   time.Time // the current audit window's start
	auditID  int64     // its ops.auth_failed event, 0 before it is written
	inWindow int       // failures in the current audit window
}

// wait is how long the client must still wait before its credentials are looked at (0: now).
func (t *opsThrottle) wait(client string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.clients[client]; c != nil && now.Before(c.until) {
		return c.until.Sub(now)
	}
	return 0
}

// failed counts a wrong password and returns the client's audit window: its event id (0 when
// none is written yet), start and failures so far.
func (t *opsThrottle) failed(client string, now time.Time) (auditID int64, window time.Time, failures int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients == nil {
		t.clients = map[string]*opsClient{}
	}
	t.forget(now)
	c := t.clients[client]
	if c == nil {
		c = &opsClient{}
		t.clients[client] = c
	}
	if now.Sub(c.window) >= opsAuthWindow {
		c.window, c.auditID, c.inWindow = now, 0, 0
	}
	c.failures++
	c.inWindow++
	c.last = now
	if n := c.failures - opsFreeFailures; n > 0 {
		backoff := opsMaxBackoff
		if n < 7 { // 1 s · 2^6 already passes the cap
			backoff = min(opsBaseBackoff<<(n-1), opsMaxBackoff)
		}
		c.until = now.Add(backoff)
	}
	return c.auditID, c.window, c.inWindow
}

// setAuditID remembers the event written for a client's window (unless a new window began).
func (t *opsThrottle) setAuditID(client string, window time.Time, id int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.clients[client]; c != nil && c.window.Equal(window) {
		c.auditID = id
	}
}

// succeeded ends the client's run of failures; its audit window stays, so a run that resumes
// keeps counting in the same event.
func (t *opsThrottle) succeeded(client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.clients[client]; c != nil {
		c.failures, c.until = 0, time.Time{}
	}
}

// forget drops clients quiet for a whole window, so the map cannot grow without bound.
func (t *opsThrottle) forget(now time.Time) {
	for k, c := range t.clients {
		if now.Sub(c.last) >= opsAuthWindow && !now.Before(c.until) {
			delete(t.clients, k)
		}
	}
}
