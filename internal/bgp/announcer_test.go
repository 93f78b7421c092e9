package bgp

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Tests without a router or root.

func TestNotificationWords(t *testing.T) {
	c := &peerConf{myASN: 64512, peerASN: 64500, addr: netip.MustParseAddr("198.51.100.1"), port: 179}
	for _, tc := range []struct {
		got, want string
	}{
		{receivedWords(2, 2, c), "peer sent NOTIFICATION: bad peer AS (the router does not expect AS 64512"},
		{sentWords(2, 2, c), "sent NOTIFICATION: bad peer AS (the router's OPEN does not carry AS 64500"},
		{receivedWords(6, 2, c), "peer sent NOTIFICATION: administrative shutdown"},
		{receivedWords(6, 5, c), "peer sent NOTIFICATION: connection rejected (is this node configured"},
		{receivedWords(6, 10, c), "peer sent NOTIFICATION: BFD down"},
		{receivedWords(2, 6, c), "peer sent NOTIFICATION: unacceptable hold time"},
		{receivedWords(2, 99, c), "peer sent NOTIFICATION: OPEN message error (subcode 99)"},
		{receivedWords(9, 1, c), "peer sent NOTIFICATION: error code 9, subcode 1"},
		{outgoingWords("notification-received code 2(open) subcode 2(bad peer as)", c), "peer sent NOTIFICATION: bad peer AS"},
		{outgoingWords("notification-sent code 2(open) subcode 6(unacceptable hold time)", c), "sent NOTIFICATION: unacceptable hold time"},
		{outgoingWords("read-failed", c), "the router closed the connection"},
		{dialWords("dial tcp 198.51.100.2:0->198.51.100.1:179: connect: connection refused", c), "connection refused: nothing accepts BGP connections on 198.51.100.1:179"},
		{dialWords("dial tcp 198.51.100.2:0->198.51.100.1:179: i/o timeout", c), "no answer to OPEN: check the password and that 198.51.100.1:179 is reachable"},
		{dialWords("connect: no route to host", c), "cannot reach 198.51.100.1:179: no route to host"},
		{holdWords(&peerConf{hold: 9}), "hold timer expired: nothing heard from the router for 9s"},
	} {
		if !strings.HasPrefix(tc.got, tc.want) {
			t.Errorf("got %q, want it to start with %q", tc.got, tc.want)
		}
	}
	pw := *c
	pw.password = "x"
	if got := dialWords("i/o timeout", &pw); !strings.HasPrefix(got, "no answer to OPEN: check the password (") {
		t.Errorf("timeout with a password: %q", got)
	}
	if code, sub, ok := parseCodes("notification-received code 6(cease) subcode 10(undefined)"); !ok || code != 6 || sub != 10 {
		t.Errorf("parseCodes: %d %d %v", code, sub, ok)
	}
	if _, _, ok := parseCodes("read-failed"); ok {
		t.Error("parseCodes found codes in read-failed")
	}
}

