package speaker

// BGPPathCount returns how many paths this node's BGP plan holds.
func (s *Speaker) BGPPathCount() int {
	s.bgp.mu.Lock()
	defer s.bgp.mu.Unlock()
	if s.bgp.plan == nil {
		return 0
	}
	return len(s.bgp.plan.Paths)
}
