package e2etest

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// bgpPeer returns a BGPPeer from the nodes (AS lab.NodeASN) to the lab's
// router on its IPv4 address, with a short hold time so a test never waits
// for the default 90 s.
func bgpPeer(name string) *porticov1.BGPPeer {
	return &porticov1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: porticov1.BGPPeerSpec{
		MyASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: "198.51.100.1",
		HoldTime: &metav1.Duration{Duration: 9 * time.Second}, ConnectTime: &metav1.Duration{Duration: time.Second},
	}}
}

// create creates obj and deletes it when the test ends.
func create(t *testing.T, ctx context.Context, obj client.Object) {
	t.Helper()
	if err := theLab.Client.Create(ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	cleanupDelete(t, obj)
}

// bgpSetup creates the BGP pool (not auto-assigned), the given peers and a
// BGPAdvertisement of the pool (changed by edit, if given), all deleted when
// the test ends.
func bgpSetup(t *testing.T, ctx context.Context, name string, edit func(*porticov1.BGPAdvertisementSpec), peers ...*porticov1.BGPPeer) {
	t.Helper()
	if err := createPool(ctx, name, false, lab.BGPPoolV4, lab.BGPPoolV6); err != nil {
		t.Fatal(err)
	}
	cleanupDelete(t, &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}})
	for _, p := range peers {
		create(t, ctx, p)
	}
	ad := &porticov1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	ad.Spec.IPAddressPools = []string{name}
	if edit != nil {
		edit(&ad.Spec)
	}
	create(t, ctx, ad)
}

// bgpService creates a Service with an IP from pool.
func bgpService(t *testing.T, ctx context.Context, name, pool string, o lab.ServiceOpts) netip.Addr {
	t.Helper()
	if o.Annotations == nil {
		o.Annotations = map[string]string{}
	}
	o.Annotations["portico.dev/address-pool"] = pool
	return service(t, ctx, name, o)
}

func hostPrefix(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, ip.BitLen()) }

