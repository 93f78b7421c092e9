package l2plan

import (
	"net/netip"
	"slices"

	"github.com/portico-lb/portico/internal/election"
	"github.com/portico-lb/portico/internal/layer2"
)

// LocalInterfaces returns the links this node publishes as announcing
// interfaces, sorted by name: every link layer2.Eligible accepts by default,
// and every link an L2Advertisement names (named), whatever its kind.
// Carrier is the link's current state, so a link that loses carrier stays in
// the list, marked down, and the other speakers exclude this node for it.
// prefixes gives each link's addresses; only global unicast ones are kept.
// The result is never nil.
func LocalInterfaces(links []layer2.Link, prefixes map[string][]netip.Prefix, named []string) []election.Interface {
	out := []election.Interface{}
	for _, l := range links {
		probe := l
		probe.Up = true // eligibility regardless of carrier; carrier is reported separately
		ok, _ := layer2.Eligible(probe, nil)
		if !ok && slices.Contains(named, l.Name) {
			ok, _ = layer2.Eligible(probe, []string{l.Name})
		}
		if !ok {
			continue
		}
		ifc := election.Interface{Name: l.Name, Carrier: l.Up}
		for _, p := range prefixes[l.Name] {
			if p.Addr().IsGlobalUnicast() {
				ifc.Prefixes = append(ifc.Prefixes, p.Masked())
			}
		}
		slices.SortFunc(ifc.Prefixes, comparePrefix)
		ifc.Prefixes = slices.Compact(ifc.Prefixes)
		out = append(out, ifc)
	}
	return sortedIfaces(out)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// GateCarrier returns fresh with carrier kept only on interfaces that also
// had carrier in published, the view the other speakers last received. A
// node therefore steps back at once when it loses carrier but takes IPs back
// only once the others know it regained it, so that the node currently
// announcing in its place steps back at about the same moment. A nil
// published (nothing published yet) returns fresh unchanged.
func GateCarrier(fresh, published []election.Interface) []election.Interface {
	if published == nil {
		return fresh
	}
	out := make([]election.Interface, len(fresh))
	for i, ifc := range fresh {
		if ifc.Carrier {
			j := slices.IndexFunc(published, func(p election.Interface) bool { return p.Name == ifc.Name })
			ifc.Carrier = j >= 0 && published[j].Carrier
		}
		out[i] = ifc
	}
	return out
}
