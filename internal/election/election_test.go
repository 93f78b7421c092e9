package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var (
	dataNet = netip.MustParsePrefix("192.0.2.0/24")
	mgmtNet = netip.MustParsePrefix("198.51.100.0/24")
	svcIP   = netip.MustParseAddr("192.0.2.100")
)

// threeNodes returns three alive nodes, each with a management interface
// (eth0) and a data interface (eth1) on the service IP's subnet, both up.
func threeNodes() []Node {
	var nodes []Node
	for _, name := range []string{"node1", "node2", "node3"} {
		nodes = append(nodes, Node{
			Name:  name,
			Alive: true,
			Interfaces: []Interface{
				{Name: "eth0", Carrier: true, Prefixes: []netip.Prefix{mgmtNet}},
				{Name: "eth1", Carrier: true, Prefixes: []netip.Prefix{dataNet}},
			},
		})
	}
	return nodes
}

func allNodesAd(name string) Advertisement {
	return Advertisement{Name: name, Nodes: []string{"node1", "node2", "node3"}}
}

// argmax is the rendezvous winner among names, computed independently of
// the package's internals.
func argmax(names []string, ip netip.Addr) string {
	best, bestScore := "", uint64(0)
	for _, n := range names {
		if s := Score(n, ip); best == "" || s > bestScore {
			best, bestScore = n, s
		}
	}
	return best
}

