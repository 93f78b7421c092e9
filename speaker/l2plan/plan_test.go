package l2plan

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/internal/election"
	"github.com/portico-lb/portico/internal/layer2"
	"github.com/portico-lb/portico/speaker/facts"
)

var dataNet = netip.MustParsePrefix("192.0.2.0/24")

// world is what a speaker's cache and memberlist hold, as objects; compute
// gathers the facts and builds the configuration from it as the speaker does.
type world struct {
	LocalNode, LBClass string
	LocalInterfaces    []election.Interface
	LocalLinks         []string
	Members            []Member
	Services           []*corev1.Service
	EndpointSlices     []*discoveryv1.EndpointSlice
	Nodes              []*corev1.Node
	Pools              []*porticov1.IPAddressPool
	L2Advertisements   []*porticov1.L2Advertisement
}

func compute(w world) Plan {
	var ci config.Inputs
	for _, p := range w.Pools {
		ci.Pools = append(ci.Pools, *p)
	}
	for _, a := range w.L2Advertisements {
		ci.L2Advertisements = append(ci.L2Advertisements, *a)
	}
	f := facts.Gather(facts.Objects{LocalNode: w.LocalNode, LBClass: w.LBClass, Config: (&config.Builder{}).Build(ci),
		Services: facts.Reduce(w.Services, facts.ServiceOf), Endpoints: facts.Reduce(w.EndpointSlices, facts.EndpointsOf), Nodes: w.Nodes})
	return Compute(Inputs{Facts: f, LocalInterfaces: w.LocalInterfaces, LocalLinks: w.LocalLinks, Members: w.Members})
}

func eth1(carrier bool) []election.Interface {
	return []election.Interface{{Name: "eth1", Carrier: carrier, Prefixes: []netip.Prefix{dataNet}}}
}

func k8sNode(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func svc(ns, name string, ips ...string) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func poolOf(name string, addrs ...string) *porticov1.IPAddressPool {
	p := &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, porticov1.AddressEntry(a))
	}
	return p
}

func ad(name string, pools []string, ifaces []string, nodeSel ...metav1.LabelSelector) *porticov1.L2Advertisement {
	return &porticov1.L2Advertisement{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: porticov1.L2AdvertisementSpec{
			PoolAndNodeSelection: porticov1.PoolAndNodeSelection{IPAddressPools: pools, NodeSelectors: nodeSel},
			Interfaces:           ifaces,
		},
	}
}

// base is three nodes, all alive and ready with carrier on eth1, one pool
// and one advertisement, seen from node-a.
func base() world {
	in := world{
		LocalNode:        "node-a",
		LocalInterfaces:  eth1(true),
		LocalLinks:       []string{"eth0", "eth1", "lo"},
		Pools:            []*porticov1.IPAddressPool{poolOf("pool", "192.0.2.100-192.0.2.199", "2001:db8::/120")},
		L2Advertisements: []*porticov1.L2Advertisement{ad("l2", []string{"pool"}, nil)},
	}
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		in.Nodes = append(in.Nodes, k8sNode(n, map[string]string{"zone": "z-" + n}))
		in.Members = append(in.Members, Member{Name: n, Meta: Meta{Ready: true, Interfaces: eth1(true)}})
	}
	return in
}

// viewFrom returns in as seen by another node (its local interfaces are
// what it published).
func viewFrom(in world, node string) world {
	in.LocalNode = node
	for _, m := range in.Members {
		if m.Name == node {
			in.LocalInterfaces = m.Meta.Interfaces
		}
	}
	return in
}

func winners(p Plan) map[string]string {
	out := map[string]string{}
	for _, ipp := range p.IPs {
		out[ipp.IP.String()] = ipp.Result.Node
	}
	return out
}

func TestTwelveServicesSpreadAndEveryNodeAgrees(t *testing.T) {
	in := base()
	for i := range 12 {
		in.Services = append(in.Services, svc("ns", fmt.Sprintf("s%02d", i), fmt.Sprintf("192.0.2.%d", 100+i)))
	}
	plans := map[string]Plan{}
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		plans[n] = compute(viewFrom(in, n))
	}
	want := winners(plans["node-a"])
	perNode := map[string]int{}
	owned := 0
	for n, p := range plans {
		if got := winners(p); !reflect.DeepEqual(got, want) {
			t.Errorf("%s elects %v, node-a %v", n, got, want)
		}
		owned += len(p.Owned)
		for ip, ifs := range p.Owned {
			if want[ip.String()] != n || !slices.Equal(ifs, []string{"eth1"}) {
				t.Errorf("%s owns %s on %v but the winner is %s", n, ip, ifs, want[ip.String()])
			}
		}
	}
	for _, w := range want {
		perNode[w]++
	}
	if owned != 12 || len(perNode) != 3 {
		t.Errorf("12 IPs: %d owned in total, spread %v", owned, perNode)
	}
}

