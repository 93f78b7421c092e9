package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
)

// NodeSelection is a parsed list of node selectors: a node is selected when
// any selector matches it, and every node is selected when the object gives
// none. A selector that does not parse is reported and selects nothing.
type NodeSelection struct {
	all       bool
	selectors []labels.Selector
}

// Selects reports whether a node with these labels is selected.
func (s NodeSelection) Selects(nodeLabels map[string]string) bool {
	if s.all {
		return true
	}
	for _, sel := range s.selectors {
		if sel.Matches(labels.Set(nodeLabels)) {
			return true
		}
	}
	return false
}

// parseNodeSelection parses sels, reporting each bad one through bad with its
// field.
func parseNodeSelection(sels []metav1.LabelSelector, field string, bad func(field, msg string)) NodeSelection {
	out := NodeSelection{all: len(sels) == 0}
	for i := range sels {
		s, err := metav1.LabelSelectorAsSelector(&sels[i])
		if err != nil {
			bad(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("invalid label selector (%v); it selects no node until fixed", err))
			continue
		}
		out.selectors = append(out.selectors, s)
	}
	return out
}

// BGPSettings are what a BGPAdvertisement adds to the routes of its pools.
type BGPSettings struct {
	// Peers names the BGPPeers that receive the routes, sorted; empty means
	// every peer. Names of missing peers are left out (and reported).
	Peers []string
	// AggregationLength and AggregationLengthV6 are the prefix lengths of the
	// routes announced (32 and 128 announce each IP on its own).
	AggregationLength, AggregationLengthV6 int
	// LocalPref is sent to iBGP peers only; nil sends none.
	LocalPref *uint32
	// Communities are the standard communities, as ASN<<16|value, sorted.
	Communities []uint32
	// LargeCommunities are sorted.
	LargeCommunities []LargeCommunity
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct {
	GlobalAdmin, LocalData1, LocalData2 uint32
}

func (l LargeCommunity) String() string {
	return fmt.Sprintf("%d:%d:%d", l.GlobalAdmin, l.LocalData1, l.LocalData2)
}

func compareLarge(a, b LargeCommunity) int {
	if a.GlobalAdmin != b.GlobalAdmin {
		return cmpU32(a.GlobalAdmin, b.GlobalAdmin)
	}
	if a.LocalData1 != b.LocalData1 {
		return cmpU32(a.LocalData1, b.LocalData1)
	}
	return cmpU32(a.LocalData2, b.LocalData2)
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Peer is a BGPPeer as the speakers use it, with its references resolved.
type Peer struct {
	Name            string
	Address         netip.Addr
	Port            uint16
	MyASN, PeerASN  uint32
	SourceAddress   netip.Addr // invalid when not set
	RouterID        netip.Addr // invalid when not set
	HoldTime        time.Duration
	KeepaliveTime   time.Duration // 0: a third of HoldTime
	ConnectTime     time.Duration
	EBGPMultiHop    bool
	GracefulRestart bool
	// Password locates the TCP MD5 password; nil for none. Namespace and
	// key are defaulted.
	Password *SecretRef
	// BFD is the resolved profile; nil without BFD or when the profile is
	// missing (reported).
	BFD *BFDProfile
	// Nodes selects the nodes that open this session.
	Nodes NodeSelection
}

// IBGP reports whether the session is internal (same ASN on both sides).
func (p *Peer) IBGP() bool { return p.MyASN == p.PeerASN }

// SecretRef names one key of a Secret.
type SecretRef struct {
	Namespace, Name, Key string
}

func (r SecretRef) String() string { return r.Namespace + "/" + r.Name + "[" + r.Key + "]" }

// BFDProfile holds a BFDProfile's timers, defaults applied.
type BFDProfile struct {
	Name             string
	ReceiveInterval  time.Duration
	TransmitInterval time.Duration
	DetectMultiplier uint32
	Passive          bool
	MinimumTTL       uint32
}

func parseBFDProfile(p *v1.BFDProfile) BFDProfile {
	ms := func(v *int32, def int32) time.Duration {
		if v == nil {
			return time.Duration(def) * time.Millisecond
		}
		return time.Duration(*v) * time.Millisecond
	}
	out := BFDProfile{
		Name:             p.Name,
		ReceiveInterval:  ms(p.Spec.ReceiveInterval, 300),
		TransmitInterval: ms(p.Spec.TransmitInterval, 300),
		DetectMultiplier: 3,
		Passive:          p.Spec.PassiveMode,
		MinimumTTL:       254,
	}
	if m := p.Spec.DetectMultiplier; m != nil {
		out.DetectMultiplier = uint32(*m)
	}
	if t := p.Spec.MinimumTTL; t != nil {
		out.MinimumTTL = uint32(*t)
	}
	return out
}

// parsePeer turns a BGPPeer into the model, reporting what the CRD schema
// cannot catch (it also checks again what the schema does, for objects that
// bypassed it).
func parsePeer(p *v1.BGPPeer, profiles map[string]*v1.BFDProfile, namespace string) (Peer, bool, []Problem) {
	var problems []Problem
	bad := func(field, reason, msg string) {
		problems = append(problems, Problem{Kind: KindBGPPeer, Name: p.Name, Field: field, Reason: reason, Message: msg})
	}
	invalid := func(field, msg string) { bad(field, ReasonInvalid, msg) }
	out := Peer{
		Name:            p.Name,
		Port:            179,
		MyASN:           uint32(p.Spec.MyASN),
		PeerASN:         uint32(p.Spec.PeerASN),
		HoldTime:        90 * time.Second,
		ConnectTime:     5 * time.Second,
		EBGPMultiHop:    p.Spec.EBGPMultiHop,
		GracefulRestart: p.Spec.GracefulRestart,
	}
	ok := true
	var err error
	if out.Address, err = netip.ParseAddr(p.Spec.PeerAddress); err != nil || out.Address.Zone() != "" {
		invalid("spec.peerAddress", fmt.Sprintf("%q is not an IP address; write the router's address, e.g. 198.51.100.1 or 2001:db8::1", p.Spec.PeerAddress))
		ok = false
	}
	out.Address = out.Address.Unmap()
	if p.Spec.MyASN < 1 || p.Spec.MyASN > 4294967295 || p.Spec.PeerASN < 1 || p.Spec.PeerASN > 4294967295 {
		invalid("spec.myASN", "ASNs must be between 1 and 4294967295")
		ok = false
	}
	if p.Spec.PeerPort != 0 {
		out.Port = uint16(p.Spec.PeerPort)
	}
	if s := p.Spec.SourceAddress; s != "" {
		if out.SourceAddress, err = netip.ParseAddr(s); err != nil {
			invalid("spec.sourceAddress", fmt.Sprintf("%q is not an IP address", s))
		} else if out.Address.IsValid() && out.SourceAddress.Is4() != out.Address.Is4() {
			invalid("spec.sourceAddress", fmt.Sprintf("%s and the peer address %s are of different families; use a source address of the peer's family", s, out.Address))
			out.SourceAddress = netip.Addr{}
		}
	}
	if s := p.Spec.RouterID; s != "" {
		if out.RouterID, err = netip.ParseAddr(s); err != nil || !out.RouterID.Is4() {
			invalid("spec.routerID", fmt.Sprintf("%q is not an IPv4 address; a BGP router ID is an IPv4 address even on IPv6 sessions", s))
			out.RouterID = netip.Addr{}
		}
	}
	if d := p.Spec.HoldTime; d != nil {
		out.HoldTime = d.Duration
	}
	if d := p.Spec.KeepaliveTime; d != nil {
		out.KeepaliveTime = d.Duration
	}
	if d := p.Spec.ConnectTime; d != nil && d.Duration >= time.Second {
		out.ConnectTime = d.Duration
	}
	if ref := p.Spec.PasswordSecretRef; ref != nil {
		r := SecretRef{Namespace: ref.Namespace, Name: ref.Name, Key: ref.Key}
		if r.Namespace == "" {
			r.Namespace = namespace
		}
		if r.Key == "" {
			r.Key = "password"
		}
		out.Password = &r
	}
	if name := p.Spec.BFDProfile; name != "" {
		if bp := profiles[name]; bp != nil {
			prof := parseBFDProfile(bp)
			out.BFD = &prof
			if p.Spec.EBGPMultiHop {
				bad("spec.bfdProfile", ReasonUnsupported,
					"BFD for a multi-hop session is not supported (the embedded BGP speaker runs single-hop BFD only, RFC 5881); the session runs without BFD: clear spec.ebgpMultiHop for a directly connected router or clear spec.bfdProfile")
				out.BFD = nil
			}
		}
	}
	out.Nodes = parseNodeSelection(p.Spec.NodeSelectors, "spec.nodeSelectors", invalid)
	return out, ok, problems
}

// parseBGPSettings resolves a BGPAdvertisement's peers and communities.
// Problems about them are reported by checkBGPAdvertisement.
func parseBGPSettings(a *v1.BGPAdvertisement, peers map[string]*Peer, aliases map[string]string) BGPSettings {
	out := BGPSettings{AggregationLength: 32, AggregationLengthV6: 128}
	for _, name := range a.Spec.Peers {
		if peers[name] != nil {
			out.Peers = append(out.Peers, name)
		}
	}
	slices.Sort(out.Peers)
	out.Peers = slices.Compact(out.Peers)
	if l := a.Spec.AggregationLength; l != nil {
		out.AggregationLength = int(*l)
	}
	if l := a.Spec.AggregationLengthV6; l != nil {
		out.AggregationLengthV6 = int(*l)
	}
	if lp := a.Spec.LocalPref; lp != nil && *lp >= 0 && *lp <= 4294967295 {
		v := uint32(*lp)
		out.LocalPref = &v
	}
	for _, ref := range a.Spec.Communities {
		value := string(ref)
		if !strings.Contains(value, ":") {
			if value = aliases[value]; value == "" {
				continue // reported by checkBGPAdvertisement
			}
		}
		std, large, ok := ParseCommunity(value)
		switch {
		case !ok:
		case large != nil:
			out.LargeCommunities = append(out.LargeCommunities, *large)
		default:
			out.Communities = append(out.Communities, std)
		}
	}
	slices.Sort(out.Communities)
	out.Communities = slices.Compact(out.Communities)
	slices.SortFunc(out.LargeCommunities, compareLarge)
	out.LargeCommunities = slices.Compact(out.LargeCommunities)
	return out
}

// ParseCommunity parses a community value: standard "A:B" (returned as
// A<<16|B) or large "large:A:B:C".
func ParseCommunity(s string) (uint32, *LargeCommunity, bool) {
	if rest, ok := strings.CutPrefix(s, "large:"); ok {
		parts := strings.Split(rest, ":")
		if len(parts) != 3 {
			return 0, nil, false
		}
		var v [3]uint32
		for i, p := range parts {
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return 0, nil, false
			}
			v[i] = uint32(n)
		}
		return 0, &LargeCommunity{v[0], v[1], v[2]}, true
	}
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, nil, false
	}
	hi, err1 := strconv.ParseUint(a, 10, 16)
	lo, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, nil, false
	}
	return uint32(hi)<<16 | uint32(lo), nil, true
}
