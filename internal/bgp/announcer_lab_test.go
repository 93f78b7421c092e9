package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
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

// v4Peer and v6Peer are the speaker's sessions in ebgpLab. (The speaker
// namespace has two addresses of each family: the kernel would pick the
// newest IPv6 one.)
func v4Peer() Peer {
	return Peer{Name: "rtr-v4", Address: routerV4, SourceAddress: nodeV4, MyASN: nodeASN, PeerASN: routerASN}
}

func v6Peer() Peer {
	return Peer{Name: "rtr-v6", Address: routerV6, SourceAddress: nodeV6, MyASN: nodeASN, PeerASN: routerASN}
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

// TestLabAttributes: communities, large communities and local preference
// (iBGP only) reach the router; a 4-byte ASN; changing an attribute sends
// an UPDATE, not a reset.
func TestLabAttributes(t *testing.T) {
	t.Parallel()
	const bigASN = 4200000001
	l := newLab(t, frrConfig{Neighbors: []frrNeighbor{
		{Addr: nodeV4.String(), RemoteAS: "4200000001"},
		{Addr: nodeV4b.String(), RemoteAS: "internal"},
	}})
	l.speaker(t, "", func(t *testing.T) {
		a, _ := newAnnouncer(t, Config{RouterID: nodeV4})
		peers := []Peer{
			{Name: "ebgp", Address: routerV4, SourceAddress: nodeV4, MyASN: bigASN, PeerASN: routerASN},
			{Name: "ibgp", Address: routerV4b, SourceAddress: nodeV4b, MyASN: routerASN, PeerASN: routerASN},
		}
		pref := uint32(250)
		path := Path{Prefix: svc4, NextHop: nodeV4b, LocalPref: &pref,
			Communities:      []uint32{64512<<16 | 100, 65535<<16 | 65281}, // 64512:100 and no-export
			LargeCommunities: []LargeCommunity{{bigASN, 1, 2}},
			Peers:            []string{"ebgp", "ibgp"}}
		v6 := Path{Prefix: svc6, NextHop: nodeV6, Communities: []uint32{64512<<16 | 200}, Peers: []string{"ibgp"}}
		setDesired(t, a, peers, []Path{path, v6})
		waitState(t, a, "ebgp", "Established", 30*time.Second)
		waitState(t, a, "ibgp", "Established", 30*time.Second)

		r := l.FRR
		byPeer := func(pfx netip.Prefix) map[string]int {
			m := map[string]int{}
			for i, p := range r.prefix(t, pfx.String()).Paths {
				m[p.Peer.PeerID] = i
			}
			return m
		}
		waitFor(t, 10*time.Second, "both paths at the router", func() bool { return len(byPeer(svc4)) == 2 })
		info := r.prefix(t, svc4.String())
		for _, p := range info.Paths {
			if p.Community == nil || p.Community.String != "64512:100 no-export" {
				t.Errorf("path from %s: communities %+v, want 64512:100 no-export", p.Peer.PeerID, p.Community)
			}
			if p.LargeCommunity == nil || p.LargeCommunity.String != "4200000001:1:2" {
				t.Errorf("path from %s: large communities %+v, want 4200000001:1:2", p.Peer.PeerID, p.LargeCommunity)
			}
			if p.Origin != "IGP" {
				t.Errorf("path from %s: origin %q", p.Peer.PeerID, p.Origin)
			}
			switch p.Peer.PeerID {
			case nodeV4b.String(): // iBGP: local preference, empty AS path, next hop as given
				if p.LocPrf == nil || *p.LocPrf != 250 {
					t.Errorf("iBGP path: local preference %v, want 250", p.LocPrf)
				}
				if p.ASPath.String != "Local" { // FRR's word for an empty AS path
					t.Errorf("iBGP path: AS path %q, want empty (Local)", p.ASPath.String)
				}
			case nodeV4.String(): // eBGP: our 4-byte AS, no local preference on the wire
				if p.ASPath.String != "4200000001" {
					t.Errorf("eBGP path: AS path %q, want 4200000001", p.ASPath.String)
				}
				if p.LocPrf != nil && *p.LocPrf == 250 {
					t.Errorf("eBGP path carries our local preference")
				}
			}
			if len(p.NextHops) == 0 || p.NextHops[0].IP != nodeV4b.String() {
				t.Errorf("path from %s: next hops %+v, want %s", p.Peer.PeerID, p.NextHops, nodeV4b)
			}
		}
		waitFor(t, 10*time.Second, "the IPv6 path over the iBGP IPv4 session", func() bool { return len(byPeer(svc6)) == 1 })
		if p := r.prefix(t, svc6.String()).Paths[0]; p.Community == nil || p.Community.String != "64512:200" || p.LocPrf == nil || *p.LocPrf != 100 {
			t.Errorf("IPv6 path: %+v, want community 64512:200 and the default local preference 100", p)
		}

		// A new community and local preference: an UPDATE, no reset.
		before := r.neighbors(t)
		pref = 300
		path.Communities = []uint32{64512<<16 | 101}
		path.LargeCommunities = nil
		setDesired(t, a, peers, []Path{path, v6})
		waitFor(t, 10*time.Second, "the new attributes at the router", func() bool {
			for _, p := range r.prefix(t, svc4.String()).Paths {
				if p.Community == nil || p.Community.String != "64512:101" || p.LargeCommunity != nil {
					return false
				}
				if p.Peer.PeerID == nodeV4b.String() && (p.LocPrf == nil || *p.LocPrf != 300) {
					return false
				}
			}
			return true
		})
		after := r.neighbors(t)
		for _, addr := range []string{nodeV4.String(), nodeV4b.String()} {
			if after[addr].ConnectionsEstablished != before[addr].ConnectionsEstablished {
				t.Errorf("session with %s was reset: %+v -> %+v", addr, before[addr], after[addr])
			}
		}
	})
}

// TestLabPerPeerPaths: each path goes only to the peers it names, and
// moving a path between peers touches nothing else.
func TestLabPerPeerPaths(t *testing.T) {
	t.Parallel()
	l := ebgpLab(t)
	l.speaker(t, "", func(t *testing.T) {
		a, _ := newAnnouncer(t, Config{RouterID: nodeV4})
		peers := []Peer{v4Peer(), v6Peer()}
		only4 := Path{Prefix: svc4, NextHop: nodeV4, Peers: []string{"rtr-v4"}}
		only6 := Path{Prefix: svc4b, NextHop: nodeV4, Peers: []string{"rtr-v6"}}
		both := Path{Prefix: svc6, NextHop: nodeV6, Peers: []string{"rtr-v6", "rtr-v4"}}
		setDesired(t, a, peers, []Path{only4, only6, both})
		r := l.FRR
		from := func(pfx netip.Prefix) []string {
			var ids []string
			for _, p := range r.routes(t, pfx.String()) {
				ids = append(ids, p.PeerID)
			}
			slices.Sort(ids)
			return ids
		}
		check := func(want map[netip.Prefix][]string) {
			t.Helper()
			for pfx, ids := range want {
				slices.Sort(ids)
				waitFor(t, 30*time.Second, pfx.String()+" from "+strings.Join(ids, ", "), func() bool {
					return slices.Equal(from(pfx), ids)
				})
			}
		}
		check(map[netip.Prefix][]string{
			svc4:  {nodeV4.String()},
			svc4b: {nodeV6.String()},
			svc6:  {nodeV6.String(), nodeV4.String()},
		})
		before := r.neighbors(t)
		only4.Peers = []string{"rtr-v6"}
		both.Peers = []string{"rtr-v6"}
		setDesired(t, a, peers, []Path{only4, only6, both})
		check(map[netip.Prefix][]string{
			svc4:  {nodeV6.String()},
			svc4b: {nodeV6.String()},
			svc6:  {nodeV6.String()},
		})
		after := r.neighbors(t)
		for _, addr := range []string{nodeV4.String(), nodeV6.String()} {
			if after[addr].ConnectionsEstablished != before[addr].ConnectionsEstablished {
				t.Errorf("session with %s was reset: %+v -> %+v", addr, before[addr], after[addr])
			}
		}
		if s := session(t, a, "rtr-v4"); s.PrefixesAdvertised != 0 {
			t.Errorf("rtr-v4 advertises %d prefixes, want 0", s.PrefixesAdvertised)
		}
	})
}

// TestLabErrorsInWords: the usual mistakes show in LastError in words, and
// no password appears anywhere.
func TestLabErrorsInWords(t *testing.T) {
	t.Parallel()
	const right, wrong = "Sw0rdf1sh-right", "Sw0rdf1sh-wrong"
	l := newLab(t, frrConfig{Neighbors: []frrNeighbor{
		{Addr: nodeV4.String(), RemoteAS: "64512"},
		{Addr: nodeV4b.String(), RemoteAS: "64512", Password: right},
		{Addr: nodeV6.String(), RemoteAS: "64512"},
		{Addr: nodeV6b.String(), RemoteAS: "64512", Password: right},
	}})
	l.speaker(t, "", func(t *testing.T) {
		a, logs := newAnnouncer(t, Config{RouterID: nodeV4})
		peers := []Peer{
			// The router expects AS 64512 from this address.
			{Name: "bad-my-asn", Address: routerV4, SourceAddress: nodeV4, MyASN: 64999, PeerASN: routerASN},
			// The router's password for this address is another.
			{Name: "bad-password", Address: routerV4b, SourceAddress: nodeV4b, MyASN: nodeASN, PeerASN: routerASN, Password: wrong},
			// The router is AS 64500, not 64501.
			{Name: "bad-peer-asn", Address: routerV6, SourceAddress: nodeV6, MyASN: nodeASN, PeerASN: 64501},
			// The same, with a (right) password: the diagnostic OPEN that
			// finds out why needs it too.
			{Name: "bad-my-asn-md5", Address: routerV6b, SourceAddress: nodeV6b, MyASN: 64999, PeerASN: routerASN, Password: right},
			// Nothing listens there.
			{Name: "refused", Address: routerV4c, Port: 1790, MyASN: nodeASN, PeerASN: routerASN},
		}
		paths := []Path{{Prefix: svc4, NextHop: nodeV4, Peers: []string{"bad-my-asn", "bad-my-asn-md5", "bad-password", "bad-peer-asn", "refused"}}}
		setDesired(t, a, peers, paths)
		want := map[string]string{
			"bad-my-asn":     "peer sent NOTIFICATION: bad peer AS",
			"bad-my-asn-md5": "peer sent NOTIFICATION: bad peer AS",
			"bad-password":   "no answer to OPEN: check the password",
			"bad-peer-asn":   "sent NOTIFICATION: bad peer AS",
			"refused":        "connection refused",
		}
		for name, words := range want {
			waitFor(t, 60*time.Second, name+"'s LastError to say "+words, func() bool {
				s := session(t, a, name)
				return strings.HasPrefix(s.LastError, words) && s.State != "Established"
			})
		}
		for _, s := range a.Sessions() {
			t.Logf("%s: %s: %s", s.Peer, s.State, s.LastError)
			if strings.Contains(strings.ToLower(fmt.Sprintf("%+v %#v %v", s, s, s)), "sw0rdf1sh") {
				t.Errorf("status carries a password: %+v", s)
			}
		}
		// A broken copy of the peer is refused without a word of its password.
		broken := slices.Clone(peers)
		i := slices.IndexFunc(broken, func(p Peer) bool { return p.Name == "bad-password" })
		broken[i].Address = netip.Addr{}
		err := a.SetDesired(context.Background(), broken, paths)
		if err == nil || !strings.Contains(err.Error(), `"bad-password"`) {
			t.Errorf("SetDesired with an invalid peer: %v", err)
		}
		for _, text := range []string{fmt.Sprint(err), fmt.Sprintf("%v %+v %#v %s", peers, peers, peers, peers), logs.String()} {
			if strings.Contains(strings.ToLower(text), "sw0rdf1sh") {
				t.Errorf("a password leaked: %s", text)
			}
		}
		if s := session(t, a, "bad-password"); s.ConfigError == "" || s.Address != routerV4b {
			t.Errorf("bad-password after an invalid update: %+v; want the running peer kept, with a ConfigError", s)
		}
	})
}

// TestLabBFD: gobgp's BFD comes up with FRR's bfdd with the profile's
// timers; cutting the link drops the session through BFD (the hold time is
// far longer than the wait) and it comes back with the link. Passive mode,
// which gobgp lacks, is reported and BFD runs active.
func TestLabBFD(t *testing.T) {
	t.Parallel()
	l := newLab(t, frrConfig{
		// update-source: gobgp knows a BFD peer by the source address of
		// its packets, so the router must send them from the address the
		// speaker peers with (this router has two IPv6 addresses).
		Neighbors: []frrNeighbor{
			{Addr: nodeV4.String(), RemoteAS: "64512", BFD: true, Local: routerV4.String()},
			{Addr: nodeV6.String(), RemoteAS: "64512", BFD: true, Local: routerV6.String()},
		},
		BFDReceive: 300, BFDTransmit: 300, BFDMultiplier: 3,
	})
	l.speaker(t, "", func(t *testing.T) {
		a, _ := newAnnouncer(t, Config{RouterID: nodeV4})
		v4 := v4Peer()
		v4.HoldTime = 240 * time.Second // only BFD can drop the session within the waits below
		v4.BFD = &BFD{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3}
		// Unequal timers: faster than the router's profile, and passive.
		v6 := v6Peer()
		v6.HoldTime = 240 * time.Second
		v6.BFD = &BFD{ReceiveInterval: 200 * time.Millisecond, TransmitInterval: 200 * time.Millisecond, DetectMultiplier: 5, Passive: true}
		peers := []Peer{v4, v6}
		paths := []Path{{Prefix: svc4, NextHop: nodeV4, Peers: []string{"rtr-v4", "rtr-v6"}}}
		err := a.SetDesired(context.Background(), peers, paths)
		if err == nil || !strings.Contains(err.Error(), "passive") {
			t.Errorf("SetDesired with BFD passive mode: %v, want an error saying passive mode is not supported", err)
		}
		if s := session(t, a, "rtr-v6"); !strings.Contains(s.ConfigError, "passive") {
			t.Errorf("rtr-v6 ConfigError %q, want it to say passive mode is not supported", s.ConfigError)
		}
		for _, p := range peers {
			waitState(t, a, p.Name, "Established", 30*time.Second)
			waitFor(t, 30*time.Second, p.Name+"'s BFD to be Up", func() bool { return session(t, a, p.Name).BFDState == "Up" })
		}
		r := l.FRR
		waitFor(t, 30*time.Second, "the router's BFD sessions to be up", func() bool {
			b := r.bfdPeers(t)
			return b[nodeV4.String()].Status == "up" && b[nodeV6.String()].Status == "up"
		})
		b := r.bfdPeers(t)
		t.Logf("router's BFD sessions: %+v", b)
		if p := b[nodeV4.String()]; p.RemoteReceive != 300 || p.RemoteTransmit != 300 || p.RemoteMultiplier != 3 ||
			p.ReceiveInterval != 300 || p.TransmitInterval != 300 || p.DetectMultiplier != 3 {
			t.Errorf("router's BFD session with %s: %+v, want 300/300/3 on both sides", nodeV4, p)
		}
		if p := b[nodeV6.String()]; p.RemoteReceive != 200 || p.RemoteTransmit != 200 || p.RemoteMultiplier != 5 {
			t.Errorf("router's BFD session with %s: %+v, want the speaker's 100/100/5", nodeV6, p)
		}
		waitFor(t, 10*time.Second, "the router to have the path from both sessions", func() bool { return len(r.routes(t, svc4.String())) == 2 })

		// Cut the link (on the router's side) and wait for BFD to drop both
		// sessions.
		cut := time.Now()
		l.inRouter(t, "ip", "link", "set", "eth0", "down")
		for _, p := range peers {
			waitFor(t, 20*time.Second, p.Name+" to drop through BFD", func() bool {
				s := session(t, a, p.Name)
				return s.State != "Established" && s.BFDState == "Down" && strings.HasPrefix(s.LastError, "BFD down")
			})
			t.Logf("%s: session down %s after the cut: %s", p.Name, time.Since(cut).Round(time.Millisecond), session(t, a, p.Name).LastError)
		}
		l.inRouter(t, "ip", "link", "set", "eth0", "up")
		for _, p := range peers {
			waitState(t, a, p.Name, "Established", 60*time.Second)
			waitFor(t, 30*time.Second, p.Name+"'s BFD to be Up again", func() bool { return session(t, a, p.Name).BFDState == "Up" })
		}
		waitFor(t, 30*time.Second, "the router to have the path from both sessions again", func() bool { return len(r.routes(t, svc4.String())) == 2 })

		// Unequal timers hold: the faster speaker does not flap against the
		// router's slower profile. (FRR 8.4 restarts its BFD session when
		// BGP comes up, which resets BGP once more, on both sides: FRR
		// issue 17337, fixed in FRR 10.2. Look once that is over.)
		for _, p := range peers {
			waitFor(t, 60*time.Second, p.Name+" to be up for 10 s", func() bool {
				s := session(t, a, p.Name)
				return s.State == "Established" && s.BFDState == "Up" && time.Since(s.Since) > 10*time.Second
			})
		}
		before := r.neighbors(t)
		time.Sleep(3 * time.Second)
		after := r.neighbors(t)
		b = r.bfdPeers(t)
		for _, addr := range []string{nodeV4.String(), nodeV6.String()} {
			if b[addr].Status != "up" || after[addr].ConnectionsEstablished != before[addr].ConnectionsEstablished {
				t.Errorf("session with %s flapped: BFD %+v, BGP %+v -> %+v", addr, b[addr], before[addr], after[addr])
			}
		}
	})
}

// TestLabGracefulRestart: with graceful restart the router keeps the
// routes, marked stale, while the speaker process is gone (killed, or
// stopped with CloseForRestart), and takes them fresh from the next one;
// Close then withdraws them.
func TestLabGracefulRestart(t *testing.T) {
	t.Parallel()
	l := newLab(t, frrConfig{Neighbors: []frrNeighbor{{Addr: nodeV4.String(), RemoteAS: "64512"}}})
	peer := v4Peer()
	peer.GracefulRestart = true
	paths := []Path{{Prefix: svc4, NextHop: nodeV4, Peers: []string{"rtr-v4"}}, {Prefix: svc6, NextHop: nodeV6, Peers: []string{"rtr-v4"}}}
	announce := func(t *testing.T) *Announcer {
		a, err := New(Config{RouterID: nodeV4, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		setDesired(t, a, []Peer{peer}, paths)
		waitState(t, a, peer.Name, "Established", 30*time.Second)
		return a
	}
	r := l.FRR
	routes := func(t testing.TB) (fresh, stale int) {
		for _, pfx := range []string{svc4.String(), svc6.String()} {
			for _, p := range r.routes(t, pfx) {
				if p.Stale {
					stale++
				} else {
					fresh++
				}
			}
		}
		return fresh, stale
	}
	waitRoutes := func(t testing.TB, fresh, stale int) {
		t.Helper()
		waitFor(t, 30*time.Second, fmt.Sprintf("the router to have %d fresh and %d stale routes", fresh, stale), func() bool {
			f, s := routes(t)
			return f == fresh && s == stale
		})
	}

	// A speaker that dies.
	first := l.background(t, "first", func(t *testing.T) {
		announce(t)
		select {} // until killed
	})
	if !l.child {
		waitRoutes(t, 2, 0)
		first.kill(t)
		waitRoutes(t, 0, 2)
		if n := r.neighbors(t)[nodeV4.String()]; n.State == "Established" {
			t.Errorf("router still has the session of a dead speaker: %+v", n)
		}
	}
	// The next one takes over the routes, then stops for a restart.
	l.speaker(t, "second", func(t *testing.T) {
		a := announce(t)
		waitRoutes(t, 2, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.CloseForRestart(ctx); err != nil {
			t.Fatal(err)
		}
		waitRoutes(t, 0, 2)
	})
	// The last one stops for good: routes withdrawn.
	l.speaker(t, "third", func(t *testing.T) {
		a := announce(t)
		waitRoutes(t, 2, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Fatal(err)
		}
		waitRoutes(t, 0, 0)
	})
}

// testLogger logs to t at the announcer's most verbose level.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(teeWriter{t, &syncBuffer{}}, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
}

// TestLabClose: Close withdraws the paths, then closes every session with
// a Cease, before it returns.
func TestLabClose(t *testing.T) {
	t.Parallel()
	l := ebgpLab(t)
	l.speaker(t, "", func(t *testing.T) {
		a, err := New(Config{RouterID: nodeV4, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		peers := []Peer{v4Peer(), v6Peer()}
		setDesired(t, a, peers, []Path{
			{Prefix: svc4, NextHop: nodeV4, Peers: []string{"rtr-v4", "rtr-v6"}},
			{Prefix: svc6, NextHop: nodeV6, Peers: []string{"rtr-v4", "rtr-v6"}},
		})
		r := l.FRR
		waitFor(t, 30*time.Second, "the router to have both paths from both sessions", func() bool {
			return len(r.routes(t, svc4.String())) == 2 && len(r.routes(t, svc6.String())) == 2
		})
		before := r.neighbors(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "the router to see both sessions closed with a Cease", func() bool {
			n := r.neighbors(t)
			return n[nodeV4.String()].State != "Established" && n[nodeV6.String()].State != "Established"
		})
		after := r.neighbors(t)
		for _, addr := range []string{nodeV4.String(), nodeV6.String()} {
			n := after[addr]
			t.Logf("router's neighbour %s after Close: %+v", addr, n)
			if !strings.Contains(n.LastNotification, "Cease") {
				t.Errorf("neighbour %s: last NOTIFICATION %q, want a Cease", addr, n.LastNotification)
			}
			if n.MessageStats.UpdatesRecv <= before[addr].MessageStats.UpdatesRecv {
				t.Errorf("neighbour %s: no withdrawal before the Cease (UPDATEs received %d, then %d)", addr,
					before[addr].MessageStats.UpdatesRecv, n.MessageStats.UpdatesRecv)
			}
		}
		if n := len(r.routes(t, svc4.String())) + len(r.routes(t, svc6.String())); n != 0 {
			t.Errorf("the router still has %d paths", n)
		}
		if err := a.SetDesired(context.Background(), peers, nil); err == nil {
			t.Error("SetDesired after Close succeeded")
		}
	})
}

// TestLabBFDDownBeforeBGP: BFD going down while the BGP session is not
// established must not end the next session (gobgp 4.8 queues the reset
// and would send it the moment the session comes up; the announcer
// re-adds the neighbour to drop it).
func TestLabBFDDownBeforeBGP(t *testing.T) {
	t.Parallel()
	bfdPeer := []string{"peer 198.51.100.2 local-address 198.51.100.1 interface eth0", " profile lab", "exit"}
	l := newLab(t, frrConfig{
		// BGP shut, BFD on its own in bfdd: FRR 8.4's bgpd would restart
		// its BFD session when BGP comes up and reset BGP once itself
		// (FRR issue 17337), which would hide what this test looks for.
		Neighbors: []frrNeighbor{{Addr: nodeV4.String(), RemoteAS: "64512", Local: routerV4.String(), Shutdown: true}},
		BFDPeers:  bfdPeer,
	})
	l.speaker(t, "", func(t *testing.T) {
		a, _ := newAnnouncer(t, Config{RouterID: nodeV4})
		peer := v4Peer()
		peer.BFD = &BFD{}
		setDesired(t, a, []Peer{peer}, []Path{{Prefix: svc4, NextHop: nodeV4, Peers: []string{peer.Name}}})
		waitFor(t, 30*time.Second, "BFD to be Up", func() bool { return session(t, a, peer.Name).BFDState == "Up" })
		r := l.FRR
		r.configure(t, "bfd", bfdPeer[0], "shutdown")
		waitFor(t, 10*time.Second, "BFD to be Down", func() bool { return session(t, a, peer.Name).BFDState == "Down" })
		// The announcer drops the queued reset flushAfter after BFD went
		// down. A session established before that is still ended once (a
		// known window, see doc.go); the guarantee tested here is for the
		// sessions after it. Without this wait the router, quick on an idle
		// machine, established one 0.4 s after BFD went down.
		time.Sleep(4 * flushAfter)
		r.configure(t, "bfd", bfdPeer[0], "no shutdown")
		r.configure(t, "router bgp 64500", "no neighbor "+nodeV4.String()+" shutdown")
		s := waitState(t, a, peer.Name, "Established", 60*time.Second)
		waitFor(t, 10*time.Second, "the router to have the path", func() bool { return len(r.routes(t, svc4.String())) == 1 })
		// The session stays up: no NOTIFICATION left over from the BFD
		// reset ends it.
		time.Sleep(3 * time.Second)
		if now := session(t, a, peer.Name); now.State != "Established" || !now.Since.Equal(s.Since) {
			t.Errorf("session after 3 s: %+v, want it established since %s", now, s.Since)
		}
		// The router counts one session, or two if the re-add came late
		// on a loaded machine and reset the first one; what matters is
		// above: the session that stands stays up.
		if n := r.neighbors(t)[nodeV4.String()]; n.ConnectionsEstablished > 2 {
			t.Errorf("router's session: %+v, want it established at most twice", n)
		}
	})
}

// TestLabOneUpdatePerPeer: with many paths announced (2,000 in make test,
// PORTICO_BGP_UPDATE_PATHS to change; make bench runs 10,000), adding one
// sends one UPDATE to each peer, removing one one withdrawal, by the
// router's count and by gobgp's.
func TestLabOneUpdatePerPeer(t *testing.T) {
	t.Parallel()
	l := ebgpLab(t)
	l.speaker(t, "", func(t *testing.T) {
		a, err := New(Config{RouterID: nodeV4, Logger: slog.New(slog.NewTextHandler(teeWriter{t, &syncBuffer{}}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close(context.Background()) })
		peers := []Peer{v4Peer(), v6Peer()}
		n := 2000
		if v := os.Getenv("PORTICO_BGP_UPDATE_PATHS"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 65000 {
				t.Fatalf("PORTICO_BGP_UPDATE_PATHS=%q: want a number of paths from 1 to 65000", v)
			}
		}
		paths := make([]Path, n+1)
		base := netip.MustParseAddr("2001:db8:2::").As16()
		for i := range paths {
			addr := base
			addr[14], addr[15] = byte(i>>8), byte(i)
			paths[i] = Path{Prefix: netip.PrefixFrom(netip.AddrFrom16(addr), 128), NextHop: nodeV6, Peers: []string{"rtr-v4", "rtr-v6"}}
		}
		r := l.FRR
		received := func() (v4, v6 int) {
			var sum frrSummary
			r.show(t, "show bgp summary json", &sum)
			return sum.IPv6.Peers[nodeV4.String()].PfxRcd, sum.IPv6.Peers[nodeV6.String()].PfxRcd
		}
		defer func() {
			if t.Failed() {
				v4, v6 := received()
				t.Logf("at the end: router has %d and %d paths; sessions %+v; router: %+v", v4, v6, a.Sessions(), r.neighbors(t))
			}
		}()
		start := time.Now()
		setDesired(t, a, peers, paths[:n])
		t.Logf("SetDesired with %d paths to 2 peers took %s", n, time.Since(start).Round(time.Millisecond))
		for _, p := range peers {
			waitState(t, a, p.Name, "Established", 30*time.Second)
		}
		lastLog := time.Now()
		waitFor(t, 5*time.Minute, "the router to have every path from both sessions", func() bool {
			v4, v6 := received()
			if time.Since(lastLog) > 10*time.Second {
				lastLog = time.Now()
				t.Logf("%s after SetDesired: the router has %d and %d of %d paths; sessions %+v",
					time.Since(start).Round(time.Second), v4, v6, n, a.Sessions())
			}
			return v4 == n && v6 == n
		})
		took := time.Since(start)
		t.Logf("%d paths at the router from both sessions %s after SetDesired began", n, took.Round(time.Millisecond))
		fmt.Printf("BENCH bgp_paths_to_router_%d %.3f s\n", n, took.Seconds())

		// counts reads the UPDATEs the router received and gobgp sent, per
		// session, once they stopped moving.
		counts := func() map[string][2]uint64 {
			var last map[string][2]uint64
			waitFor(t, 30*time.Second, "UPDATE counters to settle", func() bool {
				cur := map[string][2]uint64{}
				nb := r.neighbors(t)
				for _, s := range a.Sessions() {
					addr := map[string]string{"rtr-v4": nodeV4.String(), "rtr-v6": nodeV6.String()}[s.Peer]
					cur[s.Peer] = [2]uint64{uint64(nb[addr].MessageStats.UpdatesRecv), s.UpdatesSent}
				}
				settled := maps.Equal(cur, last)
				last = cur
				if !settled {
					time.Sleep(200 * time.Millisecond)
				}
				return settled
			})
			return last
		}
		before := counts()
		setDesired(t, a, peers, paths)
		waitFor(t, 30*time.Second, "the router to have the new path from both sessions", func() bool {
			v4, v6 := received()
			return v4 == n+1 && v6 == n+1
		})
		added := counts()
		setDesired(t, a, peers, paths[1:])
		waitFor(t, 30*time.Second, "the router to drop a path from both sessions", func() bool {
			v4, v6 := received()
			return v4 == n && v6 == n
		})
		removed := counts()
		for _, p := range peers {
			b, ad, rm := before[p.Name], added[p.Name], removed[p.Name]
			t.Logf("%s: UPDATEs received by the router / sent by gobgp: %v, after adding one path %v, after removing one %v", p.Name, b, ad, rm)
			if ad[0]-b[0] != 1 || ad[1]-b[1] != 1 || rm[0]-ad[0] != 1 || rm[1]-ad[1] != 1 {
				t.Errorf("%s: adding and removing one path of %d sent %v and %v UPDATEs (router's count, gobgp's), want 1 each",
					p.Name, n, [2]uint64{ad[0] - b[0], ad[1] - b[1]}, [2]uint64{rm[0] - ad[0], rm[1] - ad[1]})
			}
		}
	})
}

// TestLabPeerChanges: changing a peer's timers or adding BFD does not reset
// its session; removing a peer closes it with a Cease and touches no other;
// a router ID the announcer cannot use is reported.
func TestLabPeerChanges(t *testing.T) {
	t.Parallel()
	l := ebgpLab(t)
	l.speaker(t, "", func(t *testing.T) {
		a, _ := newAnnouncer(t, Config{RouterID: nodeV4})
		v4, v6 := v4Peer(), v6Peer()
		paths := []Path{
			{Prefix: svc4, NextHop: nodeV4, Peers: []string{"rtr-v4", "rtr-v6"}},
			{Prefix: svc6, NextHop: nodeV6, Peers: []string{"rtr-v4", "rtr-v6"}},
		}
		setDesired(t, a, []Peer{v4, v6}, paths)
		s4 := waitState(t, a, "rtr-v4", "Established", 30*time.Second)
		waitState(t, a, "rtr-v6", "Established", 30*time.Second)
		r := l.FRR
		waitFor(t, 10*time.Second, "the router to have both paths from both sessions", func() bool {
			return len(r.routes(t, svc4.String())) == 2 && len(r.routes(t, svc6.String())) == 2
		})
		before := r.neighbors(t)

		v4.HoldTime, v4.KeepaliveTime, v4.ConnectTime = 30*time.Second, 10*time.Second, 3*time.Second
		v4.BFD = &BFD{} // the router runs no BFD for it: stays Down, harmlessly
		v4.RouterID = netip.MustParseAddr("198.51.100.250")
		err := a.SetDesired(context.Background(), []Peer{v4, v6}, paths)
		if err != nil {
			t.Fatalf("SetDesired: %v", err)
		}
		if s := session(t, a, "rtr-v4"); !strings.Contains(s.ConfigError, "router ID 198.51.100.250") || s.BFDState == "" {
			t.Errorf("rtr-v4 after the change: %+v, want a ConfigError about its router ID and a BFD state", s)
		}
		for i := range paths {
			paths[i].Peers = []string{"rtr-v4"}
		}
		setDesired(t, a, []Peer{v4}, paths) // rtr-v6 goes
		waitFor(t, 10*time.Second, "the router to see rtr-v6's session closed", func() bool {
			return r.neighbors(t)[nodeV6.String()].State != "Established"
		})
		waitFor(t, 10*time.Second, "the router to drop rtr-v6's paths", func() bool {
			return len(r.routes(t, svc4.String())) == 1 && len(r.routes(t, svc6.String())) == 1
		})
		after := r.neighbors(t)
		if n := after[nodeV6.String()]; !strings.Contains(n.LastNotification, "Cease") {
			t.Errorf("removed peer: router's neighbour %+v, want a Cease", n)
		}
		if b, n := before[nodeV4.String()], after[nodeV4.String()]; n.State != "Established" || n.ConnectionsEstablished != b.ConnectionsEstablished {
			t.Errorf("rtr-v4 was reset by a change of timers and BFD, or by removing another peer: %+v -> %+v", b, n)
		}
		if s := session(t, a, "rtr-v4"); s.State != "Established" || !s.Since.Equal(s4.Since) {
			t.Errorf("rtr-v4: %+v, want it established since %s", s, s4.Since)
		}
		if got := a.Sessions(); len(got) != 1 {
			t.Errorf("Sessions after removing a peer: %+v", got)
		}
	})
}

// TestLabHoldTimer: without BFD, a silent router is noticed when the hold
// time runs out, said in words, and Changes signals it.
func TestLabHoldTimer(t *testing.T) {
	t.Parallel()
	l := newLab(t, frrConfig{Neighbors: []frrNeighbor{{Addr: nodeV4.String(), RemoteAS: "64512"}}})
	l.speaker(t, "", func(t *testing.T) {
		a, _ := newAnnouncer(t, Config{RouterID: nodeV4})
		peer := v4Peer()
		peer.HoldTime = 3 * time.Second
		setDesired(t, a, []Peer{peer}, nil)
		select {
		case <-a.Changes():
		case <-time.After(30 * time.Second):
			t.Fatal("no Changes signal after adding a peer")
		}
		waitState(t, a, peer.Name, "Established", 30*time.Second)
		for len(a.Changes()) > 0 {
			<-a.Changes()
		}
		l.inRouter(t, "ip", "link", "set", "eth0", "down")
		select {
		case <-a.Changes():
		case <-time.After(30 * time.Second):
			t.Fatal("no Changes signal after the router went silent")
		}
		waitFor(t, 30*time.Second, "the hold timer to expire", func() bool {
			s := session(t, a, peer.Name)
			return s.State != "Established" && strings.HasPrefix(s.LastError, "hold timer expired")
		})
		t.Logf("%+v", session(t, a, peer.Name))
		l.inRouter(t, "ip", "link", "set", "eth0", "up")
		if s := waitState(t, a, peer.Name, "Established", 60*time.Second); s.LastError != "" {
			t.Errorf("LastError %q after the session came back", s.LastError)
		}
	})
}
