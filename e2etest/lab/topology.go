package lab

import "os/exec"

var lookPath = exec.LookPath

// newNS creates a namespace with lo up, IPv6 DAD off (before any link is up)
// and extra sysctls, recording it in the state file first so that an
// interrupted run can find it.
func (l *Lab) newNS(ns string, sysctls ...string) error {
	l.mu.Lock()
	l.state.Namespaces = append(l.state.Namespaces, ns)
	err := l.state.save()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	args := append([]string{"ip", "netns", "exec", ns, "sysctl", "-qw",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"}, sysctls...)
	return shAll(
		[]string{"ip", "netns", "add", ns},
		[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
		args,
	)
}

// bridge creates a bridge that forwards at once and floods multicast.
func bridge(ns, name string) []string {
	return []string{"ip", "-n", ns, "link", "add", name, "type", "bridge",
		"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"}
}

// plug connects namespace ns (interface ifname, optional MAC) to bridge br in
// namespace brNS through a veth pair whose bridge end is called port, and
// gives ifname its addresses (IPv6 ones nodad).
func plug(ns, ifname, mac, brNS, br, port string, addrs ...string) error {
	cmds := [][]string{veth(ns, ifname, mac, brNS, port),
		{"ip", "-n", brNS, "link", "set", port, "master", br},
		{"ip", "-n", brNS, "link", "set", port, "up"},
	}
	return shAll(append(cmds, addrsUp(ns, ifname, addrs...)...)...)
}

// veth creates a veth pair: ifname (optional MAC) in ns, peer in peerNS.
func veth(ns, ifname, mac, peerNS, peer string) []string {
	add := []string{"ip", "link", "add", ifname, "netns", ns}
	if mac != "" {
		add = append(add, "address", mac)
	}
	return append(add, "type", "veth", "peer", "name", peer, "netns", peerNS)
}

// addrsUp gives ifname in ns its addresses (IPv6 ones nodad) and sets it up.
func addrsUp(ns, ifname string, addrs ...string) [][]string {
	var cmds [][]string
	for _, a := range addrs {
		c := []string{"ip", "-n", ns, "addr", "add", a, "dev", ifname}
		if isV6(a) {
			c = append(c, "nodad")
		}
		cmds = append(cmds, c)
	}
	return append(cmds, []string{"ip", "-n", ns, "link", "set", ifname, "up"})
}

// defaultRoutes points ns's IPv4 and IPv6 default routes at gw4 and gw6
// through dev.
func defaultRoutes(ns, dev, gw4, gw6 string) [][]string {
	return [][]string{
		{"ip", "-n", ns, "-4", "route", "add", "default", "via", gw4, "dev", dev},
		{"ip", "-n", ns, "-6", "route", "add", "default", "via", gw6, "dev", dev},
	}
}

func isV6(addr string) bool {
	for _, c := range addr {
		if c == ':' {
			return true
		}
	}
	return false
}

// routerSysctls make the router forward both families and spread ECMP flows
// over next hops by ports too (a single external client then reaches more
// than one node).
var routerSysctls = []string{
	"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
	"net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1",
}

// strictARP makes a node's kernel leave ARP for addresses on lo to the speaker
// (kube-proxy IPVS "strict ARP"); see the package documentation.
var strictARP = []string{
	"net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
	"net.ipv4.conf.default.arp_ignore=1", "net.ipv4.conf.default.arp_announce=2",
}

func (l *Lab) buildTopology() error {
	if err := l.newNS(l.CtlNS); err != nil {
		return err
	}
	if err := shAll(bridge(l.CtlNS, "brm"),
		[]string{"ip", "-n", l.CtlNS, "addr", "add", APIAddr + "/25", "dev", "brm"},
		[]string{"ip", "-n", l.CtlNS, "link", "set", "brm", "up"}); err != nil {
		return err
	}
	if err := l.newNS(l.L2NS); err != nil {
		return err
	}
	if err := shAll(bridge(l.L2NS, "br0"), []string{"ip", "-n", l.L2NS, "link", "set", "br0", "up"}); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		if err := l.newNS(n.NS, strictARP...); err != nil {
			return err
		}
		if err := plug(n.NS, "eth0", n.MAC, l.L2NS, "br0", n.Port, n.IPv4+"/24", n.IPv6+"/64"); err != nil {
			return err
		}
		if err := plug(n.NS, "mgmt0", "", l.CtlNS, "brm", n.Name, n.MgmtIP+"/25"); err != nil {
			return err
		}
		// Like a real node's gateway, its top-of-rack router: replies to the
		// external client go back through it.
		if err := shAll(defaultRoutes(n.NS, "eth0", RouterIPv4, RouterIPv6)...); err != nil {
			return err
		}
	}
	if err := l.newNS(l.ClientNS); err != nil {
		return err
	}
	if err := plug(l.ClientNS, "eth0", clientMAC, l.L2NS, "br0", "client", ClientIPv4+"/24", ClientIPv6+"/64"); err != nil {
		return err
	}
	return l.buildRouter()
}

// buildRouter creates the router namespace on the data segment and the
// external client's namespace behind it, linked by a veth pair (router ext0,
// client eth0).
func (l *Lab) buildRouter() error {
	if err := l.newNS(l.RouterNS, routerSysctls...); err != nil {
		return err
	}
	if err := plug(l.RouterNS, "eth0", routerMAC, l.L2NS, "br0", "router", RouterIPv4+"/24", RouterIPv6+"/64"); err != nil {
		return err
	}
	if err := l.newNS(l.ExtNS); err != nil {
		return err
	}
	cmds := [][]string{veth(l.ExtNS, "eth0", "", l.RouterNS, "ext0")}
	cmds = append(cmds, addrsUp(l.RouterNS, "ext0", RouterExtIPv4+extLen4, RouterExtIPv6+extLen6)...)
	cmds = append(cmds, addrsUp(l.ExtNS, "eth0", ExtIPv4+extLen4, ExtIPv6+extLen6)...)
	return shAll(append(cmds, defaultRoutes(l.ExtNS, "eth0", RouterExtIPv4, RouterExtIPv6)...)...)
}

// CutDataLink takes the carrier from node n's data interface by setting its
// bridge port down (the node sees NO-CARRIER, as when a cable is pulled).
func (l *Lab) CutDataLink(n *Node) error {
	_, err := sh("ip", "-n", l.L2NS, "link", "set", n.Port, "down")
	return err
}

// RestoreDataLink gives node n's data interface its carrier back.
func (l *Lab) RestoreDataLink(n *Node) error {
	_, err := sh("ip", "-n", l.L2NS, "link", "set", n.Port, "up")
	return err
}

// Exec runs a command inside namespace ns and returns its combined output.
func Exec(ns string, args ...string) (string, error) {
	return sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
}
