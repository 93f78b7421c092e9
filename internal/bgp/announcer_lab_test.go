package bgp

import (
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Tests against a real FRR router; see lab_test.go for how they run.

// ebgpLab is the usual router: eBGP with the speaker's IPv4 and IPv6
// addresses.
func ebgpLab(t *testing.T) *lab {
	return newLab(t, frrConfig{Neighbors: []frrNeighbor{
		{Addr: nodeV4.String(), RemoteAS: "64512"},
		{Addr: nodeV6.String(), RemoteAS: "64512"},
	}})
}

// v4Peer and v6Peer are the speaker's sessions in ebgpLab.
func v4Peer() Peer {
	return Peer{Name: "rtr-v4", Address: routerV4, MyASN: nodeASN, PeerASN: routerASN}
}

func v6Peer() Peer {
	return Peer{Name: "rtr-v6", Address: routerV6, MyASN: nodeASN, PeerASN: routerASN}
}

var (
	svc4  = netip.MustParsePrefix("198.51.100.100/32")
	svc4b = netip.MustParsePrefix("198.51.100.101/32")
	svc6  = netip.MustParsePrefix("2001:db8:1::10/128")
	svc6b = netip.MustParsePrefix("2001:db8:1::11/128")
)

// nextHops returns the next hops of the router's paths for prefix learnt
// from peerID, and whether there is one.
func nextHops(paths []frrPath, peerID string) ([]string, bool) {
	for _, p := range paths {
		if p.PeerID == peerID {
			var ips []string
			for _, nh := range p.NextHops {
				ips = append(ips, nh.IP)
			}
			return ips, true
		}
	}
	return nil, false
}

func TestLabSessionsAndPrefixes(t *testing.T) {
	t.Parallel()
	l := ebgpLab(t)
	l.speaker(t, "", func(t *testing.T) {
		a, _ := newAnnouncer(t, Config{RouterID: nodeV4})
		peers := []Peer{v4Peer(), v6Peer()}
		paths := []Path{
			{Prefix: svc4, NextHop: nodeV4, Peers: []string{"rtr-v4", "rtr-v6"}},
			{Prefix: svc6, NextHop: nodeV6, Peers: []string{"rtr-v4", "rtr-v6"}},
			// No next hop: the session's own address, where the family matches.
			{Prefix: svc6b, Peers: []string{"rtr-v6"}},
			{Prefix: svc4b, Peers: []string{"rtr-v4"}},
		}
		setDesired(t, a, peers, paths)
		for _, p := range peers {
			waitState(t, a, p.Name, "Established", 30*time.Second)
		}

		// gobgp dials out only: nothing listens on 179 in this namespace.
		out, err := exec.Command("ss", "-Hltn").CombinedOutput()
		if err != nil {
			t.Fatalf("ss: %v: %s", err, out)
		}
		if regexp.MustCompile(`:179\b`).Match(out) {
			t.Errorf("something listens on port 179 in the speaker namespace:\n%s", out)
		}

		r := l.FRR
		want := map[netip.Prefix]map[string]string{ // prefix -> peerId -> next hop
			svc4:  {nodeV4.String(): nodeV4.String(), nodeV6.String(): nodeV4.String()},
			svc6:  {nodeV4.String(): nodeV6.String(), nodeV6.String(): nodeV6.String()},
			svc6b: {nodeV6.String(): nodeV6.String()},
			svc4b: {nodeV4.String(): nodeV4.String()},
		}
		for pfx, byPeer := range want {
			waitFor(t, 10*time.Second, "router to have "+pfx.String()+" from every peer", func() bool {
				paths := r.routes(t, pfx.String())
				for peer := range byPeer {
					if _, ok := nextHops(paths, peer); !ok {
						return false
					}
				}
				return len(paths) == len(byPeer)
			})
			paths := r.routes(t, pfx.String())
			for peer, nh := range byPeer {
				got, _ := nextHops(paths, peer)
				if !slices.Contains(got, nh) {
					t.Errorf("%s from %s: next hops %v, want %s", pfx, peer, got, nh)
				}
			}
			for _, p := range paths {
				if p.Origin != "IGP" || p.Path != "64512" || !p.Valid {
					t.Errorf("%s from %s: origin %q, AS path %q, valid %v; want IGP, 64512, valid", pfx, p.PeerID, p.Origin, p.Path, p.Valid)
				}
			}
		}
		for _, s := range a.Sessions() {
			if s.PrefixesAdvertised != map[string]int{"rtr-v4": 3, "rtr-v6": 3}[s.Peer] || s.LastError != "" || s.UpdatesSent == 0 {
				t.Errorf("status %+v: want 3 prefixes advertised, updates sent, no error", s)
			}
		}

		// Withdraw one path from one peer, and change nothing else: UPDATEs
		// only, no session reset.
		before := r.neighbors(t)
		setDesired(t, a, peers, slices.Delete(slices.Clone(paths), 2, 3)) // svc6b gone
		waitFor(t, 10*time.Second, "router to drop "+svc6b.String(), func() bool { return len(r.routes(t, svc6b.String())) == 0 })
		setDesired(t, a, peers, slices.Delete(slices.Clone(paths), 2, 3)) // the same again: nothing to do
		after := r.neighbors(t)
		for _, addr := range []string{nodeV4.String(), nodeV6.String()} {
			if b, a := before[addr], after[addr]; a.ConnectionsEstablished != b.ConnectionsEstablished || a.State != "Established" {
				t.Errorf("router's session with %s: %+v, then %+v: want it established, never reset", addr, b, a)
			}
		}
		if got := len(r.routes(t, svc4.String())); got != 2 {
			t.Errorf("router has %d paths for %s, want 2", got, svc4)
		}
		if s := session(t, a, "rtr-v6"); s.PrefixesAdvertised != 2 {
			t.Errorf("rtr-v6 advertises %d prefixes, want 2", s.PrefixesAdvertised)
		}
		if !strings.Contains(r.logs("bgpd"), "Established") {
			t.Logf("bgpd log: %s", r.logs("bgpd"))
		}
	})
}
