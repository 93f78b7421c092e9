package config

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func meta(name string, age int) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Generation: 1,
		CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Second))}
}

func pool(name string, age int, addrs ...string) v1.IPAddressPool {
	p := v1.IPAddressPool{ObjectMeta: meta(name, age)}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1.AddressEntry(a))
	}
	return p
}

func i32(v int32) *int32 { return &v }

// wantProblem asserts exactly one problem on the object whose message contains
// every fragment, and returns it.
func wantProblem(t *testing.T, c *Config, kind, name, reason string, fragments ...string) Problem {
	t.Helper()
	ps := c.ProblemsFor(kind, name)
	if len(ps) != 1 {
		t.Fatalf("%s %s: got %d problems %v, want 1", kind, name, len(ps), ps)
	}
	if ps[0].Reason != reason {
		t.Errorf("reason %q, want %q", ps[0].Reason, reason)
	}
	for _, f := range fragments {
		if !strings.Contains(ps[0].Error(), f) {
			t.Errorf("problem %q does not mention %q", ps[0].Error(), f)
		}
	}
	return ps[0]
}

func TestOverlappingPoolsReportedOnBoth(t *testing.T) {
	var b Builder
	c := b.Build(Inputs{Pools: []v1.IPAddressPool{pool("b-new", 10, "192.0.2.128/25"), pool("a-old", 0, "192.0.2.0/24")}})
	wantProblem(t, c, KindIPAddressPool, "a-old", ReasonOverlap, `overlaps pool "b-new" on 192.0.2.128/25`, "this pool is older")
	wantProblem(t, c, KindIPAddressPool, "b-new", ReasonOverlap, `"a-old" is older and keeps those addresses`)
	if len(c.Pools()) != 2 {
		t.Fatalf("both pools must stay in effect, got %d", len(c.Pools()))
	}
}

func TestIPv6RangeReversed(t *testing.T) {
	var b Builder
	c := b.Build(Inputs{Pools: []v1.IPAddressPool{pool("v6", 0, "2001:db8::10-2001:db8::1"), pool("ok", 0, "192.0.2.0/24")}})
	p := wantProblem(t, c, KindIPAddressPool, "v6", ReasonInvalid, "reversed", "did you mean 2001:db8::1-2001:db8::10")
	if p.Field != "spec.addresses[0]" {
		t.Errorf("field %q, want spec.addresses[0]", p.Field)
	}
	if _, ok := c.Pool("v6"); ok {
		t.Error("a pool that was never valid must not be in effect")
	}
	if _, ok := c.Pool("ok"); !ok {
		t.Error("the valid pool must stay in effect")
	}
}

func TestInvalidEditKeepsLastValidPool(t *testing.T) {
	var b Builder
	p := pool("p", 0, "2001:db8::/120")
	b.Build(Inputs{Pools: []v1.IPAddressPool{p}})
	p.Generation = 2
	p.Spec.Addresses = []v1.AddressEntry{"2001:db8::ff-2001:db8::1"}
	c := b.Build(Inputs{Pools: []v1.IPAddressPool{p}})
	got, ok := c.Pool("p")
	if !ok || !got.Stale || got.Ranges[0].String() != "2001:db8::/120" {
		t.Fatalf("pool in effect = %+v, %v; want the last valid version, stale", got, ok)
	}
	if n := len(c.ProblemsFor(KindIPAddressPool, "p")); n != 2 {
		t.Fatalf("want the parse problem and the stale notice, got %v", c.ProblemsFor(KindIPAddressPool, "p"))
	}
}

func TestPoolsAreParsedOncePerGeneration(t *testing.T) {
	var b Builder
	in := Inputs{Pools: []v1.IPAddressPool{pool("a", 0, "192.0.2.0/24"), pool("b", 1, "198.51.100.0/24")}}
	for range 5 {
		b.Build(in)
	}
	in.Pools[1].Generation = 2
	in.Pools[1].Labels = map[string]string{"x": "y"} // labels do not need a re-parse
	c := b.Build(in)
	if b.Parses("a") != 1 || b.Parses("b") != 2 {
		t.Fatalf("parses a=%d b=%d, want 1 and 2", b.Parses("a"), b.Parses("b"))
	}
	if got, _ := c.Pool("b"); got.Labels["x"] != "y" {
		t.Fatal("labels not current")
	}
}

func TestAdvertisementNamesMissingPool(t *testing.T) {
	var b Builder
	l2 := v1.L2Advertisement{ObjectMeta: meta("l2", 0)}
	l2.Spec.IPAddressPools = []string{"real", "ghost"}
	c := b.Build(Inputs{Pools: []v1.IPAddressPool{pool("real", 0, "192.0.2.0/24")}, L2Advertisements: []v1.L2Advertisement{l2}})
	p := wantProblem(t, c, KindL2Advertisement, "l2", ReasonMissingReference, `IPAddressPool "ghost" does not exist`)
	if p.Field != "spec.ipAddressPools[1]" {
		t.Errorf("field %q", p.Field)
	}
	if ads := c.Advertisements(); len(ads) != 1 || len(ads[0].Pools) != 1 || ads[0].Pools[0] != "real" {
		t.Fatalf("advertisement must still cover the existing pool: %+v", ads)
	}
}

