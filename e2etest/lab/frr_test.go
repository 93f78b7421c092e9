package lab

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The files in testdata/frr are answers of FRR 8.4 (Debian's frr) in the
// lab's router, with three FRR bgpd stand-ins for speakers announcing
// 198.51.100.200/32 and 2001:db8:1::200/128 (communities 64500:100 no-export,
// large community 64500:1:2 on IPv4) and the router setting local preference
// 150 on node3's IPv4 path.

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "frr", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestParseRoutes(t *testing.T) {
	v4, err := parseRoutes(testdata(t, "bgp-ipv4.json"))
	if err != nil {
		t.Fatal(err)
	}
	rt := v4[netip.MustParsePrefix("198.51.100.200/32")]
	if rt == nil || len(v4) != 1 || len(rt.Paths) != 3 {
		t.Fatalf("IPv4 table: %+v", v4)
	}
	best := rt.Best()
	if best == nil || best.Peer != netip.MustParseAddr("198.51.100.13") || best.LocalPref == nil || *best.LocalPref != 150 {
		t.Fatalf("best path %+v, want node3's with local preference 150", best)
	}
	if got := rt.ECMP(); !slices.Equal(got, addrs("198.51.100.13")) {
		t.Errorf("ECMP with one preferred path: %v", got)
	}
	if best.ASPath != "64501" || best.Origin != "IGP" || !best.Valid {
		t.Errorf("best path attributes: %+v", best)
	}

	v6, err := parseRoutes(testdata(t, "bgp-ipv6.json"))
	if err != nil {
		t.Fatal(err)
	}
	rt = v6[netip.MustParsePrefix("2001:db8:1::200/128")]
	if rt == nil {
		t.Fatalf("IPv6 table: %+v", v6)
	}
	// The table listing marks the best path "bestpath", the others
	// "multipath": ECMP takes both.
	if got := rt.ECMP(); !slices.Equal(got, addrs("2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13")) {
		t.Errorf("IPv6 ECMP next hops %v", got)
	}
	for _, p := range rt.Paths {
		if p.Peer.Is6() || len(p.NextHops) != 1 || !p.NextHops[0].Is6() {
			t.Errorf("an IPv6 path over an IPv4 session: %+v", p)
		}
	}
}

func TestParseRoute(t *testing.T) {
	p := netip.MustParsePrefix("198.51.100.200/32")
	rt, err := parseRoute(p, testdata(t, "bgp-ipv4-198.51.100.200.json"))
	if err != nil {
		t.Fatal(err)
	}
	if rt == nil || len(rt.Paths) != 3 {
		t.Fatalf("route: %+v", rt)
	}
	for _, path := range rt.Paths {
		if !slices.Equal(path.Communities, []string{"64500:100", "noExport"}) || !slices.Equal(path.LargeCommunities, []string{"64500:1:2"}) {
			t.Errorf("communities of %s: %v, large %v", path.Peer, path.Communities, path.LargeCommunities)
		}
		if path.ASPath != "64501" {
			t.Errorf("AS path of %s: %q", path.Peer, path.ASPath)
		}
	}
	if b := rt.Best(); b == nil || b.LocalPref == nil || *b.LocalPref != 150 || !slices.Equal(rt.ECMP(), addrs("198.51.100.13")) {
		t.Errorf("best path %+v, ECMP %v", b, rt.ECMP())
	}

	p6 := netip.MustParsePrefix("2001:db8:1::200/128")
	rt, err = parseRoute(p6, testdata(t, "bgp-ipv6-2001-db8-1--200.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rt.ECMP(); !slices.Equal(got, addrs("2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13")) {
		t.Errorf("IPv6 ECMP next hops %v", got)
	}
	for _, path := range rt.Paths {
		if !path.Multipath || path.LocalPref != nil || !slices.Equal(path.Communities, []string{"64500:100"}) || path.LargeCommunities != nil {
			t.Errorf("IPv6 path %+v", path)
		}
	}

	if rt, err := parseRoute(p, []byte("{}\n")); rt != nil || err != nil {
		t.Errorf("a prefix FRR does not have: %+v, %v", rt, err)
	}
}

func TestParseFIB(t *testing.T) {
	for file, want := range map[string][]string{
		"route-198.51.100.200.json":  {"198.51.100.200/32", "198.51.100.13"}, // local preference: one path
		"route-2001-db8-1--200.json": {"2001:db8:1::200/128", "2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13"},
	} {
		p := netip.MustParsePrefix(want[0])
		fib, err := parseFIB(p, testdata(t, file))
		if err != nil {
			t.Fatal(err)
		}
		if fib == nil || fib.Protocol != "bgp" || !fib.Installed || !slices.Equal(fib.NextHops, addrs(want[1:]...)) {
			t.Errorf("%s: %+v", p, fib)
		}
		if fib, err := parseFIB(netip.MustParsePrefix("198.51.100.201/32"), testdata(t, file)); fib != nil || err != nil {
			t.Errorf("another prefix: %+v, %v", fib, err)
		}
	}
}

func TestParseNeighbors(t *testing.T) {
	nbrs, err := parseNeighbors(testdata(t, "neighbors.json"))
	if err != nil {
		t.Fatal(err)
	}
	up, passive := nbrs[netip.MustParseAddr("198.51.100.11")], nbrs[netip.MustParseAddr("2001:db8:1::11")]
	if up == nil || passive == nil || len(nbrs) != 2 {
		t.Fatalf("neighbours: %+v", nbrs)
	}
	if up.State != "Established" || up.RemoteAS != NodeASN || up.Uptime != 7*time.Second || up.HoldTime != 9*time.Second ||
		up.PrefixesReceived[IPv4] != 1 || up.PrefixesReceived[IPv6] != 1 || up.Hostname != "stand-node1" {
		t.Errorf("established neighbour: %+v", up)
	}
	if passive.State != "Active" || passive.Uptime != 0 || passive.RemoteAS != 0 || passive.PrefixesReceived[IPv4] != 0 {
		t.Errorf("neighbour that never connected: %+v", passive)
	}
}

func TestParseBFD(t *testing.T) {
	peers, err := parseBFDPeers(testdata(t, "bfd-peers.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := BFDPeer{Peer: netip.MustParseAddr("198.51.100.12"), Local: netip.MustParseAddr(RouterIPv4), Interface: "br0", Status: "down",
		ReceiveInterval: BFDInterval, TransmitInterval: BFDInterval, DetectMultiplier: 3,
		RemoteReceiveInterval: time.Second, RemoteTransmitInterval: time.Second, RemoteDetectMultiplier: 3,
		Diagnostic: "ok", RemoteDiagnostic: "ok", Downtime: time.Second}
	if len(peers) != 1 || peers[0] != want {
		t.Errorf("BFD peers %+v\nwant %+v", peers, want)
	}
	profiles := parseBFDProfiles(string(testdata(t, "bfdd-running-config.txt")))
	if len(profiles) != 1 || profiles[BFDProfile] != (BFDProfileConfig{ReceiveInterval: BFDInterval, TransmitInterval: BFDInterval, DetectMultiplier: BFDMultiplier}) {
		t.Errorf("profiles %+v", profiles)
	}
	other := parseBFDProfiles("bfd\n profile slow\n  detect-multiplier 5\n  passive-mode\n exit\n !\n peer 198.51.100.11\n  receive-interval 50\n exit\nexit\n")
	if len(other) != 1 || other["slow"] != (BFDProfileConfig{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 5, Passive: true}) {
		t.Errorf("profiles %+v", other)
	}
}

// The router's bgpd config has every neighbour passive, in both families,
// with the hold time asked for and no routes sent back.
func TestBGPDConf(t *testing.T) {
	r := &Router{NS: "ptc-router", ASN: RouterASN, PeerAddrs: []string{"198.51.100.11", "2001:db8:1::11"}, HoldTime: 30 * time.Second}
	conf := r.bgpdConf()
	for _, want := range []string{
		"hostname ptc-router\n", "router bgp 64500\n", " no bgp ebgp-requires-policy\n", " bgp bestpath as-path multipath-relax\n",
		" neighbor 2001:db8:1::11 remote-as external\n", " neighbor 198.51.100.11 passive\n",
		" neighbor 198.51.100.11 timers 10 30\n", " neighbor 2001:db8:1::11 timers connect 5\n",
		" address-family ipv6 unicast\n  maximum-paths 16\n  neighbor 198.51.100.11 activate\n  neighbor 198.51.100.11 route-map lab-to-nodes out\n",
		"route-map lab-to-nodes deny 10\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("bgpd.conf lacks %q:\n%s", want, conf)
		}
	}
}