// nodeAddrs returns the data addresses of the family of ip of the named
// nodes (every node when none are named), sorted.
func nodeAddrs(ip netip.Addr, names ...string) []netip.Addr {
	var out []netip.Addr
	for _, n := range theLab.Nodes {
		if len(names) > 0 && !slices.Contains(names, n.Name) {
			continue
		}
		a := n.IPv4
		if ip.Is6() {
			a = n.IPv6
		}
		out = append(out, netip.MustParseAddr(a))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// waitNextHops waits until the router's forwarding table has exactly want
// as the next hops of prefix (none: the route is gone).
func waitNextHops(t *testing.T, ctx context.Context, prefix netip.Prefix, want []netip.Addr) {
	t.Helper()
	var last string
	for {
		fib, err := theLab.Router.FIB(prefix)
		var got []netip.Addr
		if fib != nil {
			got = fib.NextHops
		}
		if err == nil && slices.Equal(got, want) {
			return
		}
		last = fmt.Sprintf("next hops %v (error %v)", got, err)
		select {
		case <-ctx.Done():
			t.Fatalf("the router's route for %s: want next hops %v, last seen %s", prefix, want, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitSession waits until ok accepts node's session to peer in its
// SpeakerStatus, and returns it.
func waitSession(t *testing.T, ctx context.Context, node, peer string, ok func(porticov1.BGPSessionStatus) bool) porticov1.BGPSessionStatus {
	t.Helper()
	var last porticov1.BGPSessionStatus
	for {
		var st porticov1.SpeakerStatus
		if err := theLab.Client.Get(ctx, client.ObjectKey{Name: node}, &st); err == nil {
			for _, s := range st.Status.BGPSessions {
				if s.Peer == peer {
					last = s
					if ok(s) {
						return s
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s's session to %s: last seen %+v", node, peer, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func established(s porticov1.BGPSessionStatus) bool { return s.State == "Established" }

// extReaches checks that the external client behind the router reaches ip,
// and returns the nodes that answered over a few requests.
func extReaches(t *testing.T, ctx context.Context, ip netip.Addr) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for range 8 {
		body, err := theLab.ExtHTTPGet(ctx, ip, 2*time.Second)
		if err != nil {
			t.Fatalf("the external client cannot reach %s: %v", ip, err)
		}
		seen[strings.TrimSpace(body)] = true
	}
	return seen
}

func TestBGPECMPIPv4AndIPv6(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	bgpSetup(t, ctx, "bgp-ecmp", nil, bgpPeer("tor-ecmp"))
	v4 := bgpService(t, ctx, "bgp-ecmp-v4", "bgp-ecmp", lab.ServiceOpts{})
	v6 := bgpService(t, ctx, "bgp-ecmp-v6", "bgp-ecmp", lab.ServiceOpts{IPv6: true})
	for _, ip := range []netip.Addr{v4, v6} {
		// IPv6 routes travel over the IPv4 sessions (multiprotocol BGP),
		// next hop each node's own IPv6 address.
		waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))
		route, err := theLab.Router.Route(hostPrefix(ip))
		if err != nil || route == nil {
			t.Fatalf("route %s: %v", ip, err)
		}
		if got := len(route.ECMP()); got != len(theLab.Nodes) {
			t.Errorf("%s: %d ECMP next hops at the router, want %d", ip, got, len(theLab.Nodes))
		}
		for _, p := range route.Paths {
			if p.Origin != "IGP" || p.ASPath != fmt.Sprint(lab.NodeASN) {
				t.Errorf("%s: path from %s has origin %q, AS path %q", ip, p.Peer, p.Origin, p.ASPath)
			}
		}
		t.Logf("%s reached from the external client on %v", ip, mapsKeys(extReaches(t, ctx, ip)))
	}
	// Each node says what it announces, to whom.
	var sa porticov1.ServiceAnnouncement
	for {
		if err := theLab.Client.Get(ctx, client.ObjectKey{Namespace: lab.Namespace, Name: "bgp-ecmp-v4"}, &sa); err == nil && len(sa.Status.BGP) == len(theLab.Nodes) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ServiceAnnouncement BGP entries: %+v", sa.Status.BGP)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, e := range sa.Status.BGP {
		if e.IP != v4.String() || !slices.Equal(e.Peers, []string{"tor-ecmp"}) {
			t.Errorf("entry %+v", e)
		}
	}
	for _, n := range theLab.Nodes {
		s := waitSession(t, ctx, n.Name, "tor-ecmp", established)
		if s.PrefixesAdvertised < 2 || s.Address != "198.51.100.1" {
			t.Errorf("%s session status %+v", n.Name, s)
		}
	}
}

func TestBGPTrafficPolicyLocalFollowsEndpoints(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	bgpSetup(t, ctx, "bgp-local", nil, bgpPeer("tor-local"))
	ip := bgpService(t, ctx, "bgp-local", "bgp-local", lab.ServiceOpts{Local: true, EndpointNodes: []string{"node2"}})
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip, "node2"))
	if seen := extReaches(t, ctx, ip); !slices.Equal(mapsKeys(seen), []string{"node2"}) {
		t.Errorf("answers from %v, want only node2", mapsKeys(seen))
	}
	if err := theLab.SetEndpoints(ctx, "bgp-local", false, "node1", "node3"); err != nil {
		t.Fatal(err)
	}
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip, "node1", "node3"))
	if err := theLab.SetEndpoints(ctx, "bgp-local", false); err != nil {
		t.Fatal(err)
	}
	waitNextHops(t, ctx, hostPrefix(ip), nil)
}

func TestBGPCommunitiesAndAggregation(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	create(t, ctx, &porticov1.Community{ObjectMeta: metav1.ObjectMeta{Name: "bgp-attrs"}, Spec: porticov1.CommunitySpec{
		Communities: []porticov1.CommunityAlias{{Name: "lab-large", Value: "large:64500:7:8"}}}})
	agg := int32(27)
	bgpSetup(t, ctx, "bgp-attrs", func(s *porticov1.BGPAdvertisementSpec) {
		s.Communities = []porticov1.CommunityRef{"64500:100", "lab-large"}
		s.AggregationLength = &agg
	}, bgpPeer("tor-attrs"))
	ip := bgpService(t, ctx, "bgp-attrs", "bgp-attrs", lab.ServiceOpts{})
	aggregate := netip.PrefixFrom(ip, 27).Masked()
	waitNextHops(t, ctx, aggregate, nodeAddrs(ip))
	route, err := theLab.Router.Route(aggregate)
	if err != nil || route == nil {
		t.Fatalf("route %s: %v", aggregate, err)
	}
	best := route.Best()
	if best == nil || !slices.Contains(best.Communities, "64500:100") || !slices.Contains(best.LargeCommunities, "64500:7:8") {
		t.Errorf("aggregate %s attributes at the router: %+v", aggregate, best)
	}
	if fib, _ := theLab.Router.FIB(hostPrefix(ip)); fib != nil && fib.Prefix == hostPrefix(ip) {
		t.Errorf("a host route was announced beside the /27 aggregate: %+v", fib)
	}
	extReaches(t, ctx, ip)

	// A changed community reaches the running sessions as an UPDATE: the
	// router sees the new value and no session drops.
	dropped := func() map[netip.Addr]int {
		nbs, err := theLab.Router.Neighbors()
		if err != nil {
			t.Fatal(err)
		}
		out := map[netip.Addr]int{}
		for a, nb := range nbs {
			out[a] = nb.ConnectionsDropped
		}
		return out
	}
	before := dropped()
	var ad porticov1.BGPAdvertisement
	if err := theLab.Client.Get(ctx, client.ObjectKey{Name: "bgp-attrs"}, &ad); err != nil {
		t.Fatal(err)
	}
	ad.Spec.Communities = []porticov1.CommunityRef{"64500:200"}
	if err := theLab.Client.Update(ctx, &ad); err != nil {
		t.Fatal(err)
	}
	for {
		route, err := theLab.Router.Route(aggregate)
		if err == nil && route != nil && len(route.Paths) == len(theLab.Nodes) && !slices.ContainsFunc(route.Paths, func(p lab.Path) bool {
			return !slices.Equal(p.Communities, []string{"64500:200"}) || len(p.LargeCommunities) != 0
		}) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the changed community never reached the router: %+v (%v)", route, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if after := dropped(); !maps.Equal(before, after) {
		t.Errorf("a community change reset sessions: dropped before %v, after %v", before, after)
	}
}

func TestBGPPasswordAndWrongPassword(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	node := theLab.Nodes[0]
	if err := theLab.Router.Neighbor(node.IPv4, "password lab-secret-1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = theLab.Router.Neighbor(node.IPv4, "no password") })
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: lab.SystemNamespace, Name: lab.BGPPasswordSecret},
		StringData: map[string]string{"password": "lab-secret-1"}}
	create(t, ctx, sec)
	peer := bgpPeer("tor-md5")
	peer.Spec.PasswordSecretRef = &porticov1.SecretKeyRef{Name: lab.BGPPasswordSecret}
	peer.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": node.Name}}}
	bgpSetup(t, ctx, "bgp-md5", nil, peer)
	ip := bgpService(t, ctx, "bgp-md5", "bgp-md5", lab.ServiceOpts{})
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip, node.Name))
	waitSession(t, ctx, node.Name, "tor-md5", established)

	// A wrong password: the router drops our SYNs; the status says so in
	// words, and never shows the password.
	if err := theLab.Router.Neighbor(node.IPv4, "password lab-secret-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := theLab.Router.VTY(fmt.Sprintf("clear bgp %s", node.IPv4)); err != nil {
		t.Fatal(err)
	}
	s := waitSession(t, ctx, node.Name, "tor-md5", func(s porticov1.BGPSessionStatus) bool {
		return !established(s) && strings.Contains(s.LastError, "password")
	})
	if strings.Contains(s.LastError, "lab-secret") {
		t.Errorf("the password leaked into the status: %q", s.LastError)
	}
	t.Logf("wrong password reported as %q", s.LastError)
}

func TestBGPPerNodePeers(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	only := func(name, node string) *porticov1.BGPPeer {
		p := bgpPeer(name)
		p.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": node}}}
		return p
	}
	bgpSetup(t, ctx, "bgp-rack", nil, only("tor-rack-1", "node1"), only("tor-rack-3", "node3"))
	ip := bgpService(t, ctx, "bgp-rack", "bgp-rack", lab.ServiceOpts{})
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip, "node1", "node3"))
	var st porticov1.SpeakerStatus
	if err := theLab.Client.Get(ctx, client.ObjectKey{Name: "node2"}, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Status.BGPSessions) != 0 {
		t.Errorf("node2 opened sessions no peer selects it for: %+v", st.Status.BGPSessions)
	}
}

