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
	add := []string{"ip", "link", "add", ifname, "netns", ns}
	if mac != "" {
		add = append(add, "address", mac)
	}
	add = append(add, "type", "veth", "peer", "name", port, "netns", brNS)
	cmds := [][]string{add,
		{"ip", "-n", brNS, "link", "set", port, "master", br},
		{"ip", "-n", brNS, "link", "set", port, "up"},
	}
	for _, a := range addrs {
		c := []string{"ip", "-n", ns, "addr", "add", a, "dev", ifname}
		if isV6(a) {
			c = append(c, "nodad")
		}
		cmds = append(cmds, c)
	}
	cmds = append(cmds, []string{"ip", "-n", ns, "link", "set", ifname, "up"})
	return shAll(cmds...)
}

func isV6(addr string) bool {
	for _, c := range addr {
		if c == ':' {
			return true
		}
	}
	return false
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
	}
	if err := l.newNS(l.ClientNS); err != nil {
		return err
	}
	return plug(l.ClientNS, "eth0", "02:70:74:63:00:02", l.L2NS, "br0", "client", ClientIPv4+"/24", ClientIPv6+"/64")
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