func TestPeerNamesMissingBFDProfileAndSecret(t *testing.T) {
	var b Builder
	peer := v1.BGPPeer{ObjectMeta: meta("router", 0), Spec: v1.BGPPeerSpec{MyASN: 64501, PeerASN: 64500, PeerAddress: "198.51.100.1"}}
	peer.Spec.BFDProfile = "fast"
	peer.Spec.PasswordSecretRef = &v1.SecretKeyRef{Name: "bgp-pass"}
	in := Inputs{BGPPeers: []v1.BGPPeer{peer}, Secrets: map[string][]string{}, Namespace: "portico-system"}
	c := b.Build(in)
	ps := c.ProblemsFor(KindBGPPeer, "router")
	if len(ps) != 2 || !strings.Contains(ps[0].Message, `BFDProfile "fast" does not exist`) ||
		!strings.Contains(ps[1].Message, `Secret portico-system/bgp-pass does not exist`) {
		t.Fatalf("problems = %v", ps)
	}
	in.BFDProfiles = []v1.BFDProfile{{ObjectMeta: meta("fast", 0)}}
	in.Secrets["portico-system/bgp-pass"] = []string{"pw"}
	c = b.Build(in)
	wantProblem(t, c, KindBGPPeer, "router", ReasonMissingReference, `has no key "password"`)
}

func TestDuplicateCommunityAlias(t *testing.T) {
	var b Builder
	older := v1.Community{ObjectMeta: meta("older", 0)}
	older.Spec.Communities = []v1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}}
	newer := v1.Community{ObjectMeta: meta("newer", 5)}
	newer.Spec.Communities = []v1.CommunityAlias{{Name: "ok", Value: "1:1"}, {Name: "no-export", Value: "1:2"}}
	c := b.Build(Inputs{Communities: []v1.Community{newer, older}})
	p := wantProblem(t, c, KindCommunity, "newer", ReasonDuplicate, `alias "no-export" is already defined by Community "older"`)
	if p.Field != "spec.communities[1]" {
		t.Errorf("field %q", p.Field)
	}
	if len(c.ProblemsFor(KindCommunity, "older")) != 0 {
		t.Error("the older object wins and has no problem")
	}
}

func TestAggregationLengthShorterThanPoolPrefix(t *testing.T) {
	var b Builder
	adv := v1.BGPAdvertisement{ObjectMeta: meta("agg", 0)}
	adv.Spec.AggregationLength = i32(24)
	adv.Spec.AggregationLengthV6 = i32(64)
	pools := []v1.IPAddressPool{pool("p", 0, "192.0.2.0/26", "2001:db8::/64")}
	c := b.Build(Inputs{Pools: pools, BGPAdvertisements: []v1.BGPAdvertisement{adv}})
	wantProblem(t, c, KindBGPAdvertisement, "agg", ReasonAggregationLength, "24 is shorter than the prefix 192.0.2.0/26", "use at least 26")
	adv.Spec.AggregationLength = i32(26)
	c = b.Build(Inputs{Pools: pools, BGPAdvertisements: []v1.BGPAdvertisement{adv}})
	if len(c.Problems()) != 0 {
		t.Fatalf("unexpected problems %v", c.Problems())
	}
}

func TestBGPAdvertisementMissingPeerAndAlias(t *testing.T) {
	var b Builder
	adv := v1.BGPAdvertisement{ObjectMeta: meta("adv", 0)}
	adv.Spec.Peers = []string{"nope"}
	adv.Spec.Communities = []v1.CommunityRef{"64500:1", "gold"}
	c := b.Build(Inputs{BGPAdvertisements: []v1.BGPAdvertisement{adv}})
	ps := c.ProblemsFor(KindBGPAdvertisement, "adv")
	if len(ps) != 2 || ps[0].Field != "spec.communities[1]" || ps[1].Field != "spec.peers[0]" {
		t.Fatalf("problems = %v", ps)
	}
}

func TestPinnedPoolSelectors(t *testing.T) {
	p := pool("pinned", 0, "192.0.2.0/24")
	p.Spec.Allocation = &v1.ServiceAllocation{Priority: 3, Namespaces: []string{"b", "a"},
		ServiceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}
	got, problems := ParsePool(&p)
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	if !got.AutoAssign || got.Priority != 3 || got.Namespaces[0] != "a" {
		t.Fatalf("pool = %+v", got)
	}
	if !got.ServiceSelector.Matches(map[string]string{"tier": "web"}) || got.ServiceSelector.Matches(nil) {
		t.Fatal("service selector does not match as written")
	}
	p.Spec.Allocation.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}
	if _, problems := ParsePool(&p); len(problems) != 1 || problems[0].Field != "spec.allocation.namespaceSelector" {
		t.Fatalf("problems = %v", problems)
	}
}
