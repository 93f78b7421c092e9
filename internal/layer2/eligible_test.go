package layer2

import (
	"net"
	"strings"
	"testing"
)

func TestEligible(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0x5e, 0, 0x53, 1}
	up := func(name, kind string) Link { return Link{Name: name, Kind: kind, HardwareAddr: mac, Up: true} }
	with := func(l Link, f func(*Link)) Link { f(&l); return l }

	tests := []struct {
		name   string
		link   Link
		allow  []string
		want   bool
		reason string // substring of the reason when not eligible
	}{
		{"physical NIC", up("eth0", "device"), nil, true, ""},
		{"predictable name", up("enp3s0f1", "device"), nil, true, ""},
		{"bond", up("bond0", "bond"), nil, true, ""},
		{"vlan", up("bond0.100", "vlan"), nil, true, ""},
		{"veth kind with a plain name (a node's netns end)", up("eth0", "veth"), nil, true, ""},
		{"macvlan", up("mv0", "macvlan"), nil, true, ""},
		{"down", with(up("eth0", "device"), func(l *Link) { l.Up = false }), nil, false, "down"},
		{"down even when allowed", with(up("eth0", "device"), func(l *Link) { l.Up = false }), []string{"eth0"}, false, "down"},
		{"loopback", Link{Name: "lo", Kind: "device", HardwareAddr: make(net.HardwareAddr, 6), Up: true, Loopback: true}, nil, false, "loopback"},
		{"loopback even when allowed", Link{Name: "lo", HardwareAddr: make(net.HardwareAddr, 6), Up: true, Loopback: true}, []string{"lo"}, false, "loopback"},
		{"no MAC (wireguard)", Link{Name: "wg0", Kind: "wireguard", Up: true}, []string{"wg0"}, false, "Ethernet"},
		{"pod veth", up("veth1a2b3c", "veth"), nil, false, "veth*"},
		{"calico", up("cali12345", "veth"), nil, false, "cali*"},
		{"cilium", up("cilium_host", "veth"), nil, false, "cilium*"},
		{"lxc", up("lxc0abc", "veth"), nil, false, "lxc*"},
		{"flannel", up("flannel.1", "vxlan"), nil, false, "vxlan"},
		{"cni0 bridge", up("cni0", "bridge"), nil, false, "bridge"},
		{"docker0", up("docker0", "bridge"), nil, false, "bridge"},
		{"docker network bridge", up("br-0123abcd", "bridge"), nil, false, "bridge"},
		{"kube-ipvs0", up("kube-ipvs0", "dummy"), nil, false, "dummy"},
		{"generic bridge excluded by default", up("br0", "bridge"), nil, false, "name it in interfaces"},
		{"generic bridge when allowed", up("br0", "bridge"), []string{"br0"}, true, ""},
		{"bridge port", with(up("eth1", "device"), func(l *Link) { l.Enslaved = true }), nil, false, "port of a bridge or bond"},
		{"bridge port when allowed", with(up("eth1", "device"), func(l *Link) { l.Enslaved = true }), []string{"eth1"}, true, ""},
		{"allowed veth", up("veth0", "veth"), []string{"veth0"}, true, ""},
		{"not in allow-list", up("eth0", "device"), []string{"eth1"}, false, "interfaces list"},
		{"allow-list is exact, not prefix", up("eth10", "device"), []string{"eth1"}, false, "interfaces list"},
		{"tap", up("tap0", "tuntap"), nil, false, "tuntap"},
		{"libvirt vnet", up("vnet3", "tuntap"), nil, false, "tuntap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := Eligible(tt.link, tt.allow)
			if got != tt.want {
				t.Fatalf("Eligible(%+v, %q) = %v (%q), want %v", tt.link, tt.allow, got, reason, tt.want)
			}
			if got && reason != "" {
				t.Errorf("eligible with reason %q", reason)
			}
			if !got && !strings.Contains(reason, tt.reason) {
				t.Errorf("reason %q does not mention %q", reason, tt.reason)
			}
		})
	}
}
