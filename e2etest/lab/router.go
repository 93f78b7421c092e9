package lab

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Router is the lab's FRR router: zebra, bfdd and bgpd from Debian's frr
// package, running in Lab.RouterNS as lab processes (stopped by PID), with
// their configs, PID files and sockets in Dir. Its query methods are in
// frr.go.
type Router struct {
	NS  string
	Dir string
	// ASN is RouterASN; PeerAddrs are the configured neighbour addresses,
	// an IPv4 and an IPv6 one per node; HoldTime is their hold time.
	ASN       uint32
	PeerAddrs []string
	HoldTime  time.Duration
	// Logs are the daemons' log files by daemon name.
	Logs map[string]string

	mu sync.Mutex // one vtysh configuration session at a time
}

// routerDaemons start in this order: bfdd and bgpd register with zebra.
var routerDaemons = []string{"zebra", "bfdd", "bgpd"}

// checkFRR reports FRR's daemons or vtysh missing, naming the package.
func checkFRR() error {
	var missing []string
	for _, d := range routerDaemons {
		if _, err := os.Stat(filepath.Join(routerDaemonsDir, d)); err != nil {
			missing = append(missing, filepath.Join(routerDaemonsDir, d))
		}
	}
	if _, err := lookPath("vtysh"); err != nil {
		missing = append(missing, "vtysh")
	}
	if _, err := user.Lookup("frr"); err != nil {
		missing = append(missing, "user frr")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s (apt-get install frr)", strings.Join(missing, ", "))
	}
	return nil
}

// startRouter writes the daemons' configs and starts zebra, bfdd and bgpd in
// the router namespace, then checks that each one runs the config it was
// given (a config frr cannot read starts the daemon empty, silently).
func (l *Lab) startRouter() error {
	r := &Router{NS: l.RouterNS, Dir: filepath.Join(l.RunDir, "router"), ASN: RouterASN,
		HoldTime: l.RouterHoldTime, Logs: map[string]string{}}
	for _, n := range l.Nodes {
		r.PeerAddrs = append(r.PeerAddrs, n.IPv4, n.IPv6)
	}
	uid, gid, err := frrIDs()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return err
	}
	if err := os.Chown(r.Dir, uid, gid); err != nil {
		return err
	}
	// vtysh.conf is vtysh's own (empty: vtysh complains when it is missing).
	confs := map[string]string{"zebra": r.zebraConf(), "bfdd": r.bfddConf(), "bgpd": r.bgpdConf(), "vtysh": ""}
	for _, d := range append(routerDaemons, "vtysh") {
		f := filepath.Join(r.Dir, d+".conf")
		if err := os.WriteFile(f, []byte(confs[d]), 0o640); err != nil {
			return err
		}
		if err := os.Chown(f, uid, gid); err != nil {
			return err
		}
	}
	for _, d := range routerDaemons {
		p, err := l.start("router-"+d, r.NS, nil, r.daemonArgs(d, filepath.Join(l.RunDir, "router-"+d+".log"))...)
		if err != nil {
			return err
		}
		r.Logs[d] = p.Log
		if err := r.waitDaemon(p, d, 15*time.Second); err != nil {
			return err
		}
	}
	if err := r.checkConfig(); err != nil {
		return err
	}
	l.Router = r
	return nil
}

