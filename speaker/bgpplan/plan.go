// Package bgpplan owns the speaker's BGP decisions as a pure function: from
// the facts every protocol shares (configuration, Service IPs, nodes; see
// package facts) and this node's own addresses, it computes the sessions this
// node opens, the routes it announces to each peer with their attributes,
// which Service IPs those routes carry, and the problems only this node can
// see (no address of a family to use as next hop).
//
// Which nodes announce an IP: with externalTrafficPolicy Cluster every
// eligible node a BGPAdvertisement of the IP's pool selects; with Local only
// those of them holding a ready endpoint. A node is not eligible when it is
// labelled node.kubernetes.io/exclude-from-external-load-balancers or its
// NetworkUnavailable condition is True. Unlike layer 2 there is no election:
// every announcing node sends its own route and the routers spread traffic
// over them (ECMP).
//
// The output is in internal/bgp's desired-state form (SetDesired), sorted, so
// the same inputs always give the same plan.
package bgpplan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-lb/portico/internal/bgp"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/speaker/facts"
)

// Inputs are what one node's BGP plan is computed from.
type Inputs struct {
	facts.Facts
	// LocalAddresses are this node's interface addresses with their prefix
	// lengths, by interface name; they give next hops of the other family
	// than a session's (an IPv6 route over an IPv4 session).
	LocalAddresses map[string][]netip.Prefix
}

// Session is one BGP session this node opens: the announcer's Peer without
// its password, and where the password is.
type Session struct {
	bgp.Peer
	// Password locates the TCP MD5 password; nil for none. The speaker reads
	// it and fills Peer.Password.
	Password *config.SecretRef
}

// IPPlan is one Service IP this node announces over BGP.
type IPPlan struct {
	IP       netip.Addr
	Services []types.NamespacedName
	Pool     string
	// Prefixes carrying the IP (one per advertisement aggregation length),
	// sorted.
	Prefixes []netip.Prefix
	// Peers receiving a route for the IP, sorted.
	Peers []string
}

// Plan is the outcome of Compute.
type Plan struct {
	// Sessions this node opens, sorted by peer name.
	Sessions []Session
	// Paths this node announces, sorted by prefix, in the form
	// bgp.Announcer.SetDesired takes.
	Paths []bgp.Path
	// IPs this node announces, sorted by address.
	IPs []IPPlan
	// Problems only this node can see, sorted.
	Problems []config.Problem
}

// Peers returns the sessions as the announcer takes them.
func (p *Plan) Peers() []bgp.Peer {
	out := make([]bgp.Peer, len(p.Sessions))
	for i := range p.Sessions {
		out[i] = p.Sessions[i].Peer
	}
	return out
}

