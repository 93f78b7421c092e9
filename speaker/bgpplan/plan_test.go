package bgpplan

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/speaker/facts"
)

// world is a cluster as objects; plan computes node's BGP plan from it.
type world struct {
	pools    []v1.IPAddressPool
	ads      []v1.BGPAdvertisement
	peers    []v1.BGPPeer
	comms    []v1.Community
	nodes    []*corev1.Node
	services []*corev1.Service
	slices   []*discoveryv1.EndpointSlice
	addrs    map[string][]netip.Prefix
}

func base() *world {
	w := &world{
		pools: []v1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"198.51.100.200-198.51.100.239", "2001:db8:1::200-2001:db8:1::2ff"}}}},
		ads:   []v1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "ad"}}},
		peers: []v1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1.BGPPeerSpec{MyASN: 64501, PeerASN: 64500, PeerAddress: "198.51.100.1"}}},
		addrs: map[string][]netip.Prefix{
			"eth0": {netip.MustParsePrefix("198.51.100.11/24"), netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("2001:db8:1::11/64")},
			"mgmt": {netip.MustParsePrefix("203.0.113.11/25")},
		},
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		w.nodes = append(w.nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"rack": "r-" + n}}})
	}
	return w
}

func (w *world) service(name string, local bool, ips ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	if local {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	w.services = append(w.services, s)
	return s
}

func (w *world) plan(node string) Plan {
	cfg := (&config.Builder{}).Build(config.Inputs{Pools: w.pools, BGPAdvertisements: w.ads, BGPPeers: w.peers, Communities: w.comms})
	f := facts.Gather(facts.Objects{LocalNode: node, Config: cfg, Services: facts.Reduce(w.services, facts.ServiceOf), Endpoints: facts.Reduce(w.slices, facts.EndpointsOf), Nodes: w.nodes})
	return Compute(Inputs{Facts: f, LocalAddresses: w.addrs})
}

func prefixes(p Plan) []string {
	var out []string
	for _, path := range p.Paths {
		out = append(out, path.Prefix.String()+">"+strings.Join(path.Peers, ","))
	}
	return out
}

func TestClusterPolicyEveryEligibleNodeAnnounces(t *testing.T) {
	w := base()
	w.service("web", false, "198.51.100.200", "2001:db8:1::200")
	for _, n := range []string{"node1", "node2", "node3"} {
		p := w.plan(n)
		if got := prefixes(p); !slices.Equal(got, []string{"198.51.100.200/32>tor", "2001:db8:1::200/128>tor"}) {
			t.Errorf("%s announces %v", n, got)
		}
		if len(p.Sessions) != 1 || p.Sessions[0].Address.String() != "198.51.100.1" || p.Sessions[0].PeerASN != 64500 {
			t.Errorf("%s sessions %+v", n, p.Sessions)
		}
		// The IPv6 route over an IPv4 session needs the node's IPv6 address.
		if nh := p.Paths[1].NextHop; nh.String() != "2001:db8:1::11" {
			t.Errorf("IPv6 next hop %v", nh)
		}
		if p.Paths[0].NextHop.IsValid() {
			t.Errorf("IPv4 route over an IPv4 session uses the session's address, got %v", p.Paths[0].NextHop)
		}
		if len(p.IPs) != 2 || p.IPs[0].Services[0].Name != "web" {
			t.Errorf("IPs %+v", p.IPs)
		}
	}
	w.nodes[1].Labels[facts.ExcludeLabel] = ""
	w.nodes[2].Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}}
	for _, n := range []string{"node2", "node3"} {
		if p := w.plan(n); len(p.Paths) != 0 || len(p.Sessions) != 1 {
			t.Errorf("ineligible %s: paths %v sessions %d (sessions stay, routes go)", n, prefixes(p), len(p.Sessions))
		}
	}
}

func TestLocalPolicyFollowsEndpoints(t *testing.T) {
	w := base()
	w.service("local", true, "198.51.100.201")
	node := "node2"
	w.slices = []*discoveryv1.EndpointSlice{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "local-1", Labels: map[string]string{discoveryv1.LabelServiceName: "local"}},
		Endpoints:  []discoveryv1.Endpoint{{NodeName: &node}},
	}}
	for n, want := range map[string]int{"node1": 0, "node2": 1, "node3": 0} {
		if got := len(w.plan(n).Paths); got != want {
			t.Errorf("%s: %d paths, want %d", n, got, want)
		}
	}
	w.slices = nil
	if got := len(w.plan("node2").Paths); got != 0 {
		t.Errorf("last endpoint gone: %d paths", got)
	}
}

