package speaker

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-lb/portico/internal/layer2"
	"github.com/portico-lb/portico/speaker/facts"
	"github.com/portico-lb/portico/speaker/l2plan"
)

// l2Protocol answers ARP/NDP for the IPs this node wins: package l2plan
// elects an announcer per IP from the facts and the memberlist view, and
// internal/layer2 answers on the wire. It owns its plan and what it told the
// announcer.
type l2Protocol struct {
	node  string
	ann   *layer2.Announcer
	netns func(f func() error) error
	log   *slog.Logger

	mu     sync.Mutex
	plan   *l2plan.Plan
	owned  map[netip.Addr][]string // what the announcer was told
	err    error                   // last announcer error
	deputy bool                    // this node writes the entries of IPs nobody announces
}

func (p *l2Protocol) apply(f facts.Facts, v nodeView, announce bool) {
	plan := l2plan.Compute(l2plan.Inputs{Facts: f, LocalInterfaces: v.interfaces, LocalLinks: v.links, Members: v.members})
	owned := plan.Owned
	if !announce {
		owned = map[netip.Addr][]string{}
	}
	err := p.netns(func() error { return p.ann.SetOwned(owned) })
	if err != nil {
		p.log.Warn("announcer", "error", err)
	}
	p.mu.Lock()
	p.plan, p.owned, p.err = &plan, owned, err
	p.deputy = announce && l2plan.Deputy(v.members) == p.node
	p.mu.Unlock()
}

// lastPlan returns the last plan computed (nil before the first).
func (p *l2Protocol) lastPlan() *l2plan.Plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.plan
}

func (p *l2Protocol) announcements() map[types.NamespacedName]announcement {
	p.mu.Lock()
	plan, deputy := p.plan, p.deputy
	p.mu.Unlock()
	out := map[types.NamespacedName]announcement{}
	if plan == nil {
		return out
	}
	for key, l2 := range plan.Announcements(p.node, deputy) {
		out[key] = announcement{l2: l2}
	}
	return out
}

func (p *l2Protocol) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	if p.plan != nil && len(p.plan.Problems) > 0 {
		out = append(out, l2plan.ProblemsText(p.plan.Problems))
	}
	if p.err != nil {
		out = append(out, strings.ReplaceAll(p.err.Error(), "\n", "; "))
	}
	return out
}

// ownedCopy returns what the announcer was last told to announce.
func (p *l2Protocol) ownedCopy() map[netip.Addr][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[netip.Addr][]string, len(p.owned))
	for ip, ifs := range p.owned {
		out[ip] = slices.Clone(ifs)
	}
	return out
}

func (p *l2Protocol) close(context.Context) {
	if err := p.ann.Close(); err != nil {
		p.log.Warn("closing the announcer", "error", err)
	}
}

// mergeAnnouncements merges the entries of several protocols per Service.
func mergeAnnouncements(parts ...map[types.NamespacedName]announcement) map[types.NamespacedName]announcement {
	out := map[types.NamespacedName]announcement{}
	for _, part := range parts {
		for _, key := range slices.Collect(maps.Keys(part)) {
			a, e := part[key], out[key]
			e.l2 = append(e.l2, a.l2...)
			e.bgp = append(e.bgp, a.bgp...)
			out[key] = e
		}
	}
	return out
}

// isDeputy reports whether this node writes the status of IPs nobody
// announces (and removes orphaned ServiceAnnouncements).
func (p *l2Protocol) isDeputy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deputy
}
