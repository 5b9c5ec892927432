package postgres

// A hook for the external tests (package postgres_test, which cannot be internal: testdb
// imports this package).

// Queued is how many events wait in w for the running statement to finish.
func (w *EventWriter) Queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}