func TestNormalizePeer(t *testing.T) {
	base := Peer{Name: "p", Address: netip.MustParseAddr("198.51.100.1"), MyASN: 64512, PeerASN: 4200000001}
	c, err := normalizePeer(base)
	if err != nil {
		t.Fatal(err)
	}
	if c.port != 179 || c.hold != 90 || c.keepalive != 30 || c.conn != 5 || c.bfd || c.ibgp() {
		t.Errorf("defaults: %+v", c)
	}
	b := base
	b.HoldTime, b.KeepaliveTime, b.ConnectTime = 1500*time.Millisecond+8*time.Second, 0, 500*time.Millisecond
	b.BFD = &BFD{Passive: true}
	if c, err = normalizePeer(b); err != nil || c.hold != 10 || c.keepalive != 4 || c.conn != 1 ||
		!c.bfd || c.bfdRx != 300000 || c.bfdTx != 300000 || c.bfdMult != 3 || !c.bfdPassive {
		t.Errorf("rounding and BFD defaults: %+v, %v", c, err)
	}
	for name, mod := range map[string]func(p *Peer){
		"no name":             func(p *Peer) { p.Name = "" },
		"not a unicast":       func(p *Peer) { p.Address = netip.Addr{} },
		"cannot reach":        func(p *Peer) { p.SourceAddress = netip.MustParseAddr("2001:db8::2") },
		"ASN 0":               func(p *Peer) { p.PeerASN = 0 },
		"under 3 s":           func(p *Peer) { p.HoldTime = 2 * time.Second },
		"not below the hold":  func(p *Peer) { p.HoldTime, p.KeepaliveTime = 9*time.Second, 9*time.Second },
		"router ID":           func(p *Peer) { p.RouterID = netip.MustParseAddr("2001:db8::1") },
		"detect multiplier 1": func(p *Peer) { p.BFD = &BFD{DetectMultiplier: 1} },
		"out of range (1 ms":  func(p *Peer) { p.BFD = &BFD{ReceiveInterval: time.Microsecond} },
	} {
		p := base
		mod(&p)
		if _, err := normalizePeer(p); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

func TestPeerHidesPassword(t *testing.T) {
	p := Peer{Name: "p", Address: netip.MustParseAddr("198.51.100.1"), Password: "Sw0rdf1sh", BFD: &BFD{}}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("peer", "peer", p, "peers", []Peer{p})
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s %q", p, p, p, p, p), fmt.Sprint([]Peer{p}), buf.String()} {
		if strings.Contains(s, "Sw0rdf1sh") {
			t.Errorf("password printed: %s", s)
		}
	}
	if !strings.Contains(fmt.Sprintf("%+v", p), "Name:p") {
		t.Errorf("%%+v lost the rest: %+v", p)
	}
}

func TestWantRoutes(t *testing.T) {
	want := map[string]peerConf{
		"v4": {addr: netip.MustParseAddr("198.51.100.1")},
		"v6": {addr: netip.MustParseAddr("2001:db8::1")},
	}
	pref := uint32(200)
	paths := []Path{
		{Prefix: netip.MustParsePrefix("198.51.100.100/32"), Communities: []uint32{3, 1, 3}, Peers: []string{"v4", "v4"}},
		{Prefix: netip.MustParsePrefix("198.51.100.100/32"), Communities: []uint32{1, 3}, Peers: []string{"v4"}},                        // the same: fine
		{Prefix: netip.MustParsePrefix("198.51.100.100/32"), LocalPref: &pref, Peers: []string{"v4"}},                                   // conflicting
		{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), Peers: []string{"v4"}},                                                       // no next hop of its family
		{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), Peers: []string{"v6", "nope"}},                                               // unknown peer
		{Prefix: netip.MustParsePrefix("198.51.100.101/24"), Peers: []string{"v4"}},                                                     // host bits
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: netip.MustParseAddr("2001:db8::2"), Peers: []string{"v4"}},          // wrong family
		{Prefix: netip.MustParsePrefix("198.51.100.128/25"), NextHop: netip.MustParseAddr("198.51.100.2"), Peers: []string{"v6", "v4"}}, // fine
	}
	got, errs := wantRoutes(want, paths)
	text := fmt.Sprint(errs)
	for _, w := range []string{"listed twice with different attributes", "no next hop", `names peer "nope"`, "host bits", "not a unicast address of the prefix's family"} {
		if !strings.Contains(text, w) {
			t.Errorf("errors %v lack %q", errs, w)
		}
	}
	if len(errs) != 5 {
		t.Errorf("%d errors, want 5: %v", len(errs), errs)
	}
	if r := got["v4"][netip.MustParsePrefix("198.51.100.100/32")]; fmt.Sprint(r.communities) != "[1 3]" || r.hasLocalPref {
		t.Errorf("v4 path: %+v", r)
	}
	if len(got["v4"]) != 2 || len(got["v6"]) != 2 {
		t.Errorf("routes: %+v", got)
	}
}

