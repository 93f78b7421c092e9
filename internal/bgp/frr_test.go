package bgp

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-lb/portico/internal/netnstest"
)

// A real FRR router (Debian's frr: zebra, bfdd, bgpd) in a test's network
// namespace. Each daemon gets its own config, PID file, sockets and log in a
// run folder of the test's own, so the system's FRR (if any) is never
// touched; the daemons are stopped by PID.

const frrDaemonDir = "/usr/lib/frr"

// frrDaemons in start order: bfdd and bgpd register with zebra.
var frrDaemons = []string{"zebra", "bfdd", "bgpd"}

// frrNeighbor is one neighbour (one speaker address) in bgpd's config.
type frrNeighbor struct {
	Addr     string // the speaker's address
	RemoteAS string // a number, "internal" or "external"
	Password string
	BFD      bool   // use the frrConfig's BFD profile
	Local    string // update-source: the router's own address for this session
	Shutdown bool   // configured, administratively down
}

type frrConfig struct {
	ASN       uint32
	RouterID  string
	Neighbors []frrNeighbor
	// BFD profile "lab" (milliseconds); zero values: 300, 300, 3.
	BFDReceive, BFDTransmit, BFDMultiplier int
	// BFDPeers are extra lines in bfdd's "bfd" block.
	BFDPeers []string
}

// frr is a running router; the fields travel to the speaker process as
// JSON, so that it can query the router too.
type frr struct {
	NS   string // network namespace name
	Dir  string // run folder: configs, sockets, logs
	Conf frrConfig
}

func (c *frrConfig) header(ns string) string {
	return "frr defaults traditional\nhostname " + ns + "\nlog timestamp precision 3\n!\n"
}

func (c *frrConfig) bfdd(ns string) string {
	rx, tx, mult := c.BFDReceive, c.BFDTransmit, c.BFDMultiplier
	if rx == 0 {
		rx = 300
	}
	if tx == 0 {
		tx = 300
	}
	if mult == 0 {
		mult = 3
	}
	peers := ""
	for _, l := range c.BFDPeers {
		peers += " " + l + "\n"
	}
	return c.header(ns) + fmt.Sprintf("bfd\n profile lab\n  receive-interval %d\n  transmit-interval %d\n  detect-multiplier %d\n exit\n%sexit\n!\n", rx, tx, mult, peers)
}

// bgpd: both unicast families on every neighbour, ECMP, and quick
// reconnects (FRR's traditional defaults wait 120 s).
func (c *frrConfig) bgpd(ns string) string {
	var b strings.Builder
	b.WriteString(c.header(ns))
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n bgp log-neighbor-changes\n", c.ASN, c.RouterID)
	b.WriteString(" no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n")
	for _, n := range c.Neighbors {
		fmt.Fprintf(&b, " neighbor %s remote-as %s\n neighbor %s timers connect 5\n", n.Addr, n.RemoteAS, n.Addr)
		if n.Password != "" {
			fmt.Fprintf(&b, " neighbor %s password %s\n", n.Addr, n.Password)
		}
		if n.Shutdown {
			fmt.Fprintf(&b, " neighbor %s shutdown\n", n.Addr)
		}
		if n.Local != "" {
			fmt.Fprintf(&b, " neighbor %s update-source %s\n", n.Addr, n.Local)
		}
		if n.BFD {
			fmt.Fprintf(&b, " neighbor %s bfd profile lab\n", n.Addr)
		}
	}
	for _, af := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, " address-family %s unicast\n  maximum-paths 16\n  maximum-paths ibgp 16\n", af)
		for _, n := range c.Neighbors {
			fmt.Fprintf(&b, "  neighbor %s activate\n", n.Addr)
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("exit\n!\n")
	return b.String()
}