// A speaker stopping (SIGTERM) withdraws its routes before it exits.
func TestBGPSIGTERMWithdrawsFirst(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	bgpSetup(t, ctx, "bgp-term", nil, bgpPeer("tor-term"))
	ip := bgpService(t, ctx, "bgp-term", "bgp-term", lab.ServiceOpts{})
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))
	n := theLab.Nodes[1]
	t.Cleanup(func() { heal(t, n) })
	p := theLab.Proc("speaker-" + n.Name)
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The route leaves, and the router got a Cease: the speaker withdrew and
	// closed its sessions itself (not the kernel closing a dead process's
	// socket), and only then exited.
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip, others(n)...))
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatal("the speaker did not exit after SIGTERM")
	}
	nbs, err := theLab.Router.Neighbors()
	if err != nil {
		t.Fatal(err)
	}
	if nb := nbs[netip.MustParseAddr(n.IPv4)]; nb == nil || !strings.Contains(nb.LastNotification, "Cease") {
		t.Errorf("the router's last notification from %s: %+v, want a Cease", n.Name, nb)
	}
	logData, _ := os.ReadFile(p.Log)
	logText := string(logData)
	if i, j := strings.Index(logText, "gobgp stopped"), strings.Index(logText, "speaker stopped"); i < 0 || j < 0 || i > j {
		t.Errorf("the speaker did not close BGP before stopping:\n%s", tail(logText, 20))
	}
	extReaches(t, ctx, ip)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// With graceful restart the router keeps a killed speaker's routes while it