func TestAPIPath(t *testing.T) {
	pfx := netip.MustParsePrefix("2001:db8:1::/64")
	p, err := apiPath(pfx, &route{localPref: 5, hasLocalPref: true, communities: []uint32{1},
		large: []LargeCommunity{{1, 2, 3}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Family != bgp.RF_IPv6_UC {
		t.Errorf("family %v", p.Family)
	}
	types := map[bgp.BGPAttrType]bgp.PathAttributeInterface{}
	for _, a := range p.Attrs {
		types[a.GetType()] = a
	}
	if o, ok := types[bgp.BGP_ATTR_TYPE_ORIGIN].(*bgp.PathAttributeOrigin); !ok || o.Value != bgp.BGP_ORIGIN_ATTR_TYPE_IGP {
		t.Errorf("origin: %v", types[bgp.BGP_ATTR_TYPE_ORIGIN])
	}
	if mp, ok := types[bgp.BGP_ATTR_TYPE_MP_REACH_NLRI].(*bgp.PathAttributeMpReachNLRI); !ok || mp.Nexthop != netip.IPv6Unspecified() {
		t.Errorf("MP_REACH: %v", types[bgp.BGP_ATTR_TYPE_MP_REACH_NLRI])
	}
	for _, want := range []bgp.BGPAttrType{bgp.BGP_ATTR_TYPE_LOCAL_PREF, bgp.BGP_ATTR_TYPE_COMMUNITIES, bgp.BGP_ATTR_TYPE_LARGE_COMMUNITY} {
		if types[want] == nil {
			t.Errorf("no attribute %v in %v", want, p.Attrs)
		}
	}
	p, err = apiPath(netip.MustParsePrefix("198.51.100.0/24"), &route{nextHop: netip.MustParseAddr("198.51.100.2")}, true)
	if err != nil || !p.Withdrawal || len(p.Attrs) != 2 {
		t.Errorf("IPv4 withdrawal: %+v, %v", p, err)
	}
	if nh, ok := p.Attrs[1].(*bgp.PathAttributeNextHop); !ok || nh.Value != netip.MustParseAddr("198.51.100.2") {
		t.Errorf("IPv4 next hop: %v", p.Attrs[1])
	}
}

func TestGobgpHandler(t *testing.T) {
	var buf bytes.Buffer
	var secrets atomic.Pointer[[]string]
	s := []string{"Sw0rdf1sh"}
	secrets.Store(&s)
	var seen []gobgpRecord
	h := &gobgpHandler{inner: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		observe: func(r gobgpRecord) { seen = append(seen, r) }, secrets: &secrets, repeats: &repeats{}}
	log := slog.New(h).With("Topic", "Peer", "Key", "198.51.100.1")
	log.Debug("sent update", "nlri", "x")                                     // below debug: dropped
	log.Info("Peer Up")                                                       // to debug
	log.Error("oops", "Error", fmt.Errorf("key Sw0rdf1sh rejected"))          // to warn, redacted
	log.Debug("failed to connect", "Error", "connect: connection refused")    // observed, not shown
	log.WithGroup("g").Warn("received notification", "Code", 2, "Subcode", 2) // observed through a group
	log.Error(stopNoise, "Error", "BGP server is not running")                // dropped
	log.Warn("Can't listen UDP", "Error", "address in use")                   // once,
	log.Warn("Can't listen UDP", "Error", "address in use")                   // not twice
	out := buf.String()
	for _, want := range []string{"level=DEBUG msg=\"Peer Up\" component=gobgp Topic=Peer Key=198.51.100.1", "level=WARN msg=oops", "key <redacted> rejected"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"sent update", "Sw0rdf1sh", "failed to connect", stopNoise} {
		if strings.Contains(out, bad) {
			t.Errorf("output has %q:\n%s", bad, out)
		}
	}
	if n := strings.Count(out, "Can't listen UDP"); n != 1 {
		t.Errorf("a repeated warning passed %d times, want once:\n%s", n, out)
	}
	if len(seen) != 4 || seen[0].str("Key") != "198.51.100.1" || seen[0].str("Error") != "connect: connection refused" {
		t.Fatalf("observed: %+v", seen)
	}
	if code, _ := seen[1].int("Code"); code != 2 || seen[1].str("Key") != "198.51.100.1" {
		t.Errorf("observed through a group: %+v", seen[1])
	}
}

// TestRejectedPeerWithoutGobgp: a peer that cannot run is reported without
// starting gobgp; Close is fine without gobgp.
func TestRejectedPeerWithoutGobgp(t *testing.T) {
	if _, err := New(Config{RouterID: netip.MustParseAddr("2001:db8::1")}); err == nil {
		t.Error("New accepted an IPv6 router ID")
	}
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = a.SetDesired(context.Background(), []Peer{{Name: "broken", MyASN: 1, PeerASN: 2}},
		[]Path{{Prefix: netip.MustParsePrefix("198.51.100.100/32"), Peers: []string{"broken"}}})
	if err == nil || !strings.Contains(err.Error(), `peer "broken"`) || !strings.Contains(err.Error(), `names peer "broken"`) {
		t.Errorf("SetDesired: %v", err)
	}
	s := a.Sessions()
	if len(s) != 1 || s[0].Peer != "broken" || s[0].State != "Idle" || !strings.Contains(s[0].ConfigError, "not a unicast IP address") {
		t.Errorf("Sessions: %+v", s)
	}
	if err := a.SetDesired(context.Background(), nil, nil); err != nil || len(a.Sessions()) != 0 {
		t.Errorf("empty SetDesired: %v, %+v", err, a.Sessions())
	}
	if err := a.Close(context.Background()); err != nil {
		t.Error(err)
	}
	if err := a.SetDesired(context.Background(), nil, nil); err == nil {
		t.Error("SetDesired after Close succeeded")
	}
}

func TestSortedSet(t *testing.T) {
	tests := []struct {
		in, want []uint32
		shared   bool // the result is in itself
	}{
		{nil, nil, true},
		{[]uint32{1}, []uint32{1}, true},
		{[]uint32{1, 2, 3}, []uint32{1, 2, 3}, true},
		{[]uint32{3, 1, 2}, []uint32{1, 2, 3}, false},
		{[]uint32{1, 1, 2}, []uint32{1, 2}, false},
	}
	for _, tt := range tests {
		orig := slices.Clone(tt.in)
		got := sortedSet(tt.in, cmp.Compare[uint32])
		if !slices.Equal(got, tt.want) {
			t.Errorf("sortedSet(%v) = %v, want %v", orig, got, tt.want)
		}
		if !slices.Equal(tt.in, orig) {
			t.Errorf("sortedSet changed its input %v to %v", orig, tt.in)
		}
		if len(got) > 0 && (&got[0] == &tt.in[0]) != tt.shared {
			t.Errorf("sortedSet(%v): result shares the input: %v, want %v", orig, !tt.shared, tt.shared)
		}
	}
}
