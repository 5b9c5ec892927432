package sim

// ClearFaults turns every fault switch off: no capacity, queued failures, failures after
// launch and hangs (a chaos run calms the provider before it waits for quiet).
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.noCapacity)
	s.noCapacityAll = false
	clear(s.failures)
	s.failAfterLaunch = 0
	clear(s.hangs)
}
