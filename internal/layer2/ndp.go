package layer2

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// allNodes is ff02::1, the destination of unsolicited neighbor advertisements.
var allNodes = netip.MustParseAddr("ff02::1")

// decideNDP decodes an ICMPv6 message (without IPv6 header) received from src
// with the given hop limit on an interface whose address is mac, and decides
// whether to answer it. owned reports whether an IPv6 address is currently
// owned on that interface. It is pure and never panics on malformed input.
// Validation follows RFC 4861 section 7.1.1; the kernel has already checked
// the ICMPv6 checksum.
func decideNDP(msg []byte, src netip.Addr, hopLimit int, mac net.HardwareAddr, owned func(netip.Addr) bool) (decision, error) {
	if len(msg) < 1 || ipv6.ICMPType(msg[0]) != ipv6.ICMPTypeNeighborSolicitation {
		return decision{}, nil
	}
	if len(msg) < 24 {
		return decision{}, fmt.Errorf("%w: ndp: solicitation of %d bytes", errMalformed, len(msg))
	}
	if msg[1] != 0 {
		return decision{}, fmt.Errorf("%w: ndp: solicitation with ICMP code %d", errMalformed, msg[1])
	}
	if hopLimit != ndp.HopLimit {
		return decision{}, fmt.Errorf("%w: ndp: solicitation with hop limit %d", errMalformed, hopLimit)
	}
	m, err := ndp.ParseMessage(msg)
	if err != nil {
		return decision{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok {
		return decision{}, fmt.Errorf("%w: ndp: not a solicitation", errMalformed)
	}
	src = src.WithZone("")
	if !src.Is6() || src.Is4In6() || src.IsMulticast() {
		return decision{}, fmt.Errorf("%w: ndp: solicitation from %s", errMalformed, src)
	}
	target := ns.TargetAddress.WithZone("")
	if !target.Is6() || target.Is4In6() || target.IsMulticast() {
		return decision{}, fmt.Errorf("%w: ndp: solicitation for %s", errMalformed, target)
	}
	var srcLLA net.HardwareAddr
	for _, o := range ns.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Source {
			srcLLA = lla.Addr
		}
	}
	d := decision{question: true, target: target}
	if src.IsUnspecified() && srcLLA != nil {
		return d, fmt.Errorf("%w: ndp: duplicate address detection with a source link-layer option", errMalformed)
	}
	if bytes.Equal(srcLLA, mac) || !owned(target) {
		// Our own solicitation looped back, or not ours to answer.
		return d, nil
	}
	na := &ndp.NeighborAdvertisement{
		Solicited:     true,
		Override:      true,
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	d.dstIP = src
	if src.IsUnspecified() {
		// Duplicate address detection for an address we own: defend it
		// to all nodes, unsolicited (RFC 4861 section 7.2.4).
		na.Solicited = false
		d.dstIP = allNodes
	}
	b, err := ndp.MarshalMessage(na)
	if err != nil {
		return d, fmt.Errorf("%w: ndp: building advertisement: %v", errMalformed, err)
	}
	d.reply = b
	return d, nil
}

// unsolicitedNA returns the advertisement announcing that ip is at mac.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	return ndp.MarshalMessage(&ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	})
}

// ndpConn is the IPv6 side of a responder: a raw ICMPv6 socket bound to
// the interface. It is bound to the unspecified address rather than to a
// link-local one (as ndp.Listen does) so that it also receives unicast
// solicitations for owned IPs that are local to the node (neighbor
// unreachability detection), not only the multicast ones.
type ndpConn struct {
	ifi    *net.Interface
	pc     *ipv6.PacketConn
	groups map[netip.Addr]int // solicited-node group -> owned IPs in it
}

func openNDP(ifi *net.Interface) (*ndpConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, ifi.Index)
			if serr == nil {
				// Advertisements are sent from the owned IP itself, which
				// need not be local to the node.
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			}
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("opening ICMPv6 socket: %w", err)
	}
	pc := ipv6.NewPacketConn(c)
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborSolicitation)
	for _, set := range []func() error{
		func() error { return pc.SetICMPFilter(&f) },
		func() error { return pc.SetHopLimit(ndp.HopLimit) },
		func() error { return pc.SetMulticastHopLimit(ndp.HopLimit) },
		func() error { return pc.SetMulticastLoopback(false) },
		func() error { return pc.SetMulticastInterface(ifi) },
		func() error { return pc.SetChecksum(true, 2) },
		func() error { return pc.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true) },
	} {
		if err := set(); err != nil {
			c.Close()
			return nil, fmt.Errorf("setting up ICMPv6 socket: %w", err)
		}
	}
	return &ndpConn{ifi: ifi, pc: pc, groups: map[netip.Addr]int{}}, nil
}

func (c *ndpConn) close() error { return c.pc.Close() }

// join joins the solicited-node multicast group of ip, counting owners so
// that IPs sharing a group leave it only with the last one.
func (c *ndpConn) join(ip netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return err
	}
	if c.groups[g] == 0 {
		if err := c.pc.JoinGroup(c.ifi, &net.IPAddr{IP: g.AsSlice()}); err != nil {
			return fmt.Errorf("joining %s: %w", g, err)
		}
	}
	c.groups[g]++
	return nil
}

func (c *ndpConn) leave(ip netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return err
	}
	if c.groups[g]--; c.groups[g] > 0 {
		return nil
	}
	delete(c.groups, g)
	if err := c.pc.LeaveGroup(c.ifi, &net.IPAddr{IP: g.AsSlice()}); err != nil {
		return fmt.Errorf("leaving %s: %w", g, err)
	}
	return nil
}

func (c *ndpConn) serve(r *responder) error {
	buf := make([]byte, 1500)
	for {
		n, cm, from, err := c.pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if cm == nil || cm.IfIndex != c.ifi.Index {
			continue
		}
		var src netip.Addr
		if ipa, ok := from.(*net.IPAddr); ok {
			src, _ = netip.AddrFromSlice(ipa.IP)
		}
		r.handle(func(owned func(netip.Addr) bool) (decision, error) {
			return decideNDP(buf[:n], src, cm.HopLimit, c.ifi.HardwareAddr, owned)
		}, func(d decision) error { return c.write(d.reply, d.target, d.dstIP) })
	}
}

// write sends an advertisement for ip to dst. Its source address is ip, as
// Linux does for its own addresses: some hosts and tools (ndisc6) match an
// advertisement for a global address only when it comes from that address.
func (c *ndpConn) write(b []byte, ip, dst netip.Addr) error {
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, IfIndex: c.ifi.Index, Src: ip.AsSlice()}
	// The zone is the interface index, not its name: Go resolves names in
	// the network namespace of whatever thread runs this, which need not
	// be the one the socket lives in.
	_, err := c.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: strconv.Itoa(c.ifi.Index)})
	return err
}

// announce sends one unsolicited neighbor advertisement for ip.
func (c *ndpConn) announce(ip netip.Addr) (int, error) {
	b, err := unsolicitedNA(c.ifi.HardwareAddr, ip)
	if err != nil {
		return 0, err
	}
	if err := c.write(b, ip, allNodes); err != nil {
		return 0, err
	}
	return 1, nil
}