func TestNotReadyOrDeadMemberLosesItsIPs(t *testing.T) {
	in := base()
	for i := range 30 {
		in.Services = append(in.Services, svc("ns", fmt.Sprintf("s%02d", i), fmt.Sprintf("192.0.2.%d", 100+i)))
	}
	before := winners(compute(in))
	for _, mutate := range []func(*world){
		func(in *world) { in.Members[1].Meta.Ready = false },                   // node-b not ready
		func(in *world) { in.Members = slices.Delete(in.Members, 1, 2) },       // node-b dead
		func(in *world) { in.Members[1].Meta.Interfaces = eth1(false) },        // node-b lost carrier
		func(in *world) { in.Nodes[1].Labels[facts.ExcludeLabel] = "" },        // node-b excluded
		func(in *world) { in.Nodes[1].Status.Conditions = networkUnavailable }, // node-b NetworkUnavailable
	} {
		mod := base()
		mod.Services = in.Services
		mod.Nodes = []*corev1.Node{in.Nodes[0].DeepCopy(), in.Nodes[1].DeepCopy(), in.Nodes[2].DeepCopy()}
		mod.Members = slices.Clone(in.Members)
		mutate(&mod)
		after := winners(compute(mod))
		for ip, w := range before {
			switch {
			case after[ip] == "node-b":
				t.Errorf("%s still on node-b", ip)
			case w != "node-b" && after[ip] != w:
				t.Errorf("%s moved from %s to %s", ip, w, after[ip])
			case after[ip] == "":
				t.Errorf("%s lost its announcer", ip)
			}
		}
	}
}

var networkUnavailable = []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}}

func TestLocalCarrierLossStepsBackAtOnce(t *testing.T) {
	in := base()
	for i := range 20 {
		in.Services = append(in.Services, svc("ns", fmt.Sprintf("s%02d", i), fmt.Sprintf("192.0.2.%d", 100+i)))
	}
	if len(compute(in).Owned) == 0 {
		t.Fatal("node-a owns nothing of 20 IPs")
	}
	// The member meta still says carrier (not gossiped yet); the local view
	// wins for the local node.
	in.LocalInterfaces = eth1(false)
	if p := compute(in); len(p.Owned) != 0 {
		t.Errorf("node-a without carrier owns %v", p.Owned)
	}
}

func TestLocalTrafficPolicyFollowsEndpoints(t *testing.T) {
	in := base()
	s := svc("ns", "local", "192.0.2.150")
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	in.Services = []*corev1.Service{s}
	slice := func(nodes ...string) *discoveryv1.EndpointSlice {
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "local-x",
			Labels: map[string]string{discoveryv1.LabelServiceName: "local"}}}
		for _, n := range nodes {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{NodeName: &n})
		}
		notReady := false
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{NodeName: new("node-a"), Conditions: discoveryv1.EndpointConditions{Ready: &notReady}})
		return es
	}
	for _, n := range []string{"node-b", "node-c"} {
		in.EndpointSlices = []*discoveryv1.EndpointSlice{slice(n)}
		if got := winners(compute(in))["192.0.2.150"]; got != n {
			t.Errorf("endpoint on %s: winner %q", n, got)
		}
	}
	in.EndpointSlices = nil
	p := compute(in)
	if r := p.IPs[0].Result; r.Elected() || r.Reason != election.ReasonNoReadyEndpoint {
		t.Errorf("no endpoints: %+v", r)
	}
}

func TestNodeSelectorsAndPoolsChooseCandidates(t *testing.T) {
	in := base()
	in.Pools = append(in.Pools, poolOf("bgp-only", "203.0.113.0/24"))
	in.L2Advertisements = []*porticov1.L2Advertisement{
		ad("only-c", []string{"pool"}, nil, metav1.LabelSelector{MatchLabels: map[string]string{"zone": "z-node-c"}}),
	}
	in.Services = []*corev1.Service{svc("ns", "a", "192.0.2.100", "2001:db8::5"), svc("ns", "b", "203.0.113.5"), svc("ns", "c", "198.51.100.1")}
	p := compute(in)
	if got := winners(p); !reflect.DeepEqual(got, map[string]string{"192.0.2.100": "node-c", "2001:db8::5": "node-c"}) {
		t.Errorf("winners %v: only pool IPs with an L2Advertisement, only node-c", got)
	}
}