// Compute computes this node's BGP plan.
func Compute(in Inputs) Plan {
	var plan Plan
	local, known := in.Node(in.LocalNode)
	sessions := map[string]*config.Peer{}
	for i := range in.Config.Peers() {
		p := &in.Config.Peers()[i]
		if !known || !p.Nodes.Selects(local.Labels) {
			continue
		}
		sessions[p.Name] = p
		plan.Sessions = append(plan.Sessions, session(p))
	}
	if len(sessions) == 0 || !known || !local.Eligible() {
		return plan
	}

	// plan.Paths[index[prefix]] is prefix's path: no object per prefix
	// (this runs on every change, for every IP).
	index := make(map[netip.Prefix]int, len(in.IPs))
	plan.Paths = make([]bgp.Path, 0, len(in.IPs))
	allSessions := sortedKeys(sessions)
	plan.IPs = make([]IPPlan, 0, len(in.IPs))
	nextHops := nextHopMemo{}
	problems := map[config.Problem]bool{}
	ads := bgpAdvertisements(in.Config, local)
	for _, ip := range in.IPs {
		if ip.Pool == "" || (ip.Local && !slices.Contains(ip.EndpointNodes, in.LocalNode)) {
			continue
		}
		ipPlan := IPPlan{IP: ip.Addr, Services: ip.Services, Pool: ip.Pool}
		for _, ad := range ads {
			if !slices.Contains(ad.Pools, ip.Pool) {
				continue
			}
			s := ad.BGP
			bits := s.AggregationLength
			if ip.Addr.Is6() {
				bits = s.AggregationLengthV6
			}
			prefix := netip.PrefixFrom(ip.Addr, bits).Masked()
			peers := s.Peers
			if len(peers) == 0 {
				peers = allSessions
			}
			i, ok := index[prefix]
			if !ok {
				i = len(plan.Paths)
				index[prefix] = i
				plan.Paths = append(plan.Paths, bgp.Path{Prefix: prefix})
			}
			path := &plan.Paths[i]
			for _, name := range peers {
				peer := sessions[name]
				if peer == nil {
					continue // the peer does not select this node
				}
				if peer.Address.Is4() != prefix.Addr().Is4() && !path.NextHop.IsValid() {
					nh, ok := nextHops.get(in.LocalAddresses, peer.Address, prefix.Addr().Is4())
					if !ok {
						problems[noNextHop(in.LocalNode, peer, prefix, ad.Name)] = true
						continue
					}
					path.NextHop = nh
				}
				path.Peers = append(path.Peers, name)
				ipPlan.Peers = append(ipPlan.Peers, name)
			}
			mergeAttributes(path, s, sessions)
			ipPlan.Prefixes = append(ipPlan.Prefixes, prefix)
		}
		if len(ipPlan.Peers) > 0 {
			ipPlan.Prefixes = sortedUnique(ipPlan.Prefixes, comparePrefix)
			ipPlan.Peers = shared(sortedUnique(ipPlan.Peers, strings.Compare), allSessions)
			plan.IPs = append(plan.IPs, ipPlan)
		}
	}
	plan.Paths = slices.DeleteFunc(plan.Paths, func(p bgp.Path) bool { return len(p.Peers) == 0 })
	for i := range plan.Paths {
		p := &plan.Paths[i]
		p.Peers = shared(sortedUnique(p.Peers, strings.Compare), allSessions)
	}
	slices.SortFunc(plan.Paths, func(a, b bgp.Path) int { return comparePrefix(a.Prefix, b.Prefix) })
	// Both were sized for every IP; the plan is kept until the next one.
	plan.Paths, plan.IPs = fitted(plan.Paths), fitted(plan.IPs)
	for p := range problems {
		plan.Problems = append(plan.Problems, p)
	}
	plan.Problems = config.SortProblems(plan.Problems)
	return plan
}

// session turns a configured peer into the announcer's form.
func session(p *config.Peer) Session {
	s := Session{Peer: bgp.Peer{
		Name: p.Name, Address: p.Address, Port: p.Port, MyASN: p.MyASN, PeerASN: p.PeerASN,
		SourceAddress: p.SourceAddress, RouterID: p.RouterID,
		HoldTime: p.HoldTime, KeepaliveTime: p.KeepaliveTime, ConnectTime: p.ConnectTime,
		EBGPMultiHop: p.EBGPMultiHop, GracefulRestart: p.GracefulRestart,
	}, Password: p.Password}
	if b := p.BFD; b != nil {
		s.BFD = &bgp.BFD{ReceiveInterval: b.ReceiveInterval, TransmitInterval: b.TransmitInterval, DetectMultiplier: b.DetectMultiplier, Passive: b.Passive}
	}
	return s
}

// bgpAdvertisements returns the BGPAdvertisements that select the local node.
func bgpAdvertisements(c *config.Config, local facts.Node) []config.Advertisement {
	var out []config.Advertisement
	for _, ad := range c.Advertisements() {
		if ad.Kind == config.KindBGPAdvertisement && ad.BGP != nil && ad.Nodes.Selects(local.Labels) {
			out = append(out, ad)
		}
	}
	return out
}

