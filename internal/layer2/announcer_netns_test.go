package layer2

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/arp"

	"github.com/portico-lb/portico/internal/netnstest"
)

const (
	nodeMACStr  = "02:00:5e:00:53:01"
	staleMACStr = "02:00:5e:00:53:99"
)

// lab is a node and a client namespace joined by a veth pair (eth0 on both
// sides), with documentation-range addresses.
type lab struct {
	node, client *netnstest.NS
	a            *Announcer
}

func newLab(t *testing.T, cfg Config) *lab {
	t.Helper()
	netnstest.Require(t, "arping", "ndisc6")
	l := &lab{node: netnstest.New(t, "l2node"), client: netnstest.New(t, "l2client")}
	l.wire(t)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	l.a = New(cfg)
	t.Cleanup(func() { l.a.Close() })
	return l
}

// wire connects node and client with a veth pair, eth0 on both sides: node
// 192.0.2.1 and 2001:db8::1 with MAC nodeMACStr, client 192.0.2.2 and
// 2001:db8::2.
func (l *lab) wire(t *testing.T) {
	t.Helper()
	netnstest.Veth(t, l.node, "eth0", l.client, "eth0")
	l.node.Run(t, "ip", "link", "set", "eth0", "address", nodeMACStr)
	for ns, host := range map[*netnstest.NS]string{l.node: "1", l.client: "2"} {
		ns.Run(t, "ip", "addr", "add", "192.0.2."+host+"/24", "dev", "eth0")
		ns.Run(t, "ip", "addr", "add", "2001:db8::"+host+"/64", "dev", "eth0", "nodad")
		ns.Run(t, "ip", "link", "set", "eth0", "up")
	}
}

// setOwned calls SetOwned from inside the node namespace, where the
// announcer's sockets must live.
func (l *lab) setOwned(t *testing.T, owned map[netip.Addr][]string) error {
	t.Helper()
	return l.node.Do(func() error { return l.a.SetOwned(owned) })
}

var (
	arpingReply = regexp.MustCompile(`reply from \S+ \[([0-9A-Fa-f:]{17})\]`)
	ndiscReply  = regexp.MustCompile(`Target link-layer address: ([0-9A-Fa-f:]{17})`)
)

// arping asks for ip from the client and returns the replying MAC, or "" when
// nobody answered.
func (l *lab) arping(t *testing.T, ip string) string {
	t.Helper()
	out, err := l.client.Exec("arping", "-c", "2", "-w", "2", "-I", "eth0", ip)
	return replyMAC(t, "arping", out, err, arpingReply)
}

// ndisc6 solicits ip from the client and returns the answering MAC, or "".
func (l *lab) ndisc6(t *testing.T, ip string) string {
	t.Helper()
	out, err := l.client.Exec("ndisc6", "-n", "-r", "2", "-w", "500", ip, "eth0")
	return replyMAC(t, "ndisc6", out, err, ndiscReply)
}

func replyMAC(t *testing.T, tool, out string, err error, re *regexp.Regexp) string {
	t.Helper()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() != 0 && !re.MatchString(out) {
			return "" // no reply
		}
		t.Fatalf("%s: %v: %s", tool, err, out)
	}
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s succeeded without a reply line: %s", tool, out)
	}
	return strings.ToLower(m[1])
}