func TestMissingInterfaceIsAProblemAndNothingElseMoves(t *testing.T) {
	in := base()
	in.Services = []*corev1.Service{svc("ns", "a", "192.0.2.100"), svc("ns", "b", "192.0.2.101")}
	before := winners(compute(in))
	in.Pools = append(in.Pools, poolOf("other", "198.51.100.0/24"))
	in.L2Advertisements = append(in.L2Advertisements, ad("typo", []string{"other"}, []string{"eht1"}))
	in.Services = append(in.Services, svc("ns", "c", "198.51.100.7"))
	p := compute(in)
	if len(p.Problems) != 1 || p.Problems[0].Name != "typo" || p.Problems[0].Field != "spec.interfaces" ||
		!strings.Contains(p.Problems[0].Message, `"eht1" does not exist on node node-a`) {
		t.Errorf("problems %v", p.Problems)
	}
	after := winners(p)
	for ip, w := range before {
		if after[ip] != w {
			t.Errorf("%s moved from %s to %s", ip, w, after[ip])
		}
	}
	if r := p.IPs[2].Result; r.Elected() || r.Reason != election.ReasonNoCarrier {
		t.Errorf("the typo'd advertisement's IP: %+v", r)
	}
}

func TestSharedIPAndClassFilter(t *testing.T) {
	in := base()
	a, b := svc("ns", "a", "192.0.2.120"), svc("ns", "b", "192.0.2.120")
	classed := svc("ns", "other-class", "192.0.2.121")
	classed.Spec.LoadBalancerClass = new("example.com/other")
	clusterIP := svc("ns", "cip", "192.0.2.122")
	clusterIP.Spec.Type = corev1.ServiceTypeClusterIP
	in.Services = []*corev1.Service{b, classed, a, clusterIP}
	p := compute(in)
	if len(p.IPs) != 1 || !slices.Equal(p.IPs[0].Services, []types.NamespacedName{{Namespace: "ns", Name: "a"}, {Namespace: "ns", Name: "b"}}) {
		t.Fatalf("IPs %+v", p.IPs)
	}
	in.LBClass = "example.com/other"
	if p := compute(in); len(p.IPs) != 1 || p.IPs[0].Services[0].Name != "other-class" {
		t.Errorf("with class: %+v", p.IPs)
	}
}

func TestOverlappingPoolsUseAnnotationThenAge(t *testing.T) {
	in := base()
	older, newer := poolOf("older", "192.0.2.0/24"), poolOf("newer", "192.0.2.128/25")
	older.CreationTimestamp = metav1.Unix(100, 0)
	newer.CreationTimestamp = metav1.Unix(200, 0)
	in.Pools = []*porticov1.IPAddressPool{newer, older}
	in.L2Advertisements = []*porticov1.L2Advertisement{ad("newer-only", []string{"newer"}, nil)}
	s := svc("ns", "a", "192.0.2.200")
	in.Services = []*corev1.Service{s}
	if p := compute(in); len(p.IPs) != 0 {
		t.Errorf("IP of the older pool announced by the newer pool's advertisement: %+v", p.IPs)
	}
	s.Annotations = map[string]string{"portico.dev/ip-allocated-from-pool": "newer"}
	if p := compute(in); len(p.IPs) != 1 || p.IPs[0].Pool != "newer" {
		t.Errorf("annotated: %+v", p.IPs)
	}
}

func TestComputeIgnoresInputOrder(t *testing.T) {
	in := base()
	for i := range 40 {
		s := svc(fmt.Sprintf("ns%d", i%3), fmt.Sprintf("s%02d", i), fmt.Sprintf("192.0.2.%d", 100+i), fmt.Sprintf("2001:db8::%x", i))
		if i%4 == 0 {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: s.Name}},
				Endpoints:  []discoveryv1.Endpoint{{NodeName: new([]string{"node-a", "node-b", "node-c"}[i%3])}},
			})
		}
		in.Services = append(in.Services, s)
	}
	in.L2Advertisements = append(in.L2Advertisements, ad("second", nil, []string{"eth1"}))
	want := compute(in)
	rng := rand.New(rand.NewPCG(7, 9))
	for range 10 {
		sh := in
		sh.Services = shuffle(rng, in.Services)
		sh.EndpointSlices = shuffle(rng, in.EndpointSlices)
		sh.Nodes = shuffle(rng, in.Nodes)
		sh.Members = shuffle(rng, in.Members)
		sh.L2Advertisements = shuffle(rng, in.L2Advertisements)
		if got := compute(sh); !reflect.DeepEqual(got, want) {
			t.Fatal("a permutation of the inputs changed the plan")
		}
	}
}