// startFRR starts zebra, bfdd and bgpd in ns with conf and stops them (by
// PID) when t ends.
func startFRR(t *testing.T, ns *netnstest.NS, conf frrConfig) *frr {
	t.Helper()
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatalf("needs user frr (apt-get install frr): %v", err)
	}
	g, err := user.LookupGroup("frr")
	if err != nil {
		t.Fatalf("needs group frr (apt-get install frr): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	dir, err := os.MkdirTemp("", "portico-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The daemons run as frr: the folder must be theirs, the configs
	// readable (an unreadable config starts a daemon with an empty one).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	r := &frr{NS: ns.Name, Dir: dir, Conf: conf}
	confs := map[string]string{"zebra": conf.header(ns.Name), "bfdd": conf.bfdd(ns.Name), "bgpd": conf.bgpd(ns.Name)}
	for _, d := range frrDaemons {
		f := filepath.Join(dir, d+".conf")
		if err := os.WriteFile(f, []byte(confs[d]), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range frrDaemons {
		args := []string{"netns", "exec", ns.Name, filepath.Join(frrDaemonDir, d),
			"-f", filepath.Join(dir, d+".conf"), "-i", filepath.Join(dir, d+".pid"),
			"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir,
			"-u", "frr", "-g", "frr", "-A", "127.0.0.1", "-P", "0", "--log", "file:" + filepath.Join(dir, d+".log")}
		switch d {
		case "bgpd":
			args = append(args, "-p", "179")
		case "bfdd":
			args = append(args, "--bfdctl", filepath.Join(dir, "bfdd.sock"))
		}
		out, err := os.Create(filepath.Join(dir, d+".out"))
		if err != nil {
			t.Fatal(err)
		}
		// ip netns exec execs the daemon: the PID is the daemon's.
		cmd := exec.Command("ip", args...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", d, err)
		}
		out.Close()
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() { stopPID(cmd.Process.Pid, exited) })
		want := []string{filepath.Join(dir, d+".vty")}
		if d == "zebra" {
			want = append(want, filepath.Join(dir, "zserv.api"))
		}
		deadline := time.Now().Add(15 * time.Second)
		for !allExist(want) {
			select {
			case <-exited:
				t.Fatalf("%s exited at start: %s", d, r.logs(d))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready after 15s: %s", d, r.logs(d))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var sum frrSummary
	r.show(t, "show bgp summary json", &sum)
	if sum.IPv4.AS != conf.ASN || len(sum.IPv4.Peers) != len(conf.Neighbors) {
		t.Fatalf("bgpd runs AS %d with %d neighbours, want AS %d with %d: %s", sum.IPv4.AS, len(sum.IPv4.Peers),
			conf.ASN, len(conf.Neighbors), r.logs("bgpd"))
	}
	return r
}

func allExist(files []string) bool {
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// stopPID stops one daemon: TERM, then KILL after 5 s.
func stopPID(pid int, exited chan struct{}) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-exited
	}
}

// logs returns the tail of daemon d's log and output, for failure messages.
func (r *frr) logs(d string) string {
	var b strings.Builder
	for _, f := range []string{d + ".log", d + ".out"} {
		data, _ := os.ReadFile(filepath.Join(r.Dir, f))
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "\n--- %s:\n%s", f, data)
	}
	return b.String()
}

// vtysh runs commands against the router (through its sockets: this works
// from any network namespace).
func (r *frr) vtysh(args ...string) (string, error) {
	out, err := exec.Command("vtysh", append([]string{"--vty_socket", r.Dir}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// show runs a "show ... json" command and decodes its output into v.
func (r *frr) show(t testing.TB, cmd string, v any) {
	t.Helper()
	out, err := r.vtysh("-c", cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
}

// configure applies config lines (vtysh's configure mode), e.g.
// "router bgp 64500", " neighbor X shutdown".
func (r *frr) configure(t testing.TB, lines ...string) {
	t.Helper()
	args := []string{"-c", "configure terminal"}
	for _, l := range lines {
		args = append(args, "-c", l)
	}
	if _, err := r.vtysh(args...); err != nil {
		t.Fatal(err)
	}
}

// frrSummary is "show bgp summary json" (the parts the tests read).
type frrSummary struct {
	IPv4 frrAFSummary `json:"ipv4Unicast"`
	IPv6 frrAFSummary `json:"ipv6Unicast"`
}

type frrAFSummary struct {
	AS    uint32 `json:"as"`
	Peers map[string]struct {
		State     string `json:"state"`
		PfxRcd    int    `json:"pfxRcd"`
		RemoteAS  uint32 `json:"remoteAs"`
		MsgRcvd   int    `json:"msgRcvd"`
		Connected int    `json:"connectionsEstablished"`
	} `json:"peers"`
}

// frrRoutes is "show bgp ipv4|ipv6 unicast json": every path of every
// prefix.
type frrRoutes struct {
	Routes map[string][]frrPath `json:"routes"`
}

type frrPath struct {
	Valid    bool   `json:"valid"`
	PeerID   string `json:"peerId"`
	Path     string `json:"path"`
	Origin   string `json:"origin"`
	Stale    bool   `json:"stale"`
	NextHops []struct {
		IP  string `json:"ip"`
		AFI string `json:"afi"`
	} `json:"nexthops"`
}

// frrPrefix is "show bgp ipv4|ipv6 unicast PREFIX json": the attributes of
// each path.
type frrPrefix struct {
	Paths []struct {
		ASPath struct {
			String string `json:"string"`
		} `json:"aspath"`
		Origin    string  `json:"origin"`
		LocPrf    *uint32 `json:"locPrf"`
		Community *struct {
			String string `json:"string"`
		} `json:"community"`
		LargeCommunity *struct {
			String string `json:"string"`
		} `json:"largeCommunity"`
		Peer struct {
			PeerID string `json:"peerId"`
		} `json:"peer"`
		NextHops []struct {
			IP string `json:"ip"`
		} `json:"nexthops"`
		Stale bool `json:"stale"`
	} `json:"paths"`
}

// frrNeighborInfo is one entry of "show bgp neighbors json".
type frrNeighborInfo struct {
	State                  string `json:"bgpState"`
	ConnectionsEstablished int    `json:"connectionsEstablished"`
	ConnectionsDropped     int    `json:"connectionsDropped"`
	LastNotification       string `json:"lastNotificationReason"`
	LastReset              string `json:"lastResetDueTo"`
	MessageStats           struct {
		UpdatesRecv int `json:"updatesRecv"`
	} `json:"messageStats"`
}

func (r *frr) neighbors(t testing.TB) map[string]frrNeighborInfo {
	t.Helper()
	var n map[string]frrNeighborInfo
	r.show(t, "show bgp neighbors json", &n)
	return n
}

// routes returns the router's paths for prefix ("" when it has none).
func (r *frr) routes(t testing.TB, prefix string) []frrPath {
	t.Helper()
	af := "ipv4"
	if strings.Contains(prefix, ":") {
		af = "ipv6"
	}
	var rt frrRoutes
	r.show(t, "show bgp "+af+" unicast json", &rt)
	return rt.Routes[prefix]
}

// prefix returns the detailed paths of one prefix.
func (r *frr) prefix(t testing.TB, prefix string) frrPrefix {
	t.Helper()
	af := "ipv4"
	if strings.Contains(prefix, ":") {
		af = "ipv6"
	}
	var p frrPrefix
	r.show(t, "show bgp "+af+" unicast "+prefix+" json", &p)
	return p
}

// frrBFDPeer is one entry of "show bfd peers json".
type frrBFDPeer struct {
	Peer             string `json:"peer"`
	Status           string `json:"status"`
	ReceiveInterval  int    `json:"receive-interval"`
	TransmitInterval int    `json:"transmit-interval"`
	DetectMultiplier int    `json:"detect-multiplier"`
	RemoteReceive    int    `json:"remote-receive-interval"`
	RemoteTransmit   int    `json:"remote-transmit-interval"`
	RemoteMultiplier int    `json:"remote-detect-multiplier"`
}

func (r *frr) bfdPeers(t testing.TB) map[string]frrBFDPeer {
	t.Helper()
	var list []frrBFDPeer
	r.show(t, "show bfd peers json", &list)
	m := map[string]frrBFDPeer{}
	for _, p := range list {
		m[p.Peer] = p
	}
	return m
}