// restarts, so the external client's traffic keeps flowing.
func TestBGPGracefulRestart(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	peer := bgpPeer("tor-gr")
	peer.Spec.GracefulRestart = true
	bgpSetup(t, ctx, "bgp-gr", nil, peer)
	ip := bgpService(t, ctx, "bgp-gr", "bgp-gr", lab.ServiceOpts{})
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))
	n := theLab.Nodes[2]
	t.Cleanup(func() { heal(t, n) })
	theLab.KillSpeaker(n)
	// While the speaker is down the router keeps every next hop (stale).
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		fib, err := theLab.Router.FIB(hostPrefix(ip))
		if err != nil || fib == nil || !slices.Equal(fib.NextHops, nodeAddrs(ip)) {
			t.Fatalf("the router dropped the restarting node's route: %+v (%v)", fib, err)
		}
		if _, err := theLab.ExtHTTPGet(ctx, ip, 2*time.Second); err != nil {
			t.Fatalf("traffic stopped during the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := theLab.StartSpeaker(n); err != nil {
		t.Fatal(err)
	}
	waitSession(t, ctx, n.Name, "tor-gr", established)
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))
	extReaches(t, ctx, ip)
}

// BFD: FRR shows the sessions up with the profile's timers, and a node's
// silent death withdraws its routes long before the hold time.
func TestBGPBFD(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	rx, tx, mult := int32(100), int32(100), int32(3)
	create(t, ctx, &porticov1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "bgp-bfd"}, Spec: porticov1.BFDProfileSpec{
		ReceiveInterval: &rx, TransmitInterval: &tx, DetectMultiplier: &mult}})
	for _, n := range theLab.Nodes {
		if err := theLab.Router.Neighbor(n.IPv4, "bfd profile lab"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range theLab.Nodes {
			_ = theLab.Router.Neighbor(n.IPv4, "no bfd")
		}
	})
	peer := bgpPeer("tor-bfd")
	peer.Spec.BFDProfile = "bgp-bfd"
	peer.Spec.HoldTime = &metav1.Duration{Duration: 90 * time.Second}
	bgpSetup(t, ctx, "bgp-bfd", nil, peer)
	ip := bgpService(t, ctx, "bgp-bfd", "bgp-bfd", lab.ServiceOpts{})
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))
	for _, n := range theLab.Nodes {
		waitSession(t, ctx, n.Name, "tor-bfd", func(s porticov1.BGPSessionStatus) bool { return established(s) && s.BFDState == "Up" })
	}
	peers, err := waitBFDPeers(theLab.Router, func(ps []lab.BFDPeer) error {
		up := 0
		for _, p := range ps {
			if p.Status == "up" {
				up++
			}
		}
		if up < len(theLab.Nodes) {
			return fmt.Errorf("%d BFD peers up", up)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.Status == "up" && (p.RemoteReceiveInterval != 100*time.Millisecond || p.RemoteTransmitInterval != 100*time.Millisecond || p.RemoteDetectMultiplier != 3) {
			t.Errorf("BFD peer %s: the router sees the node's timers as rx %d tx %d x%d, want the profile's 100/100 x3",
				p.Peer, p.RemoteReceiveInterval, p.RemoteTransmitInterval, p.RemoteDetectMultiplier)
		}
	}
	// Silent death: the data link goes and the speaker freezes (SIGSTOP: no
	// FIN, no Cease). Only BFD can notice within a second; the hold time
	// is 90 s.
	n := theLab.Nodes[0]
	t.Cleanup(func() {
		_ = syscall.Kill(theLab.Proc("speaker-"+n.Name).PID, syscall.SIGCONT)
		heal(t, n)
	})
	if err := syscall.Kill(theLab.Proc("speaker-"+n.Name).PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := theLab.CutDataLink(n); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip, others(n)...))
	t.Logf("BFD withdrew %s's route %s after the cut (profile 100 ms x 3; hold time 90 s)", n.Name, time.Since(cut).Round(time.Millisecond))
	extReaches(t, ctx, ip)
	// The path comes back: BFD up again, the session and the route with it.
	if err := theLab.RestoreDataLink(n); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(theLab.Proc("speaker-"+n.Name).PID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitSession(t, ctx, n.Name, "tor-bfd", func(s porticov1.BGPSessionStatus) bool { return established(s) && s.BFDState == "Up" })
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))

	// The BFDProfile deleted while in use: the peer says so in a condition,
	// the sessions carry on without BFD, and the routes stay.
	for _, nb := range theLab.Nodes {
		if err := theLab.Router.Neighbor(nb.IPv4, "no bfd"); err != nil {
			t.Fatal(err)
		}
	}
	if err := theLab.Client.Delete(ctx, &porticov1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "bgp-bfd"}}); err != nil {
		t.Fatal(err)
	}
	for {
		var p porticov1.BGPPeer
		if err := theLab.Client.Get(ctx, client.ObjectKey{Name: "tor-bfd"}, &p); err == nil &&
			slices.ContainsFunc(p.Status.Conditions, func(c metav1.Condition) bool {
				return strings.Contains(c.Message, `BFDProfile "bgp-bfd" does not exist`)
			}) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no condition on the BGPPeer after its BFDProfile was deleted")
		case <-time.After(200 * time.Millisecond):
		}
	}
	for _, nb := range theLab.Nodes {
		waitSession(t, ctx, nb.Name, "tor-bfd", func(s porticov1.BGPSessionStatus) bool { return established(s) && s.BFDState == "" })
	}
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))
}