func shuffle[T any](rng *rand.Rand, in []T) []T {
	out := slices.Clone(in)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func TestAnnouncementsOwnerAndDeputy(t *testing.T) {
	in := base()
	in.Services = []*corev1.Service{svc("ns", "a", "192.0.2.100")}
	in.L2Advertisements = append(in.L2Advertisements, ad("nobody", []string{"p2"}, nil, metav1.LabelSelector{MatchLabels: map[string]string{"zone": "none"}}))
	in.Pools = append(in.Pools, poolOf("p2", "198.51.100.0/24"))
	in.Services = append(in.Services, svc("ns", "b", "198.51.100.9"))
	if d := Deputy(in.Members); d != "node-a" {
		t.Fatalf("deputy %q", d)
	}
	var all []porticov1.L2Announcement
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		v := viewFrom(in, n)
		p := compute(v)
		for _, es := range p.Announcements(n, Deputy(v.Members) == n) {
			all = append(all, es...)
		}
	}
	slices.SortFunc(all, func(a, b porticov1.L2Announcement) int { return strings.Compare(a.IP, b.IP) })
	if len(all) != 2 || all[0].Node == "" || all[1].IP != "198.51.100.9" || !strings.HasPrefix(all[1].Reason, "NoSelectedNode: ") {
		t.Errorf("entries written by all nodes together: %+v", all)
	}
}

func TestNodeStatus(t *testing.T) {
	in := base()
	in.Services = []*corev1.Service{svc("ns", "a", "192.0.2.100"), svc("ns", "b", "192.0.2.101"), svc("ns", "c", "192.0.2.102")}
	in.Members = in.Members[:1] // alone: owns everything
	p := compute(in)
	st := NodeStatus("127.0.0.1:7947", []string{"node-a"}, in.LocalInterfaces, map[string]string{"eth1": "02:00:5e:00:53:01"}, &p, "")
	want := porticov1.SpeakerStatusStatus{
		MemberlistAddress: "127.0.0.1:7947", Members: []string{"node-a"}, L2IPs: 3,
		Interfaces: []porticov1.InterfaceStatus{{Name: "eth1", MAC: "02:00:5e:00:53:01", Carrier: true, L2IPs: 3}},
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got %+v\nwant %+v", st, want)
	}
}

func TestLocalInterfaces(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 1}
	links := []layer2.Link{
		{Name: "lo", Loopback: true, Up: true},
		{Name: "eth1", Kind: "veth", HardwareAddr: mac, Up: false},
		{Name: "eth0", Kind: "device", HardwareAddr: mac, Up: true},
		{Name: "docker0", Kind: "bridge", HardwareAddr: mac, Up: true},
		{Name: "br-data", Kind: "bridge", HardwareAddr: mac, Up: true},
	}
	prefixes := map[string][]netip.Prefix{
		"eth1": {netip.MustParsePrefix("192.0.2.11/24"), netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("2001:db8::11/64")},
	}
	got := LocalInterfaces(links, prefixes, []string{"br-data"})
	want := []election.Interface{
		{Name: "br-data", Carrier: true},
		{Name: "eth0", Carrier: true},
		{Name: "eth1", Carrier: false, Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got := LocalInterfaces(nil, nil, nil); got == nil {
		t.Error("nil result: election would read it as unknown")
	}
}

// A pool whose spec turns bad keeps its last valid version in the
// configuration model, so IPs still allocated from the old ranges stay
// announced (the speaker once parsed pools itself and dropped them).
func TestPoolTurnedBadKeepsItsIPsAnnounced(t *testing.T) {
	in := base()
	in.Services = []*corev1.Service{svc("ns", "a", "192.0.2.100")}
	var b config.Builder
	plan := func() Plan {
		var ci config.Inputs
		for _, p := range in.Pools {
			ci.Pools = append(ci.Pools, *p)
		}
		for _, a := range in.L2Advertisements {
			ci.L2Advertisements = append(ci.L2Advertisements, *a)
		}
		f := facts.Gather(facts.Objects{LocalNode: in.LocalNode, Config: b.Build(ci), Services: facts.Reduce(in.Services, facts.ServiceOf), Nodes: in.Nodes})
		return Compute(Inputs{Facts: f, LocalInterfaces: in.LocalInterfaces, LocalLinks: in.LocalLinks, Members: in.Members})
	}
	in.Pools[0].UID, in.Pools[0].Generation = "uid-1", 1
	if p := plan(); len(p.IPs) != 1 || !p.IPs[0].Result.Elected() {
		t.Fatalf("before: %+v", p.IPs)
	}
	in.Pools[0].Generation = 2
	in.Pools[0].Spec.Addresses = []porticov1.AddressEntry{"198.51.100.0/24", "not-an-address"}
	if p := plan(); len(p.IPs) != 1 || !p.IPs[0].Result.Elected() || p.IPs[0].Pool != "pool" {
		t.Fatalf("after the pool turned bad, 192.0.2.100 must stay announced: %+v", p.IPs)
	}
}
