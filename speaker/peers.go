package speaker

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
)

// joinInterval is how often the speaker retries joining known peers that are
// not members, and re-checks a node-name conflict.
const joinInterval = 2 * time.Second

// peers finds the other speakers (their SpeakerStatus memberlistAddress, and
// the last-known members remembered in Config.PeersFile) and joins those
// that are not members.
type peers struct {
	s    *Speaker
	kick signal

	mu         sync.Mutex
	remembered []string // sorted
}

func newPeers(s *Speaker) *peers {
	p := &peers{s: s, kick: newSignal()}
	if s.cfg.PeersFile != "" {
		if b, err := os.ReadFile(s.cfg.PeersFile); err == nil {
			if err := json.Unmarshal(b, &p.remembered); err != nil {
				s.log.Warn("ignoring unreadable peers file", "file", s.cfg.PeersFile, "error", err)
				p.remembered = nil
			}
		}
	}
	return p
}

func (p *peers) trigger() { p.kick.fire() }

func (p *peers) run(ctx context.Context) {
	runOn(ctx, p.kick, joinInterval, func() {
		p.joinOnce(ctx)
		p.remember()
	})
}

// candidates returns the addresses to join: every known speaker address
// other than this speaker's whose node is not a live member. A SpeakerStatus
// with this node's name but another address is included, so a second
// speaker with the same node name is noticed. While standing down, every
// known address is returned, to re-check the conflict.
func (p *peers) candidates() []string {
	s := p.s
	self := s.localAddr
	live := map[string]bool{}
	for _, m := range s.ml.Members() {
		if m.Name != s.cfg.NodeName {
			live[m.Name] = true
			live[m.Addr.String()] = true
		}
	}
	s.mu.Lock()
	standingDown := s.standDown != nil
	s.mu.Unlock()

	var out []string
	add := func(node, addr string) {
		if addr == "" || addr == self || (!standingDown && (live[node] || live[addr])) {
			return
		}
		out = append(out, addr)
	}
	var list porticov1.SpeakerStatusList
	if err := s.mgr.GetCache().List(context.Background(), &list); err == nil {
		for _, st := range list.Items {
			add(st.Name, st.Status.MemberlistAddress)
		}
	}
	p.mu.Lock()
	for _, a := range p.remembered {
		add("", a)
	}
	p.mu.Unlock()
	slices.Sort(out)
	return slices.Compact(out)
}

// joinOnce joins the candidates, and decides whether this speaker must stand
// down because another speaker already uses its node name: only the one the
// other members refuse does (membership.NameConflict); the one they know
// keeps announcing and reports the conflict.
func (p *peers) joinOnce(ctx context.Context) {
	s := p.s
	if ctx.Err() != nil {
		return
	}
	var err error
	addrs := p.candidates()
	if len(addrs) > 0 {
		err = s.ml.Join(addrs)
	}
	// The verdict also changes between joins, with the members' periodic
	// state exchanges.
	ce := s.ml.NameConflict()
	s.mu.Lock()
	was := s.standDown
	switch {
	case ce != nil:
		s.standDown = ce
	case err == nil:
		s.standDown = nil
	}
	now := s.standDown
	s.mu.Unlock()
	switch {
	case now != nil && was == nil:
		s.log.Error("another speaker already uses this node name; this speaker does NOT announce until it is gone", "error", now)
		s.st.nodeEvent("Warning", "NodeNameConflict", "this speaker stands down: "+now.Error())
		s.trigger()
	case now == nil && was != nil:
		s.log.Info("node-name conflict resolved; announcing again")
		s.trigger()
	case err != nil && now == nil:
		s.log.Debug("joining peers", "addresses", addrs, "error", err)
	}
}

// remember records the live members' addresses (and persists them) so a
// restarted speaker can join even when SpeakerStatuses are unavailable.
func (p *peers) remember() {
	s := p.s
	var addrs []string
	self := s.localAddr
	for _, m := range s.ml.Members() {
		if a := m.Addr.String(); a != self {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return // alone: keep what we knew
	}
	slices.Sort(addrs)
	p.mu.Lock()
	same := slices.Equal(addrs, p.remembered)
	p.remembered = addrs
	p.mu.Unlock()
	if same || s.cfg.PeersFile == "" {
		return
	}
	b, _ := json.Marshal(addrs)
	tmp := s.cfg.PeersFile + ".tmp"
	if err := os.MkdirAll(filepath.Dir(s.cfg.PeersFile), 0o755); err == nil {
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, s.cfg.PeersFile)
		}
		if err != nil {
			s.log.Warn("remembering peers", "file", s.cfg.PeersFile, "error", err)
		}
	}
}
