package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
)

func peerObj(name, addr string, my, peer v1.ASN) v1.BGPPeer {
	return v1.BGPPeer{ObjectMeta: meta(name, 0), Spec: v1.BGPPeerSpec{MyASN: my, PeerASN: peer, PeerAddress: addr}}
}

func TestPeerModelDefaultsAndReferences(t *testing.T) {
	var b Builder
	p := peerObj("tor", "2001:db8:1::1", 64501, 64500)
	p.Spec.BFDProfile = "fast"
	p.Spec.PasswordSecretRef = &v1.SecretKeyRef{Name: "pw"}
	p.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "a"}}}
	rx := int32(100)
	c := b.Build(Inputs{
		BGPPeers:    []v1.BGPPeer{p},
		BFDProfiles: []v1.BFDProfile{{ObjectMeta: meta("fast", 0), Spec: v1.BFDProfileSpec{ReceiveInterval: &rx}}},
		Namespace:   "portico-system",
	})
	if len(c.Problems()) != 0 {
		t.Fatalf("problems: %v", c.Problems())
	}
	peers := c.Peers()
	if len(peers) != 1 {
		t.Fatalf("peers: %+v", peers)
	}
	got := peers[0]
	if got.Address.String() != "2001:db8:1::1" || got.Port != 179 || got.MyASN != 64501 || got.PeerASN != 64500 || got.IBGP() {
		t.Errorf("peer: %+v", got)
	}
	if got.HoldTime != 90*time.Second || got.ConnectTime != 5*time.Second {
		t.Errorf("timers: hold %v connect %v", got.HoldTime, got.ConnectTime)
	}
	if got.Password == nil || *got.Password != (SecretRef{Namespace: "portico-system", Name: "pw", Key: "password"}) {
		t.Errorf("password ref: %+v", got.Password)
	}
	if got.BFD == nil || got.BFD.ReceiveInterval != 100*time.Millisecond || got.BFD.TransmitInterval != 300*time.Millisecond || got.BFD.DetectMultiplier != 3 {
		t.Errorf("bfd: %+v", got.BFD)
	}
	if !got.Nodes.Selects(map[string]string{"rack": "a"}) || got.Nodes.Selects(map[string]string{"rack": "b"}) {
		t.Error("node selectors not applied")
	}
}

func TestBadPeersAreReportedAndLeftOut(t *testing.T) {
	var b Builder
	bad := peerObj("bad", "not-an-ip", 64501, 64500)
	multi := peerObj("multi", "198.51.100.1", 64501, 64500)
	multi.Spec.EBGPMultiHop = true
	multi.Spec.BFDProfile = "fast"
	fam := peerObj("fam", "198.51.100.1", 64501, 64500)
	fam.Spec.SourceAddress = "2001:db8::5"
	c := b.Build(Inputs{BGPPeers: []v1.BGPPeer{bad, multi, fam}, BFDProfiles: []v1.BFDProfile{{ObjectMeta: meta("fast", 0)}}})
	wantProblem(t, c, KindBGPPeer, "bad", ReasonInvalid, `"not-an-ip" is not an IP address`)
	wantProblem(t, c, KindBGPPeer, "multi", ReasonUnsupported, "single-hop BFD only")
	wantProblem(t, c, KindBGPPeer, "fam", ReasonInvalid, "different families")
	var names []string
	for _, p := range c.Peers() {
		names = append(names, p.Name)
		if p.Name == "multi" && p.BFD != nil {
			t.Error("multi-hop peer must run without BFD")
		}
	}
	if !slices.Equal(names, []string{"fam", "multi"}) {
		t.Errorf("peers in effect: %v", names)
	}
}