func TestEligibilityRules(t *testing.T) {
	type tc struct {
		name   string
		edit   func(nodes []Node) // change the facts of threeNodes()
		ads    []Advertisement    // default: one "l2" selecting all three
		req    Request            // IP defaults to svcIP, Advertisements to {"l2"}
		want   []string           // the candidates, when an election succeeds
		ifaces []string           // the winner's interfaces, when checked
		reason Reason             // the failure, when it fails
		msg    []string           // substrings of the failure message
	}
	byName := func(nodes []Node, name string) *Node {
		for i := range nodes {
			if nodes[i].Name == name {
				return &nodes[i]
			}
		}
		panic(name)
	}
	cases := []tc{
		{name: "all candidates", want: []string{"node1", "node2", "node3"}},
		{
			name: "only nodes selected by the advertisement",
			ads:  []Advertisement{{Name: "l2", Nodes: []string{"node2", "node3", "elsewhere"}}},
			want: []string{"node2", "node3"},
		},
		{
			name: "union of several advertisements",
			ads:  []Advertisement{{Name: "a", Nodes: []string{"node1"}}, {Name: "b", Nodes: []string{"node3"}}},
			req:  Request{Advertisements: []string{"b", "a", "b"}},
			want: []string{"node1", "node3"},
		},
		{
			name: "excluded by label",
			edit: func(n []Node) { byName(n, "node1").Excluded = true; byName(n, "node2").Excluded = true },
			want: []string{"node3"},
		},
		{
			name: "NetworkUnavailable",
			edit: func(n []Node) { byName(n, "node3").NetworkUnavailable = true },
			want: []string{"node1", "node2"},
		},
		{
			name: "dead speaker",
			edit: func(n []Node) { byName(n, "node2").Alive = false },
			want: []string{"node1", "node3"},
		},
		{
			name: "carrier lost on the IP's subnet disqualifies even with another link up",
			edit: func(n []Node) { byName(n, "node1").Interfaces[1].Carrier = false },
			want: []string{"node2", "node3"},
		},
		{
			name: "carrier lost on the management link only does not matter",
			edit: func(n []Node) {
				byName(n, "node1").Interfaces[0].Carrier = false
				byName(n, "node2").Alive = false
				byName(n, "node3").Alive = false
			},
			want:   []string{"node1"},
			ifaces: []string{"eth1"},
		},
		{
			name:   "IP outside every interface subnet: any permitted link with carrier",
			edit:   func(n []Node) { byName(n, "node1").Interfaces[1].Carrier = false },
			req:    Request{IP: netip.MustParseAddr("203.0.113.7")},
			want:   []string{"node1", "node2", "node3"},
			ifaces: nil, // checked only for a node1 win below
		},
		{
			name: "advertisement restricted to interfaces the node lacks",
			ads:  []Advertisement{{Name: "l2", Nodes: []string{"node1", "node2", "node3"}, Interfaces: []string{"bond0"}}},
			edit: func(n []Node) { byName(n, "node2").Interfaces = nil },
			// node2's interfaces are unknown: trusted, announces on bond0.
			want:   []string{"node2"},
			ifaces: []string{"bond0"},
		},
		{
			name:   "advertisement interfaces narrow the winner's interfaces",
			ads:    []Advertisement{{Name: "l2", Nodes: []string{"node1"}, Interfaces: []string{"eth0"}}},
			req:    Request{IP: netip.MustParseAddr("203.0.113.7")},
			want:   []string{"node1"},
			ifaces: []string{"eth0"},
		},
		{
			name: "externalTrafficPolicy Local: only nodes with a ready endpoint",
			req:  Request{LocalTrafficPolicy: true, EndpointNodes: []string{"node3", "node1", "node3", "ghost"}},
			want: []string{"node1", "node3"},
		},
		{
			name: "endpoints ignored for Cluster policy",
			req:  Request{EndpointNodes: []string{"node3"}},
			want: []string{"node1", "node2", "node3"},
		},

		// Failures, each with the rule that left nobody.
		{
			name:   "invalid IP",
			req:    Request{IP: netip.Addr{}},
			reason: ReasonInvalidIP,
		},
		{
			name:   "no advertisement",
			req:    Request{Advertisements: []string{}},
			reason: ReasonNoAdvertisement,
			msg:    []string{"no L2Advertisement applies"},
		},
		{
			name:   "advertisement not found",
			req:    Request{Advertisements: []string{"gone"}},
			reason: ReasonNoAdvertisement,
			msg:    []string{"L2Advertisement gone not found"},
		},
		{
			name:   "advertisement selects nothing",
			ads:    []Advertisement{{Name: "x", Nodes: []string{"elsewhere"}}},
			req:    Request{Advertisements: []string{"x"}},
			reason: ReasonNoSelectedNode,
			msg:    []string{"no known node is selected by L2Advertisement x"},
		},
		{
			name: "all excluded",
			edit: func(n []Node) {
				byName(n, "node1").Excluded = true
				byName(n, "node2").NetworkUnavailable = true
				byName(n, "node3").Excluded = true
				byName(n, "node3").NetworkUnavailable = true
			},
			reason: ReasonNoEligibleNode,
			msg: []string{
				"node1 (label node.kubernetes.io/exclude-from-external-load-balancers)",
				"node2 (condition NetworkUnavailable)",
				"node3 (label node.kubernetes.io/exclude-from-external-load-balancers, condition NetworkUnavailable)",
			},
		},
		{
			name:   "no live speaker",
			ads:    []Advertisement{{Name: "x", Nodes: []string{"node1", "node2"}}},
			req:    Request{Advertisements: []string{"x"}},
			edit:   func(n []Node) { byName(n, "node1").Alive = false; byName(n, "node2").Alive = false },
			reason: ReasonNoLiveSpeaker,
			msg:    []string{"no live speaker on a node selected by L2Advertisement x", "node1, node2"},
		},
		{
			name: "no carrier",
			edit: func(n []Node) {
				for i := range n {
					n[i].Interfaces[1].Carrier = false
				}
			},
			reason: ReasonNoCarrier,
			msg:    []string{"node1 (no carrier on eth1, on the IP's subnet)"},
		},
		{
			name:   "no permitted interface",
			ads:    []Advertisement{{Name: "l2", Nodes: []string{"node1"}, Interfaces: []string{"bond0", "bond1"}}},
			reason: ReasonNoCarrier,
			msg:    []string{"node1 (no interface named bond0 or bond1)"},
		},
		{
			name:   "Local with no endpoints",
			req:    Request{LocalTrafficPolicy: true},
			reason: ReasonNoReadyEndpoint,
			msg:    []string{"no node with a ready endpoint (externalTrafficPolicy: Local)", "no ready endpoints"},
		},
		{
			name: "Local with endpoints only where nobody may announce",
			ads:  []Advertisement{{Name: "l2", Nodes: []string{"node1", "node2"}}},
			edit: func(n []Node) {
				byName(n, "node1").Alive = false
			},
			req:    Request{LocalTrafficPolicy: true, EndpointNodes: []string{"node1", "node3", "ghost"}},
			reason: ReasonNoReadyEndpoint,
			msg: []string{
				"no node with a ready endpoint (externalTrafficPolicy: Local)",
				"node1 (speaker not alive in memberlist)",
				"node3 (not selected by L2Advertisement l2)",
				"ghost (no such node known to the speaker)",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nodes := threeNodes()
			if c.edit != nil {
				c.edit(nodes)
			}
			ads := c.ads
			if ads == nil {
				ads = []Advertisement{allNodesAd("l2")}
			}
			req := c.req
			if req.IP == (netip.Addr{}) && c.reason != ReasonInvalidIP {
				req.IP = svcIP
			}
			if req.Advertisements == nil {
				req.Advertisements = []string{"l2"}
			}
			got, err := Elect(nodes, ads, req)
			if err != nil {
				t.Fatal(err)
			}
			if c.reason != "" {
				if got.Elected() || got.Reason != c.reason {
					t.Fatalf("got winner %q reason %q, want failure %q", got.Node, got.Reason, c.reason)
				}
				for _, m := range c.msg {
					if !strings.Contains(got.Message, m) {
						t.Errorf("message %q\n does not contain %q", got.Message, m)
					}
				}
				t.Logf("%s: %s", got.Reason, got.Message)
				return
			}
			if want := argmax(c.want, req.IP); got.Node != want {
				t.Errorf("winner %q, want %q (candidates %v)", got.Node, want, c.want)
			}
			if got.Candidates != len(c.want) {
				t.Errorf("%d candidates, want %d", got.Candidates, len(c.want))
			}
			if got.Reason != "" || got.Message != "" {
				t.Errorf("winner with reason %q %q", got.Reason, got.Message)
			}
			if c.ifaces != nil && !slices.Equal(got.Interfaces, c.ifaces) {
				t.Errorf("interfaces %v, want %v", got.Interfaces, c.ifaces)
			}
		})
	}
}

