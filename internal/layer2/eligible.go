package layer2

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// Link is what interface eligibility is decided on.
type Link struct {
	Name string
	// Kind is the netlink link type: "device" for physical NICs, "veth",
	// "bridge", "bond", "vlan", "macvlan", "dummy", "vxlan", "tuntap", ...
	Kind         string
	HardwareAddr net.HardwareAddr
	// Up is true when the link is administratively up and its operational
	// state is up (or unknown, as for drivers that do not report it).
	Up       bool
	Loopback bool
	// Enslaved is true when the link is a port of a bridge or a bond.
	Enslaved bool
}

// Name prefixes of interfaces that belong to container networking or
// virtualisation and are never announced on unless named explicitly.
var excludedPrefixes = []string{
	"veth", "docker", "br-", "cni", "flannel", "cali", "cilium", "lxc",
	"kube-ipvs", "kube-bridge", "vxlan", "tunl", "weave", "virbr", "vnet",
	"nodelocaldns", "genev", "antrea", "ovn-k8s", "tap",
}

// Link kinds that are never announced on unless named explicitly.
var excludedKinds = []string{
	"bridge", "dummy", "vxlan", "geneve", "ipip", "ip6tnl", "sit", "gre",
	"gretap", "tuntap", "wireguard", "openvswitch", "nlmon",
}

// Eligible reports whether the announcer may answer on link. allow is the
// explicit list of interface names from an L2Advertisement: when it is not
// empty, exactly the named links are eligible (the default exclusions do not
// apply to them), provided they are up Ethernet links. When allow is empty, any
// up Ethernet link is eligible except loopback, bridge and bond ports, and
// container or virtualisation interfaces. reason says why a link is not
// eligible, in words fit for a status message.
func Eligible(l Link, allow []string) (ok bool, reason string) {
	switch {
	case l.Loopback:
		return false, "loopback interface"
	case len(l.HardwareAddr) != 6:
		return false, "no Ethernet hardware address"
	case !l.Up:
		return false, "interface is down or has no carrier"
	}
	if len(allow) > 0 {
		if !slices.Contains(allow, l.Name) {
			return false, "not in the advertisement's interfaces list"
		}
		return true, ""
	}
	if l.Enslaved {
		return false, "port of a bridge or bond (announce on the master, or name it in interfaces)"
	}
	if slices.Contains(excludedKinds, l.Kind) {
		return false, fmt.Sprintf("%s interface excluded by default (name it in interfaces to use it)", l.Kind)
	}
	for _, p := range excludedPrefixes {
		if strings.HasPrefix(l.Name, p) {
			return false, fmt.Sprintf("container or virtual interface (%s*) excluded by default (name it in interfaces to use it)", p)
		}
	}
	return true, ""
}

// Links lists the links of the calling thread's network namespace.
func Links() ([]Link, error) {
	nl, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("layer2: listing links: %w", err)
	}
	out := make([]Link, 0, len(nl))
	for _, l := range nl {
		out = append(out, linkFromNetlink(l))
	}
	return out, nil
}

func linkFromNetlink(l netlink.Link) Link {
	a := l.Attrs()
	return Link{
		Name:         a.Name,
		Kind:         l.Type(),
		HardwareAddr: a.HardwareAddr,
		Up: a.Flags&net.FlagUp != 0 &&
			(a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown),
		Loopback: a.Flags&net.FlagLoopback != 0,
		Enslaved: a.MasterIndex != 0,
	}
}

// EligibleLinks returns the names of the links in the calling thread's
// network namespace that Eligible accepts with allow, sorted.
func EligibleLinks(allow []string) ([]string, error) {
	ls, err := Links()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range ls {
		if ok, _ := Eligible(l, allow); ok {
			names = append(names, l.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}