func frrIDs() (uid, gid int, err error) {
	u, err := user.Lookup("frr")
	if err != nil {
		return 0, 0, fmt.Errorf("%w: user frr (apt-get install frr)", ErrMissing)
	}
	g, err := user.LookupGroup("frr")
	if err != nil {
		return 0, 0, fmt.Errorf("%w: group frr (apt-get install frr)", ErrMissing)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(g.Gid)
	return uid, gid, nil
}

// daemonArgs is daemon d's command line: its own config, PID file and
// sockets in Dir, no TCP vty, the frr user, its log in the run folder (the
// same file the lab sends its output to).
func (r *Router) daemonArgs(d, log string) []string {
	args := []string{filepath.Join(routerDaemonsDir, d),
		"-f", filepath.Join(r.Dir, d+".conf"), "-i", filepath.Join(r.Dir, d+".pid"),
		"-z", filepath.Join(r.Dir, "zserv.api"), "--vty_socket", r.Dir,
		"-u", "frr", "-g", "frr", "-A", "127.0.0.1", "-P", "0", "--log", "file:" + log}
	switch d {
	case "bgpd":
		args = append(args, "-p", "179")
	case "bfdd":
		args = append(args, "--bfdctl", filepath.Join(r.Dir, "bfdd.sock"))
	}
	return args
}

// waitDaemon waits for d's vty socket (and zebra's API socket), failing at
// once when the daemon exits.
func (r *Router) waitDaemon(p *Proc, d string, timeout time.Duration) error {
	want := []string{filepath.Join(r.Dir, d+".vty")}
	if d == "zebra" {
		want = append(want, filepath.Join(r.Dir, "zserv.api"))
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := p.running(); err != nil {
			return err
		}
		ready := true
		for _, f := range want {
			if _, err := os.Stat(f); err != nil {
				ready = false
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %v after %s (see %s)", d, want, timeout, p.Log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkConfig proves that every daemon runs the config written for it: each
// one's running config carries the router's hostname, bgpd is AS RouterASN
// with every neighbour, bfdd has the lab profile.
func (r *Router) checkConfig() error {
	var errs []error
	for _, d := range routerDaemons {
		out, err := r.vtysh("-d", d, "-c", "show running-config")
		if err != nil {
			errs = append(errs, err)
		} else if !strings.Contains(out, "\nhostname "+r.NS+"\n") {
			errs = append(errs, fmt.Errorf("%s runs without its config %s (unreadable by user frr?); see %s",
				d, filepath.Join(r.Dir, d+".conf"), r.Logs[d]))
		}
	}
	if errs != nil {
		return errors.Join(errs...)
	}
	var sum struct {
		IPv4 struct {
			AS    uint32         `json:"as"`
			Peers map[string]any `json:"peers"`
		} `json:"ipv4Unicast"`
	}
	if err := r.Show("show bgp summary json", &sum); err != nil {
		return err
	}
	if sum.IPv4.AS != r.ASN || len(sum.IPv4.Peers) != len(r.PeerAddrs) {
		return fmt.Errorf("bgpd is AS %d with %d neighbours, want AS %d with %d (see %s)",
			sum.IPv4.AS, len(sum.IPv4.Peers), r.ASN, len(r.PeerAddrs), r.Logs["bgpd"])
	}
	profiles, err := r.BFDProfiles()
	if err != nil {
		return err
	}
	if _, ok := profiles[BFDProfile]; !ok {
		return fmt.Errorf("bfdd has no profile %q: %v (see %s)", BFDProfile, profiles, r.Logs["bfdd"])
	}
	return nil
}

// header starts every daemon's config: the hostname checkConfig looks for,
// and millisecond log timestamps.
func (r *Router) header() string {
	return "frr defaults traditional\nhostname " + r.NS + "\nlog timestamp precision 3\n!\n"
}

func (r *Router) zebraConf() string { return r.header() }

func (r *Router) bfddConf() string {
	ms := BFDInterval.Milliseconds()
	return r.header() + fmt.Sprintf(`bfd
 profile %s
  receive-interval %d
  transmit-interval %d
  detect-multiplier %d
 exit
exit
!
`, BFDProfile, ms, ms, BFDMultiplier)
}

// toNodes is the outbound route-map on every neighbour: the router sends the
// nodes no routes (the speakers only announce).
const toNodes = "lab-to-nodes"

// bgpdConf: eBGP to every node address, passive (the speakers dial out),
// both address families on every session, ECMP across nodes, fast timers.
func (r *Router) bgpdConf() string {
	var b strings.Builder
	b.WriteString(r.header())
	hold := int(r.HoldTime / time.Second)
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n bgp log-neighbor-changes\n", r.ASN, RouterIPv4)
	b.WriteString(" no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp bestpath as-path multipath-relax\n")
	for _, n := range r.PeerAddrs {
		fmt.Fprintf(&b, " neighbor %s remote-as external\n neighbor %s passive\n", n, n)
		fmt.Fprintf(&b, " neighbor %s timers %d %d\n neighbor %s timers connect 5\n", n, max(hold/3, 1), hold, n)
	}
	for _, af := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, " address-family %s unicast\n  maximum-paths 16\n", af)
		for _, n := range r.PeerAddrs {
			fmt.Fprintf(&b, "  neighbor %s activate\n  neighbor %s route-map %s out\n", n, n, toNodes)
		}
		b.WriteString(" exit-address-family\n")
	}
	fmt.Fprintf(&b, "exit\n!\nroute-map %s deny 10\nexit\n!\n", toNodes)
	return b.String()
}