func TestWinnerInterfaces(t *testing.T) {
	nodes := []Node{{Name: "n", Alive: true, Interfaces: []Interface{
		{Name: "eth2", Carrier: true},
		{Name: "eth0", Carrier: true, Prefixes: []netip.Prefix{mgmtNet}},
		{Name: "eth1", Carrier: false},
	}}}
	ads := []Advertisement{{Name: "l2", Nodes: []string{"n"}}}
	// Outside every subnet: all links with carrier, sorted.
	r, _ := Elect(nodes, ads, Request{IP: svcIP, Advertisements: []string{"l2"}})
	if !slices.Equal(r.Interfaces, []string{"eth0", "eth2"}) {
		t.Errorf("interfaces %v", r.Interfaces)
	}
	// Inside eth0's subnet: only eth0.
	r, _ = Elect(nodes, ads, Request{IP: netip.MustParseAddr("198.51.100.9"), Advertisements: []string{"l2"}})
	if !slices.Equal(r.Interfaces, []string{"eth0"}) {
		t.Errorf("interfaces %v", r.Interfaces)
	}
	// Unknown interfaces and no restriction: nil (any).
	nodes[0].Interfaces = nil
	r, _ = Elect(nodes, ads, Request{IP: svcIP, Advertisements: []string{"l2"}})
	if r.Node != "n" || r.Interfaces != nil {
		t.Errorf("got %+v", r)
	}
}