// mergeAttributes adds an advertisement's attributes to a path: when two
// advertisements announce the same prefix, the route carries the
// communities of both and the higher local preference.
func mergeAttributes(p *bgp.Path, s *config.BGPSettings, sessions map[string]*config.Peer) {
	p.Communities = sortedUnique(append(p.Communities, s.Communities...), cmp.Compare[uint32])
	for _, l := range s.LargeCommunities {
		p.LargeCommunities = append(p.LargeCommunities, bgp.LargeCommunity{GlobalAdmin: l.GlobalAdmin, LocalData1: l.LocalData1, LocalData2: l.LocalData2})
	}
	p.LargeCommunities = sortedUnique(p.LargeCommunities, func(a, b bgp.LargeCommunity) int {
		return cmp.Or(cmp.Compare(a.GlobalAdmin, b.GlobalAdmin), cmp.Compare(a.LocalData1, b.LocalData1), cmp.Compare(a.LocalData2, b.LocalData2))
	})
	if s.LocalPref != nil && (p.LocalPref == nil || *s.LocalPref > *p.LocalPref) {
		v := *s.LocalPref
		p.LocalPref = &v
	}
}

// nextHopMemo remembers nextHop's answers within one Compute: it is asked
// once per path, with the same few questions.
type nextHopMemo map[nextHopQuestion]netip.Addr

type nextHopQuestion struct {
	peer  netip.Addr
	want4 bool
}

func (m nextHopMemo) get(addrs map[string][]netip.Prefix, peer netip.Addr, want4 bool) (netip.Addr, bool) {
	q := nextHopQuestion{peer, want4}
	if a, ok := m[q]; ok {
		return a, a.IsValid()
	}
	a, _ := nextHop(addrs, peer, want4)
	m[q] = a
	return a, a.IsValid()
}

// nextHop returns this node's address of the wanted family on the interface
// facing peer (the one with an address in the same subnet as peer), or, when
// no interface faces it, the first global unicast address of that family by
// interface name.
func nextHop(addrs map[string][]netip.Prefix, peer netip.Addr, want4 bool) (netip.Addr, bool) {
	names := sortedKeys(addrs)
	pick := func(name string) (netip.Addr, bool) {
		for _, p := range addrs[name] {
			a := p.Addr()
			if a.Is4() == want4 && a.IsGlobalUnicast() && !a.IsLinkLocalUnicast() {
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	for _, name := range names {
		if slices.ContainsFunc(addrs[name], func(p netip.Prefix) bool { return p.Masked().Contains(peer) }) {
			if a, ok := pick(name); ok {
				return a, true
			}
		}
	}
	for _, name := range names {
		if a, ok := pick(name); ok {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func noNextHop(node string, peer *config.Peer, prefix netip.Prefix, ad string) config.Problem {
	fam := "IPv6"
	if prefix.Addr().Is4() {
		fam = "IPv4"
	}
	return config.Problem{Kind: config.KindBGPAdvertisement, Name: ad, Field: "spec.peers", Reason: config.ReasonInvalid, Message: fmt.Sprintf(
		"node %s has no %s address to use as next hop, so %s routes are not sent to BGPPeer %q (%s) from it; give the node an %s address on the interface facing the router, or peer over %s",
		node, fam, fam, peer.Name, peer.Address, fam, fam)}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// fitted returns s, or a copy of it without the unused capacity when
// that is over half.
func fitted[E any](s []E) []E {
	if len(s) < cap(s)/2 {
		return slices.Clone(s)
	}
	return s
}

// shared returns all when peers names every session, so that the plan's
// paths and IPs (one each per Service) share one list in the common case.
// Plans are read only.
func shared(peers, all []string) []string {
	if slices.Equal(peers, all) {
		return all
	}
	return peers
}

func sortedUnique[T comparable](in []T, compare func(a, b T) int) []T {
	slices.SortFunc(in, compare)
	return slices.Compact(in)
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}