// neighMAC returns the client's neighbour entry for ip ("" if none).
func (l *lab) neighMAC(t *testing.T, ip string) string {
	t.Helper()
	out := l.client.Run(t, "ip", "neigh", "show", ip, "dev", "eth0")
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "lladdr" && i+1 < len(f) {
			return strings.ToLower(f[i+1])
		}
	}
	return ""
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAnnouncerAnswersOwnedIPs(t *testing.T) {
	l := newLab(t, Config{Announce: []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}})
	const v4, v6 = "192.0.2.100", "2001:db8::100"
	owned := map[netip.Addr][]string{
		netip.MustParseAddr(v4): {"eth0"},
		netip.MustParseAddr(v6): {"eth0"},
	}

	if mac := l.arping(t, v4); mac != "" {
		t.Fatalf("ARP reply from %s before the IP is owned", mac)
	}
	if mac := l.ndisc6(t, v6); mac != "" {
		t.Fatalf("NA from %s before the IP is owned", mac)
	}

	// The client has stale entries pointing elsewhere (the previous owner):
	// the takeover announcement must move them to the node at once.
	for _, ip := range []string{v4, v6} {
		l.client.Run(t, "ip", "neigh", "replace", ip, "lladdr", staleMACStr, "dev", "eth0", "nud", "stale")
	}
	if err := l.setOwned(t, owned); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{v4, v6} {
		waitFor(t, time.Second, "client's neighbour entry for "+ip+" to move to the node", func() bool {
			return l.neighMAC(t, ip) == nodeMACStr
		})
	}

	if mac := l.arping(t, v4); mac != nodeMACStr {
		t.Errorf("ARP reply for %s from %q, want %s", v4, mac, nodeMACStr)
	}
	if mac := l.ndisc6(t, v6); mac != nodeMACStr {
		t.Errorf("NA for %s from %q, want %s", v6, mac, nodeMACStr)
	}
	m := l.a.Metrics()
	if m.ARPRequests.Load() == 0 || m.ARPReplies.Load() == 0 || m.NDPSolicitations.Load() == 0 || m.NDPAdvertisements.Load() == 0 {
		t.Errorf("metrics: ARP %d/%d, NDP %d/%d (received/sent)", m.ARPRequests.Load(), m.ARPReplies.Load(),
			m.NDPSolicitations.Load(), m.NDPAdvertisements.Load())
	}

	// Schedule of 3: 3 x (request + reply) for IPv4, 3 NAs for IPv6.
	waitFor(t, 2*time.Second, "the announcement schedule to finish", func() bool { return m.Gratuitous.Load() == 9 })
	if err := l.setOwned(t, owned); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if g := m.Gratuitous.Load(); g != 9 {
		t.Errorf("the same owned set again sent announcements: %d, want 9", g)
	}

	if err := l.setOwned(t, nil); err != nil {
		t.Fatal(err)
	}
	if got := l.a.Owned(); len(got) != 0 {
		t.Errorf("Owned() = %v after releasing everything", got)
	}
	if mac := l.arping(t, v4); mac != "" {
		t.Errorf("ARP reply from %s after the IP was released", mac)
	}
	if mac := l.ndisc6(t, v6); mac != "" {
		t.Errorf("NA from %s after the IP was released", mac)
	}
}

