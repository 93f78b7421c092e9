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