func TestInvalidSnapshot(t *testing.T) {
	_, err := NewSnapshot([]Node{{Name: "a"}, {Name: "a"}, {Name: ""}},
		[]Advertisement{{Name: "x"}, {Name: "x"}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`node "a" is listed more than once`, "empty name", `L2Advertisement "x" is listed more than once`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestIPForms(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.7")
	mapped := netip.MustParseAddr("::ffff:192.0.2.7")
	zoned := netip.MustParseAddr("fe80::1%eth1")
	if Score("n", v4) != Score("n", mapped) {
		t.Error("IPv4-mapped address scores differently")
	}
	if Score("n", zoned) != Score("n", zoned.WithZone("")) {
		t.Error("zone changes the score")
	}
	s, _ := NewSnapshot(threeNodes(), []Advertisement{allNodesAd("l2")})
	a := s.Elect(Request{IP: v4, Advertisements: []string{"l2"}})
	b := s.Elect(Request{IP: mapped, Advertisements: []string{"l2"}})
	if a.Node != b.Node || a.IP != b.IP {
		t.Errorf("%+v vs %+v", a, b)
	}
}

// TestScoreStable pins the hash: every speaker version must compute the
// same scores, or two nodes announce the same IP during a rolling upgrade.
func TestScoreStable(t *testing.T) {
	for _, c := range []struct {
		node string
		ip   string
		want uint64
	}{
		{"node1", "192.0.2.1", 0xaf35887e7e194eab},
		{"node2", "192.0.2.1", 0x830adc21a88a3fd4},
		{"worker-17.example", "2001:db8::42", 0x41884e68c3a8148f},
	} {
		if got := Score(c.node, netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Score(%q, %s) = %#x, want %#x", c.node, c.ip, got, c.want)
		}
	}
}

func docIPs(n int, v6 bool) []netip.Addr {
	var ips []netip.Addr
	for i := 1; i <= n; i++ {
		if v6 {
			ips = append(ips, netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i)))
		} else {
			ips = append(ips, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
		}
	}
	return ips
}

func requests(ips []netip.Addr, ads ...string) []Request {
	reqs := make([]Request, len(ips))
	for i, ip := range ips {
		reqs[i] = Request{IP: ip, Advertisements: ads}
	}
	return reqs
}

func TestTwelveIPsCoverThreeNodes(t *testing.T) {
	s, err := NewSnapshot(threeNodes(), []Advertisement{allNodesAd("l2")})
	if err != nil {
		t.Fatal(err)
	}
	for _, v6 := range []bool{false, true} {
		count := map[string]int{}
		for _, r := range s.ElectAll(requests(docIPs(12, v6), "l2")) {
			count[r.Node]++
		}
		t.Logf("v6=%v: %v", v6, count)
		if len(count) != 3 || count[""] != 0 {
			t.Errorf("v6=%v: 12 IPs landed on %v, want all 3 nodes", v6, count)
		}
	}
}

// aliveNodes returns n alive nodes named by format and their names.
func aliveNodes(format string, n int) ([]Node, []string) {
	var nodes []Node
	var names []string
	for i := range n {
		name := fmt.Sprintf(format, i)
		names = append(names, name)
		nodes = append(nodes, Node{Name: name, Alive: true})
	}
	return nodes, names
}

func TestSpreadIsEven(t *testing.T) {
	nodes, names := aliveNodes("worker-%d", 10)
	s, _ := NewSnapshot(nodes, []Advertisement{{Name: "l2", Nodes: names}})
	var ips []netip.Addr
	for i := range 5000 {
		ips = append(ips, netip.AddrFrom4([4]byte{198, 51, byte(100 + i/256), byte(i)}))
	}
	count := map[string]int{}
	for _, r := range s.ElectAll(requests(ips, "l2")) {
		count[r.Node]++
	}
	// 500 expected per node; binomial sd ~21, so +-20% is > 4.5 sd.
	for _, name := range names {
		if c := count[name]; c < 400 || c > 600 {
			t.Errorf("%s owns %d of 5000 IPs, want about 500 (%v)", name, c, count)
		}
	}
}

func TestNodeLossMovesOnlyItsIPs(t *testing.T) {
	nodes, names := aliveNodes("node%d", 8)
	ads := []Advertisement{{Name: "l2", Nodes: names}}
	reqs := requests(append(docIPs(200, false), docIPs(200, true)...), "l2")
	before, _ := NewSnapshot(nodes, ads)
	was := before.ElectAll(reqs)

	for victim := range nodes {
		after := slices.Clone(nodes)
		after[victim].Alive = false
		s, _ := NewSnapshot(after, ads)
		now := s.ElectAll(reqs)
		movedTo := map[string]int{}
		for i := range reqs {
			switch {
			case was[i].Node == names[victim]:
				if now[i].Node == names[victim] || !now[i].Elected() {
					t.Fatalf("%s still on dead %s or lost: %+v", reqs[i].IP, names[victim], now[i])
				}
				movedTo[now[i].Node]++
			case now[i].Node != was[i].Node:
				t.Errorf("%s moved from live %s to %s when %s died", reqs[i].IP, was[i].Node, now[i].Node, names[victim])
			}
		}
		if len(movedTo) < 2 {
			t.Errorf("%s's IPs all moved to %v; they should spread", names[victim], movedTo)
		}
		// Coming back restores the original owners.
		if back := before.ElectAll(reqs); !reflect.DeepEqual(back, was) {
			t.Error("not restored")
		}
	}
}

func TestDeterministicUnderPermutation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var nodes []Node
	var names []string
	for i := range 20 {
		name := fmt.Sprintf("n%02d", i)
		names = append(names, name)
		nodes = append(nodes, Node{
			Name:               name,
			Alive:              i%7 != 3,
			Excluded:           i == 5,
			NetworkUnavailable: i == 6,
			Interfaces: []Interface{
				{Name: "eth0", Carrier: true, Prefixes: []netip.Prefix{mgmtNet}},
				{Name: "eth1", Carrier: i%5 != 0, Prefixes: []netip.Prefix{dataNet, netip.MustParsePrefix("2001:db8::/64")}},
				{Name: "eth2", Carrier: true},
			},
		})
	}
	ads := []Advertisement{
		{Name: "all", Nodes: names},
		{Name: "even", Nodes: []string{"n00", "n02", "n04", "n06", "n08", "n10"}, Interfaces: []string{"eth1", "eth2"}},
		{Name: "odd", Nodes: []string{"n01", "n03", "n05", "n07", "n09"}, Interfaces: []string{"eth0"}},
	}
	var reqs []Request
	ips := append(docIPs(60, false), docIPs(60, true)...)
	ips = append(ips, netip.MustParseAddr("203.0.113.9"))
	for i, ip := range ips {
		r := Request{IP: ip, Advertisements: [][]string{{"all"}, {"even", "odd"}, {"odd"}, {"even"}}[i%4]}
		if i%3 == 0 {
			r.LocalTrafficPolicy = true
			r.EndpointNodes = []string{names[i%20], names[(i*7)%20], names[(i*11)%20]}
		}
		reqs = append(reqs, r)
	}
	want := mustSnapshot(t, nodes, ads).ElectAll(reqs)
	for _, r := range want {
		if !r.Elected() && r.Reason == "" {
			t.Fatalf("no winner and no reason: %+v", r)
		}
	}

	for trial := range 20 {
		pn := slices.Clone(nodes)
		rng.Shuffle(len(pn), func(i, j int) { pn[i], pn[j] = pn[j], pn[i] })
		for i := range pn {
			ifs := slices.Clone(pn[i].Interfaces)
			rng.Shuffle(len(ifs), func(a, b int) { ifs[a], ifs[b] = ifs[b], ifs[a] })
			pn[i].Interfaces = ifs
		}
		pa := slices.Clone(ads)
		rng.Shuffle(len(pa), func(i, j int) { pa[i], pa[j] = pa[j], pa[i] })
		for i := range pa {
			pa[i].Nodes = shuffled(rng, pa[i].Nodes)
			pa[i].Interfaces = shuffled(rng, pa[i].Interfaces)
		}
		pr := slices.Clone(reqs)
		for i := range pr {
			pr[i].Advertisements = shuffled(rng, pr[i].Advertisements)
			pr[i].EndpointNodes = shuffled(rng, pr[i].EndpointNodes)
		}
		got := mustSnapshot(t, pn, pa).ElectAll(pr)
		if !reflect.DeepEqual(got, want) {
			for i := range got {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("trial %d, %s: %+v\nwant %+v", trial, reqs[i].IP, got[i], want[i])
				}
			}
		}
	}

	// Elect one by one agrees with the batch.
	s := mustSnapshot(t, nodes, ads)
	for i, r := range reqs {
		if got := s.Elect(r); !reflect.DeepEqual(got, want[i]) {
			t.Fatalf("Elect(%s) = %+v, batch %+v", r.IP, got, want[i])
		}
	}
}