// Bad inputs: each gives a condition or a session error in words, and
// leaves every other session and route alone.
func TestBGPBadInputs(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	bgpSetup(t, ctx, "bgp-bad", nil, bgpPeer("tor-good"))
	ip := bgpService(t, ctx, "bgp-bad", "bgp-bad", lab.ServiceOpts{})
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))

	wrongASN := bgpPeer("tor-wrong-asn")
	wrongASN.Spec.PeerASN = 64999
	wrongASN.Spec.PeerAddress = "2001:db8:1::1"
	unreachable := bgpPeer("tor-unreachable")
	unreachable.Spec.PeerAddress = "198.51.100.3" // nobody there
	missingBFD := bgpPeer("tor-missing-bfd")
	missingBFD.Spec.PeerAddress = "198.51.100.4"
	missingBFD.Spec.BFDProfile = "no-such-profile"
	for _, p := range []*porticov1.BGPPeer{wrongASN, unreachable, missingBFD} {
		create(t, ctx, p)
	}
	badAd := &porticov1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp-bad-refs"}, Spec: porticov1.BGPAdvertisementSpec{
		PoolAndNodeSelection: porticov1.PoolAndNodeSelection{IPAddressPools: []string{"bgp-bad"}},
		Peers:                []string{"no-such-peer"}, Communities: []porticov1.CommunityRef{"no-such-alias"}}}
	create(t, ctx, badAd)

	node := theLab.Nodes[0].Name
	s := waitSession(t, ctx, node, "tor-wrong-asn", func(s porticov1.BGPSessionStatus) bool { return strings.Contains(s.LastError, "bad peer AS") })
	t.Logf("wrong ASN: %q", s.LastError)
	s = waitSession(t, ctx, node, "tor-unreachable", func(s porticov1.BGPSessionStatus) bool { return s.LastError != "" && !established(s) })
	t.Logf("unreachable peer: %q", s.LastError)
	for _, c := range []struct {
		obj   client.Object
		conds func() []metav1.Condition
		words string
	}{
		{missingBFD, func() []metav1.Condition { return missingBFD.Status.Conditions }, `BFDProfile "no-such-profile" does not exist`},
		{badAd, func() []metav1.Condition { return badAd.Status.Conditions }, `BGPPeer "no-such-peer" does not exist`},
		{badAd, func() []metav1.Condition { return badAd.Status.Conditions }, `community alias "no-such-alias" is not defined`},
	} {
		for {
			if err := theLab.Client.Get(ctx, client.ObjectKeyFromObject(c.obj), c.obj); err == nil &&
				slices.ContainsFunc(c.conds(), func(cond metav1.Condition) bool { return strings.Contains(cond.Message, c.words) }) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: no condition saying %q: %+v", c.obj.GetName(), c.words, c.conds())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	// The good session was never reset and still carries the route.
	good := waitSession(t, ctx, node, "tor-good", established)
	if good.Since == nil || time.Since(good.Since.Time) < 2*time.Second {
		t.Errorf("the good session was reset by bad input: %+v", good)
	}
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))
	extReaches(t, ctx, ip)
}