func TestSelectorsPeersAggregationAndCommunities(t *testing.T) {
	w := base()
	w.peers = append(w.peers,
		v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "rack1-only"}, Spec: v1.BGPPeerSpec{MyASN: 64501, PeerASN: 64501, PeerAddress: "198.51.100.2",
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "r-node1"}}}}},
		v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: v1.BGPPeerSpec{MyASN: 64501, PeerASN: 64500, PeerAddress: "2001:db8:1::1"}})
	agg := int32(24)
	lp := int64(150)
	w.ads = []v1.BGPAdvertisement{
		{ObjectMeta: metav1.ObjectMeta{Name: "aggregate"}, Spec: v1.BGPAdvertisementSpec{Peers: []string{"tor"}, AggregationLength: &agg, Communities: []v1.CommunityRef{"64500:1", "big"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ibgp"}, Spec: v1.BGPAdvertisementSpec{Peers: []string{"rack1-only"}, LocalPref: &lp, Communities: []v1.CommunityRef{"64500:2"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: v1.BGPAdvertisementSpec{Peers: []string{"v6"}}},
	}
	w.comms = []v1.Community{{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: v1.CommunitySpec{Communities: []v1.CommunityAlias{{Name: "big", Value: "large:64500:7:8"}}}}}
	w.service("a", false, "198.51.100.200", "2001:db8:1::201")
	w.service("b", false, "198.51.100.230")

	p1 := w.plan("node1")
	// The v6 advertisement covers every pool: IPv4 host routes also go to the
	// IPv6 peer, next hop the node's IPv4 address.
	want := []string{"198.51.100.0/24>tor", "198.51.100.200/32>rack1-only,v6", "198.51.100.230/32>rack1-only,v6", "2001:db8:1::201/128>rack1-only,tor,v6"}
	if got := prefixes(p1); !slices.Equal(got, want) {
		t.Fatalf("node1 paths\n got %v\nwant %v", got, want)
	}
	agg24 := p1.Paths[0]
	if !slices.Equal(agg24.Communities, []uint32{64500<<16 | 1}) || len(agg24.LargeCommunities) != 1 || agg24.LargeCommunities[0].LocalData1 != 7 || agg24.LocalPref != nil {
		t.Errorf("aggregate attributes %+v", agg24)
	}
	if host := p1.Paths[1]; host.LocalPref == nil || *host.LocalPref != 150 || !slices.Equal(host.Communities, []uint32{64500<<16 | 2}) {
		t.Errorf("iBGP host route attributes %+v", host)
	}
	if names := sessionNames(p1); !slices.Equal(names, []string{"rack1-only", "tor", "v6"}) {
		t.Errorf("node1 sessions %v", names)
	}
	p2 := w.plan("node2")
	if names := sessionNames(p2); !slices.Equal(names, []string{"tor", "v6"}) {
		t.Errorf("node2 sessions %v: the rack1 peer selects node1 only", names)
	}
	// The IPv4 address of a dual-stack Service went over both IPv4 routes.
	if ip := p1.IPs[0]; ip.IP.String() != "198.51.100.200" || len(ip.Prefixes) != 2 || !slices.Equal(ip.Peers, []string{"rack1-only", "tor", "v6"}) || p1.Paths[1].NextHop.String() != "198.51.100.11" {
		t.Errorf("IP plan %+v", ip)
	}
}

func sessionNames(p Plan) []string {
	var out []string
	for _, s := range p.Sessions {
		out = append(out, s.Name)
	}
	return out
}

func TestNoAddressOfTheFamilyIsAProblemAndTheRestStays(t *testing.T) {
	w := base()
	w.addrs = map[string][]netip.Prefix{"eth0": {netip.MustParsePrefix("198.51.100.11/24")}}
	w.service("a", false, "198.51.100.200", "2001:db8:1::200")
	p := w.plan("node1")
	if got := prefixes(p); !slices.Equal(got, []string{"198.51.100.200/32>tor"}) {
		t.Errorf("paths %v: the IPv4 route must stay", got)
	}
	if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Message, "node node1 has no IPv6 address to use as next hop") {
		t.Errorf("problems %v", p.Problems)
	}
}

func TestPasswordRefAndBFDReachTheSession(t *testing.T) {
	w := base()
	w.peers[0].Spec.PasswordSecretRef = &v1.SecretKeyRef{Name: "bgp-pw", Namespace: "portico-system"}
	w.peers[0].Spec.BFDProfile = "fast"
	p := w.plan("node1")
	if p.Sessions[0].Password == nil || p.Sessions[0].Password.Name != "bgp-pw" || p.Sessions[0].Peer.Password != "" {
		t.Errorf("session %+v", p.Sessions[0])
	}
	if p.Sessions[0].BFD != nil {
		t.Error("a missing BFD profile must not give BFD settings")
	}
}