func shuffled(rng *rand.Rand, in []string) []string {
	out := slices.Clone(in)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func mustSnapshot(t testing.TB, nodes []Node, ads []Advertisement) *Snapshot {
	t.Helper()
	s, err := NewSnapshot(nodes, ads)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// BenchmarkElectAll elects 1,000 IPs over 100 nodes, the speaker's work
// after every membership change in a mid-sized cluster.
func BenchmarkElectAll(b *testing.B) {
	var nodes []Node
	var names []string
	for i := range 100 {
		name := fmt.Sprintf("worker-%03d", i)
		names = append(names, name)
		nodes = append(nodes, Node{Name: name, Alive: i%10 != 0, Interfaces: []Interface{
			{Name: "eth0", Carrier: true, Prefixes: []netip.Prefix{mgmtNet}},
			{Name: "eth1", Carrier: i%17 != 0, Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
		}})
	}
	ads := []Advertisement{{Name: "l2", Nodes: names}}
	var reqs []Request
	for i := range 1000 {
		r := Request{IP: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Advertisements: []string{"l2"}}
		if i >= 256 {
			r.IP = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		}
		if i%4 == 0 {
			r.LocalTrafficPolicy = true
			r.EndpointNodes = names[i%100 : i%100+1]
		}
		reqs = append(reqs, r)
	}
	b.Run("snapshot+batch", func(b *testing.B) {
		for b.Loop() {
			s, err := NewSnapshot(nodes, ads)
			if err != nil {
				b.Fatal(err)
			}
			_ = s.ElectAll(reqs)
		}
	})
	s := mustSnapshot(b, nodes, ads)
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			_ = s.ElectAll(reqs)
		}
	})
}
