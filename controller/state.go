package controller

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/internal/ipam"
)

// state is what the reconcilers share: the allocator, the configuration in
// effect, and small per-Service notes. Per-Service memory is only spent on
// Services that need it (a pending failure or a change reason).
type state struct {
	alloc   *ipam.Allocator
	builder config.Builder
	ready   chan struct{} // closed once state is rebuilt from Service status
	// freed counts the times an address may have become free (a release,
	// new pools): a Service whose allocation failed while it changed is
	// retried, since it may have missed the retry of the waiting Services.
	freed atomic.Uint64

	mu       sync.Mutex
	cfg      *config.Config
	poolsKey string            // fingerprint of the pools given to the allocator
	reasons  map[string]string // service -> why its current IP must change
	failed   map[string]string // service -> last failure reported in an event
	warned   map[string]string // service -> last annotation warning reported
}

func newState() *state {
	return &state{
		alloc:   ipam.New(),
		ready:   make(chan struct{}),
		cfg:     (&config.Builder{}).Build(config.Inputs{}),
		reasons: map[string]string{},
		failed:  map[string]string{},
		warned:  map[string]string{},
	}
}

func (s *state) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *state) config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// setReason records why key's IP must change; the next reconcile uses it.
func (s *state) setReason(key, why string) {
	s.mu.Lock()
	s.reasons[key] = why
	s.mu.Unlock()
}

func (s *state) takeReason(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	why := s.reasons[key]
	delete(s.reasons, key)
	return why
}

// noteFailure records msg for key and reports whether it is new (and so worth
// an event). An empty msg clears it.
func (s *state) noteFailure(key, msg string) bool {
	return s.note(s.failed, key, msg)
}

func (s *state) noteWarning(key, msg string) bool {
	return s.note(s.warned, key, msg)
}

func (s *state) note(m map[string]string, key, msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg == "" {
		delete(m, key)
		return false
	}
	if m[key] == msg {
		return false
	}
	m[key] = msg
	return true
}

// forget drops every note about key.
func (s *state) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.reasons, key)
	delete(s.failed, key)
	delete(s.warned, key)
}

// waiting returns the Services whose last allocation failed, sorted.
func (s *state) waiting() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.failed))
	for k := range s.failed {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