func TestBGPAdvertisementSettings(t *testing.T) {
	var b Builder
	ad := v1.BGPAdvertisement{ObjectMeta: meta("bgp", 0)}
	ad.Spec.IPAddressPools = []string{"p"}
	ad.Spec.Peers = []string{"ibgp", "ghost"}
	lp := int64(200)
	ad.Spec.LocalPref = &lp
	agg := int32(24)
	ad.Spec.AggregationLength = &agg
	ad.Spec.Communities = []v1.CommunityRef{"64500:100", "large:64500:1:2", "no-export", "nope"}
	ad.Spec.NodeSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Bogus"}}}}
	comm := v1.Community{ObjectMeta: meta("aliases", 0), Spec: v1.CommunitySpec{Communities: []v1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}}}}
	c := b.Build(Inputs{
		Pools:             []v1.IPAddressPool{pool("p", 0, "198.51.100.0/24")},
		BGPPeers:          []v1.BGPPeer{peerObj("ibgp", "198.51.100.1", 64500, 64500)},
		BGPAdvertisements: []v1.BGPAdvertisement{ad},
		Communities:       []v1.Community{comm},
	})
	ps := c.ProblemsFor(KindBGPAdvertisement, "bgp")
	for i, want := range []string{`spec.communities[3]: community alias "nope"`, "spec.nodeSelectors[0]: invalid label selector", `spec.peers[1]: BGPPeer "ghost"`} {
		if len(ps) != 3 || !strings.Contains(ps[i].Error(), want) {
			t.Fatalf("problems %v, want %d: %q", ps, i, want)
		}
	}
	if slices.ContainsFunc(ps, func(p Problem) bool { return p.Field == "spec.localPref" }) {
		t.Errorf("localPref to an iBGP peer is fine: %v", ps)
	}
	ads := c.Advertisements()
	if len(ads) != 1 || ads[0].BGP == nil {
		t.Fatalf("ads: %+v", ads)
	}
	s := ads[0].BGP
	if !slices.Equal(s.Peers, []string{"ibgp"}) || s.AggregationLength != 24 || s.AggregationLengthV6 != 128 || s.LocalPref == nil || *s.LocalPref != 200 {
		t.Errorf("settings: %+v", s)
	}
	if !slices.Equal(s.Communities, []uint32{64500<<16 | 100, 65535<<16 | 65281}) {
		t.Errorf("communities: %v", s.Communities)
	}
	if len(s.LargeCommunities) != 1 || s.LargeCommunities[0] != (LargeCommunity{64500, 1, 2}) {
		t.Errorf("large: %v", s.LargeCommunities)
	}
	if ads[0].Nodes.Selects(map[string]string{"x": "y"}) {
		t.Error("an advertisement whose only node selector is invalid must select no node")
	}
}

func TestLocalPrefOnEBGPIsReported(t *testing.T) {
	var b Builder
	ad := v1.BGPAdvertisement{ObjectMeta: meta("bgp", 0)}
	lp := int64(200)
	ad.Spec.LocalPref = &lp
	c := b.Build(Inputs{
		BGPPeers:          []v1.BGPPeer{peerObj("tor", "198.51.100.1", 64501, 64500)},
		BGPAdvertisements: []v1.BGPAdvertisement{ad},
	})
	p := wantProblem(t, c, KindBGPAdvertisement, "bgp", ReasonInvalid, "eBGP peers tor")
	if p.Field != "spec.localPref" {
		t.Errorf("field %q", p.Field)
	}
}

func TestParseCommunity(t *testing.T) {
	for _, tc := range []struct {
		in    string
		std   uint32
		large *LargeCommunity
		ok    bool
	}{
		{"64500:100", 64500<<16 | 100, nil, true},
		{"0:0", 0, nil, true},
		{"65536:1", 0, nil, false},
		{"large:4294967295:0:7", 0, &LargeCommunity{4294967295, 0, 7}, true},
		{"large:1:2", 0, nil, false},
		{"alias", 0, nil, false},
	} {
		std, large, ok := ParseCommunity(tc.in)
		if ok != tc.ok || std != tc.std || (large == nil) != (tc.large == nil) || (large != nil && *large != *tc.large) {
			t.Errorf("%q: got %d %v %v", tc.in, std, large, ok)
		}
	}
	if !strings.Contains(LargeCommunity{1, 2, 3}.String(), "1:2:3") {
		t.Error("large community string")
	}
}