// gobgp adapts its detection time to the router's transmit interval (RFC
// 5880 6.8.4) but not its own transmit interval to the router's required
// receive interval: it always sends at the profile's transmitInterval. This
// test shows what that means against FRR's bfdd with unequal timers: the
// session holds steady either way, and with the router asking for packets
// every 300 ms the node still sends every 100 ms (three times what the
// router asked for; the router's detection time is the node's multiplier x
// its own 300 ms). docs/bgp.md tells users what to set on the router.
func TestBGPBFDUnequalTimers(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	n := theLab.Nodes[0]
	if _, err := theLab.Router.VTY("configure terminal", "bfd", "profile slow", "receive-interval 300", "transmit-interval 300", "detect-multiplier 3"); err != nil {
		t.Fatal(err)
	}
	if err := theLab.Router.Neighbor(n.IPv4, "bfd profile slow"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = theLab.Router.Neighbor(n.IPv4, "no bfd") })
	rx, tx, mult := int32(100), int32(100), int32(3)
	create(t, ctx, &porticov1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "bgp-bfd-fast"}, Spec: porticov1.BFDProfileSpec{
		ReceiveInterval: &rx, TransmitInterval: &tx, DetectMultiplier: &mult}})
	peer := bgpPeer("tor-bfd-unequal")
	peer.Spec.BFDProfile = "bgp-bfd-fast"
	peer.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": n.Name}}}
	bgpSetup(t, ctx, "bgp-bfd-unequal", nil, peer)
	waitSession(t, ctx, n.Name, "tor-bfd-unequal", func(s porticov1.BGPSessionStatus) bool { return established(s) && s.BFDState == "Up" })
	addr := netip.MustParseAddr(n.IPv4)
	// observe returns the session drops and the BFD packets the router
	// received from the node over a few seconds.
	observe := func() (drops, packets int) {
		count := func() (int, int) {
			nbs, err := theLab.Router.Neighbors()
			if err != nil || nbs[addr] == nil {
				t.Fatalf("neighbours: %v", err)
			}
			var counters []struct {
				Peer  string `json:"peer"`
				Input int    `json:"control-packet-input"`
			}
			if err := theLab.Router.Show("show bfd peers counters json", &counters); err != nil {
				t.Fatal(err)
			}
			in := 0
			for _, c := range counters {
				if c.Peer == n.IPv4 {
					in = c.Input
				}
			}
			return nbs[addr].ConnectionsDropped, in
		}
		d0, p0 := count()
		time.Sleep(5 * time.Second)
		d1, p1 := count()
		return d1 - d0, p1 - p0
	}
	drops, packets := observe()
	t.Logf("router asks for packets every 300 ms, the node's profile says 100 ms: %d session drops, %d BFD packets from the node in 5 s", drops, packets)
	if drops != 0 {
		t.Errorf("the session dropped %d times with the router slower than the profile", drops)
	}
	if packets < 30 {
		// Logged, not failed: a packet rate depends on the machine's load.
		t.Logf("only %d packets in 5 s: gobgp may now adapt its transmit interval to the router's (every 300 ms would be about 17); check docs/bgp.md", packets)
	}
	if _, err := theLab.Router.VTY("configure terminal", "bfd", "profile slow", "receive-interval 100", "transmit-interval 100"); err != nil {
		t.Fatal(err)
	}
	waitSession(t, ctx, n.Name, "tor-bfd-unequal", func(s porticov1.BGPSessionStatus) bool { return established(s) && s.BFDState == "Up" })
	drops, packets = observe()
	t.Logf("router at the profile's 100 ms: %d session drops, %d BFD packets in 5 s", drops, packets)
	if drops != 0 {
		t.Errorf("with the router at the profile's intervals the session dropped %d times", drops)
	}
}

