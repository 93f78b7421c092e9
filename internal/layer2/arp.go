package layer2

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

var errMalformed = errors.New("malformed packet")

// decision is what to do with one received packet.
type decision struct {
	question bool       // a well-formed ARP request or neighbor solicitation
	target   netip.Addr // the IP asked for, when question
	reply    []byte     // the packet to send back, nil for none
	dstMAC   net.HardwareAddr
	dstIP    netip.Addr
}

// decideARP decodes an Ethernet frame read from a packet socket on an
// interface whose address is mac and decides whether to answer it. owned
// reports whether an IPv4 address is currently owned on that interface. It is
// pure: all input comes from its arguments, and it never panics on malformed
// input.
func decideARP(frame []byte, mac net.HardwareAddr, owned func(netip.Addr) bool) (decision, error) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil {
		return decision{}, fmt.Errorf("%w: ethernet: %v", errMalformed, err)
	}
	if f.EtherType != ethernet.EtherTypeARP {
		return decision{}, nil
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return decision{}, fmt.Errorf("%w: arp: %v", errMalformed, err)
	}
	// Only Ethernet/IPv4 ARP is answered.
	if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) ||
		p.HardwareAddrLength != 6 || p.IPLength != 4 {
		return decision{}, fmt.Errorf("%w: arp: not Ethernet/IPv4 (htype %d, ptype %#04x, hlen %d, plen %d)",
			errMalformed, p.HardwareType, p.ProtocolType, p.HardwareAddrLength, p.IPLength)
	}
	if p.Operation != arp.OperationRequest {
		return decision{}, nil
	}
	d := decision{question: true, target: p.TargetIP}
	switch {
	case bytes.Equal(p.SenderHardwareAddr, mac), bytes.Equal(f.Source, mac):
		// Our own request, looped back to the packet socket.
		return d, nil
	case isBroadcastOrMulticast(p.SenderHardwareAddr), isBroadcastOrMulticast(f.Source):
		// A reply would go to a group address: never.
		return d, fmt.Errorf("%w: arp: request from group address %s", errMalformed, p.SenderHardwareAddr)
	case p.SenderIP == p.TargetIP:
		// Someone else's gratuitous ARP announcement, not a question.
		return d, nil
	case !owned(p.TargetIP):
		return d, nil
	}
	// An ARP probe (sender 0.0.0.0, RFC 5227) is answered too: that defends
	// the address. The reply goes to the asker's hardware address.
	r, err := arp.NewPacket(arp.OperationReply, mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
	if err != nil {
		return d, fmt.Errorf("%w: arp: building reply: %v", errMalformed, err)
	}
	b, err := ethernetFrame(p.SenderHardwareAddr, mac, r)
	if err != nil {
		return d, err
	}
	d.reply, d.dstMAC = b, p.SenderHardwareAddr
	return d, nil
}

func isBroadcastOrMulticast(hw net.HardwareAddr) bool {
	return len(hw) > 0 && hw[0]&1 == 1
}

func ethernetFrame(dst, src net.HardwareAddr, p *arp.Packet) ([]byte, error) {
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := ethernet.Frame{Destination: dst, Source: src, EtherType: ethernet.EtherTypeARP, Payload: pb}
	return f.MarshalBinary()
}

// gratuitousARP returns the frames announcing that ip is at mac: an ARP
// request and an ARP reply, both broadcast, with sender and target IP set to
// ip. Hosts differ in which of the two they act on, so both are sent.
func gratuitousARP(mac net.HardwareAddr, ip netip.Addr) ([][]byte, error) {
	req, err := arp.NewPacket(arp.OperationRequest, mac, ip, net.HardwareAddr{0, 0, 0, 0, 0, 0}, ip)
	if err != nil {
		return nil, err
	}
	rep, err := arp.NewPacket(arp.OperationReply, mac, ip, ethernet.Broadcast, ip)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, p := range []*arp.Packet{req, rep} {
		b, err := ethernetFrame(ethernet.Broadcast, mac, p)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// arpConn is the IPv4 side of a responder: a packet socket for ARP frames.
type arpConn struct {
	ifi *net.Interface
	pc  *packet.Conn
}

func openARP(ifi *net.Interface) (*arpConn, error) {
	pc, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return nil, fmt.Errorf("opening ARP packet socket: %w", err)
	}
	return &arpConn{ifi: ifi, pc: pc}, nil
}

func (c *arpConn) close() error { return c.pc.Close() }

// serve reads frames until the socket is closed. handle is called with the
// responder's lock held for reading, so an IP removed from the owned set is
// never answered after removal returns.
func (c *arpConn) serve(r *responder) error {
	buf := make([]byte, 1500)
	for {
		n, _, err := c.pc.ReadFrom(buf)
		if errors.Is(err, unix.ENETDOWN) {
			// The link went down: the socket is still bound and
			// receives again once it is up. Reported once per event.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		r.handle(func(owned func(netip.Addr) bool) (decision, error) {
			return decideARP(buf[:n], c.ifi.HardwareAddr, owned)
		}, func(d decision) error {
			_, err := c.pc.WriteTo(d.reply, &packet.Addr{HardwareAddr: d.dstMAC})
			return err
		})
	}
}

// announce sends gratuitous ARP for ip and returns how many packets went out.
func (c *arpConn) announce(ip netip.Addr) (int, error) {
	frames, err := gratuitousARP(c.ifi.HardwareAddr, ip)
	if err != nil {
		return 0, err
	}
	for i, f := range frames {
		if _, err := c.pc.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			return i, err
		}
	}
	return len(frames), nil
}