func TestAnnouncerPartialFailure(t *testing.T) {
	l := newLab(t, Config{Announce: []time.Duration{}})
	err := l.setOwned(t, map[netip.Addr][]string{
		netip.MustParseAddr("192.0.2.100"):   {"eth0"},
		netip.MustParseAddr("192.0.2.101"):   {"nosuch0"},
		netip.MustParseAddr("192.0.2.102"):   {"nosuch0"},
		netip.MustParseAddr("2001:db8::101"): {"eth0", "nosuch0"},
	})
	if err == nil {
		t.Fatal("no error for a missing interface")
	}
	for _, want := range []string{`192.0.2.101, 192.0.2.102 on interface "nosuch0"`, `2001:db8::101 on interface "nosuch0"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if l.a.Metrics().Gratuitous.Load() != 0 {
		t.Error("announced with an empty schedule")
	}
	// The rest is applied and answered.
	if mac := l.arping(t, "192.0.2.100"); mac != nodeMACStr {
		t.Errorf("ARP reply from %q, want %s", mac, nodeMACStr)
	}
	if mac := l.ndisc6(t, "2001:db8::101"); mac != nodeMACStr {
		t.Errorf("NA from %q, want %s", mac, nodeMACStr)
	}
	got := l.a.Owned()
	if len(got) != 2 || len(got[netip.MustParseAddr("2001:db8::101")]) != 1 {
		t.Errorf("Owned() = %v", got)
	}
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// TestAnnouncerLocalServiceIP is the lab's and kube-proxy IPVS mode's setup:
// the service IPs are local to the node (on lo) with strict ARP, so only the
// announcer answers, and real traffic from the client reaches the node.
func TestAnnouncerLocalServiceIP(t *testing.T) {
	l := newLab(t, Config{})
	const v4, v6 = "192.0.2.100", "2001:db8::100"
	l.node.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
	l.node.Run(t, "ip", "addr", "add", v4+"/32", "dev", "lo")
	l.node.Run(t, "ip", "addr", "add", v6+"/128", "dev", "lo", "nodad")

	if mac := l.arping(t, v4); mac != "" {
		t.Fatalf("ARP reply from %s before the IP is owned: strict ARP not in effect", mac)
	}
	if mac := l.ndisc6(t, v6); mac != "" {
		t.Fatalf("NA from %s before the IP is owned", mac)
	}
	if err := l.setOwned(t, map[netip.Addr][]string{
		netip.MustParseAddr(v4): {"eth0"},
		netip.MustParseAddr(v6): {"eth0"},
	}); err != nil {
		t.Fatal(err)
	}
	out, err := l.client.Exec("arping", "-c", "3", "-w", "3", "-I", "eth0", v4)
	if err != nil {
		t.Fatalf("arping: %v: %s", err, out)
	}
	for _, m := range arpingReply.FindAllStringSubmatch(out, -1) {
		if strings.ToLower(m[1]) != nodeMACStr {
			t.Errorf("reply from %s, want only %s: %s", m[1], nodeMACStr, out)
		}
	}
	if c := strings.Count(out, "reply from"); c != 3 {
		t.Errorf("%d replies to 3 requests: %s", c, out)
	}
	// Real traffic: TCP from the client to a listener on the node.
	var ln net.Listener
	if err := l.node.Do(func() (err error) { ln, err = net.Listen("tcp", ":8080"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("node\n"))
			c.Close()
		}
	}()
	for _, ip := range []string{v4, v6} {
		err := l.client.Do(func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "8080"), 3*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			b, err := io.ReadAll(c)
			if string(b) != "node\n" {
				return fmt.Errorf("read %q, %v", b, err)
			}
			return nil
		})
		if err != nil {
			t.Errorf("TCP to %s from the client: %v", ip, err)
		}
	}

	// Neighbour unreachability detection: the client probes its entry for
	// the IP with unicast solicitations, which must be answered too.
	before := l.a.Metrics().NDPAdvertisements.Load()
	l.client.Run(t, "ip", "-6", "neigh", "change", v6, "lladdr", nodeMACStr, "dev", "eth0", "nud", "probe")
	waitFor(t, 3*time.Second, "the client's probed entry to become reachable", func() bool {
		return strings.Contains(l.client.Run(t, "ip", "-6", "neigh", "show", v6, "dev", "eth0"), "REACHABLE")
	})
	if l.a.Metrics().NDPAdvertisements.Load() == before {
		t.Error("no advertisement counted for the unicast probe")
	}
}

// TestAnnouncerInterfaceRecreated checks that responders survive their link
// going down and up, and that a responder whose interface was deleted and
// created again is reopened by the next SetOwned.
func TestAnnouncerInterfaceRecreated(t *testing.T) {
	l := newLab(t, Config{Announce: []time.Duration{}})
	const v4, v6 = "192.0.2.100", "2001:db8::100"
	owned := map[netip.Addr][]string{netip.MustParseAddr(v4): {"eth0"}, netip.MustParseAddr(v6): {"eth0"}}
	if err := l.setOwned(t, owned); err != nil {
		t.Fatal(err)
	}
	// A link that goes down and up again keeps its responders.
	l.node.Run(t, "ip", "link", "set", "eth0", "down")
	l.node.Run(t, "ip", "link", "set", "eth0", "up")
	if mac := l.arping(t, v4); mac != nodeMACStr {
		t.Errorf("ARP reply from %q after the link went down and up, want %s", mac, nodeMACStr)
	}
	if mac := l.ndisc6(t, v6); mac != nodeMACStr {
		t.Errorf("NA from %q after the link went down and up, want %s", mac, nodeMACStr)
	}

	l.node.Run(t, "ip", "link", "del", "eth0")
	l.wire(t)
	if err := l.setOwned(t, owned); err != nil {
		t.Fatal(err)
	}
	if mac := l.arping(t, v4); mac != nodeMACStr {
		t.Errorf("ARP reply from %q after the interface was recreated, want %s", mac, nodeMACStr)
	}
	if mac := l.ndisc6(t, v6); mac != nodeMACStr {
		t.Errorf("NA from %q after the interface was recreated, want %s", mac, nodeMACStr)
	}
}

// TestAnnouncerReleaseCancelsAnnouncements checks that an IP released during
// its announcement schedule is not announced any more, and that an IP kept on
// the same interface is still answered while a released one is not. The
// client counts the gratuitous ARP packets of each IP as they arrive, and the
// test waits for the kept IP's whole schedule instead of sleeping through it.
func TestAnnouncerReleaseCancelsAnnouncements(t *testing.T) {
	l := newLab(t, Config{Announce: []time.Duration{0, 300 * time.Millisecond, 600 * time.Millisecond}})
	seen := l.countGratuitous(t)
	kept, released := netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")
	if err := l.setOwned(t, map[netip.Addr][]string{kept: {"eth0"}, released: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	m := l.a.Metrics()
	if g := m.Gratuitous.Load(); g != 4 {
		t.Fatalf("%d gratuitous ARP packets sent by SetOwned, want 4 (request and reply for 2 IPs)", g)
	}
	if err := l.setOwned(t, map[netip.Addr][]string{kept: {"eth0"}}); err != nil {
		t.Fatal(err)
	}
	// Each round is a request and a reply: 3 rounds for the kept IP.
	waitFor(t, 10*time.Second, "the kept IP's three rounds of gratuitous ARP", func() bool { return seen(kept) == 6 })
	if mac := l.arping(t, released.String()); mac != "" {
		t.Errorf("released IP answered by %s", mac)
	}
	if mac := l.arping(t, kept.String()); mac != nodeMACStr {
		t.Errorf("kept IP answered by %q, want %s", mac, nodeMACStr)
	}
	// The released IP's later rounds would have come with the kept IP's,
	// seconds ago now (arping waited for its answers).
	if n := seen(released); n != 2 {
		t.Errorf("the client saw %d gratuitous ARP packets for the released IP, want 2 (the first round only)", n)
	}
	if g := m.Gratuitous.Load(); g != 8 {
		t.Errorf("%d gratuitous ARP packets sent, want 8 (4, then 2 rounds for the kept IP only)", g)
	}
}

// countGratuitous listens for gratuitous ARP (sender IP = target IP) on the
// client's eth0 and returns a function counting those seen per IP.
func (l *lab) countGratuitous(t *testing.T) func(netip.Addr) int {
	t.Helper()
	var c *arp.Client
	err := l.client.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		t.Fatalf("ARP socket in the client namespace: %v", err)
	}
	var mu sync.Mutex
	counts := map[netip.Addr]int{}
	var closing atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			p, _, err := c.Read()
			if err != nil {
				if closing.Load() {
					return
				}
				continue // not an ARP packet
			}
			if p.SenderIP == p.TargetIP {
				mu.Lock()
				counts[p.TargetIP]++
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { closing.Store(true); _ = c.Close(); <-done })
	return func(ip netip.Addr) int {
		mu.Lock()
		defer mu.Unlock()
		return counts[ip]
	}
}