// Sessions over IPv6 carry both families too: an IPv4 route over an IPv6
// session has the node's IPv4 address as next hop. The speakers' metrics
// show the sessions.
func TestBGPOverIPv6Session(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	peer := bgpPeer("tor-v6")
	peer.Spec.PeerAddress = "2001:db8:1::1"
	bgpSetup(t, ctx, "bgp-v6", nil, peer)
	v4 := bgpService(t, ctx, "bgp-v6-v4", "bgp-v6", lab.ServiceOpts{})
	v6 := bgpService(t, ctx, "bgp-v6-v6", "bgp-v6", lab.ServiceOpts{IPv6: true})
	for _, ip := range []netip.Addr{v4, v6} {
		waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))
		extReaches(t, ctx, ip)
	}
	nbs, err := theLab.Router.Neighbors()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range theLab.Nodes {
		nb := nbs[netip.MustParseAddr(n.IPv6)]
		if nb == nil || nb.State != "Established" || nb.PrefixesReceived[lab.IPv4] != 1 || nb.PrefixesReceived[lab.IPv6] != 1 {
			t.Errorf("the router's IPv6 session with %s: %+v", n.Name, nb)
		}
		metrics, err := lab.Exec(n.NS, "curl", "-sS", "-m", "2", "http://127.0.0.1:7473/metrics")
		if err != nil {
			t.Fatalf("%s metrics: %v", n.Name, err)
		}
		want := `portico_speaker_bgp_session_up{address="2001:db8:1::1",peer="tor-v6"} 1`
		if !strings.Contains(metrics, want) {
			t.Errorf("%s metrics lack %q", n.Name, want)
		}
	}
}
