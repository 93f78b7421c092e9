package layer2

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

var (
	nodeMAC   = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01}
	clientMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x02}
	ownedV4   = netip.MustParseAddr("192.0.2.100")
	otherV4   = netip.MustParseAddr("192.0.2.101")
	clientV4  = netip.MustParseAddr("192.0.2.2")
	ownedV6   = netip.MustParseAddr("2001:db8::100")
	otherV6   = netip.MustParseAddr("2001:db8::101")
	clientV6  = netip.MustParseAddr("fe80::2")
)

func ownedSet(ips ...netip.Addr) func(netip.Addr) bool {
	return func(ip netip.Addr) bool {
		for _, o := range ips {
			if ip == o {
				return true
			}
		}
		return false
	}
}

func arpFrame(t testing.TB, op arp.Operation, ethSrc, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, tha, tpa)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ethernetFrame(ethernet.Broadcast, ethSrc, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecideARP(t *testing.T) {
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	req := func(tpa netip.Addr) []byte {
		return arpFrame(t, arp.OperationRequest, clientMAC, clientMAC, clientV4, zero, tpa)
	}
	ipv6Frame := func() []byte {
		f := ethernet.Frame{Destination: ethernet.Broadcast, Source: clientMAC, EtherType: ethernet.EtherTypeIPv6, Payload: make([]byte, 40)}
		b, _ := f.MarshalBinary()
		return b
	}()
	wrongPlen := req(ownedV4)
	wrongPlen[14+5] = 16

	tests := []struct {
		name      string
		frame     []byte
		request   bool
		reply     bool
		malformed bool
	}{
		{"request for owned IP", req(ownedV4), true, true, false},
		{"request for other IP", req(otherV4), true, false, false},
		{"probe (sender 0.0.0.0) for owned IP", arpFrame(t, arp.OperationRequest, clientMAC, clientMAC, netip.IPv4Unspecified(), zero, ownedV4), true, true, false},
		{"own request looped back", arpFrame(t, arp.OperationRequest, nodeMAC, nodeMAC, netip.MustParseAddr("192.0.2.1"), zero, ownedV4), true, false, false},
		{"own MAC in ethernet source only", arpFrame(t, arp.OperationRequest, nodeMAC, clientMAC, clientV4, zero, ownedV4), true, false, false},
		{"gratuitous request from another host", arpFrame(t, arp.OperationRequest, clientMAC, clientMAC, ownedV4, zero, ownedV4), true, false, false},
		{"reply is not answered", arpFrame(t, arp.OperationReply, clientMAC, clientMAC, clientV4, nodeMAC, ownedV4), false, false, false},
		{"broadcast sender hardware address", arpFrame(t, arp.OperationRequest, clientMAC, ethernet.Broadcast, clientV4, zero, ownedV4), true, false, true},
		{"not ARP", ipv6Frame, false, false, false},
		{"empty", nil, false, false, true},
		{"truncated ARP", req(ownedV4)[:14+10], false, false, true},
		{"IPv6-sized protocol addresses", wrongPlen, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := decideARP(tt.frame, nodeMAC, ownedSet(ownedV4))
			if gotMal := errors.Is(err, errMalformed); gotMal != tt.malformed || (err != nil && !gotMal) {
				t.Fatalf("err = %v, want malformed %v", err, tt.malformed)
			}
			if d.question != tt.request {
				t.Errorf("question = %v, want %v", d.question, tt.request)
			}
			if (d.reply != nil) != tt.reply {
				t.Fatalf("reply = %x, want reply %v", d.reply, tt.reply)
			}
			if !tt.reply {
				return
			}
			var f ethernet.Frame
			if err := f.UnmarshalBinary(d.reply); err != nil {
				t.Fatal(err)
			}
			var p arp.Packet
			if err := p.UnmarshalBinary(f.Payload); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Source, nodeMAC) || !bytes.Equal(f.Destination, clientMAC) || !bytes.Equal(d.dstMAC, clientMAC) {
				t.Errorf("ethernet %s -> %s (dst %s), want %s -> %s", f.Source, f.Destination, d.dstMAC, nodeMAC, clientMAC)
			}
			if p.Operation != arp.OperationReply || !bytes.Equal(p.SenderHardwareAddr, nodeMAC) || p.SenderIP != ownedV4 ||
				!bytes.Equal(p.TargetHardwareAddr, clientMAC) {
				t.Errorf("reply %+v", p)
			}
		})
	}
}

func TestGratuitousARP(t *testing.T) {
	frames, err := gratuitousARP(nodeMAC, ownedV4)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[arp.Operation]bool{}
	for _, b := range frames {
		var f ethernet.Frame
		var p arp.Packet
		if err := f.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) || p.SenderIP != ownedV4 || p.TargetIP != ownedV4 || !bytes.Equal(p.SenderHardwareAddr, nodeMAC) {
			t.Errorf("gratuitous %+v", p)
		}
		ops[p.Operation] = true
		// Our own announcement, seen on the socket, is never answered.
		if d, _ := decideARP(b, nodeMAC, ownedSet(ownedV4)); d.reply != nil {
			t.Errorf("answered own announcement %v", p.Operation)
		}
	}
	if !ops[arp.OperationRequest] || !ops[arp.OperationReply] {
		t.Errorf("operations %v, want request and reply", ops)
	}
}

func nsMsg(t testing.TB, target netip.Addr, lla net.HardwareAddr) []byte {
	t.Helper()
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if lla != nil {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: lla}}
	}
	b, err := ndp.MarshalMessage(ns)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecideNDP(t *testing.T) {
	badCode := nsMsg(t, ownedV6, clientMAC)
	badCode[1] = 1
	na, _ := ndp.MarshalMessage(&ndp.NeighborAdvertisement{TargetAddress: ownedV6})
	tests := []struct {
		name         string
		msg          []byte
		src          netip.Addr
		hop          int
		solicitation bool
		dst          netip.Addr // zero: no reply
		solicited    bool
		malformed    bool
	}{
		{"solicitation for owned IP", nsMsg(t, ownedV6, clientMAC), clientV6, 255, true, clientV6, true, false},
		{"solicitation with zone on source", nsMsg(t, ownedV6, clientMAC), clientV6.WithZone("eth0"), 255, true, clientV6, true, false},
		{"solicitation without source option", nsMsg(t, ownedV6, nil), clientV6, 255, true, clientV6, true, false},
		{"solicitation for other IP", nsMsg(t, otherV6, clientMAC), clientV6, 255, true, netip.Addr{}, false, false},
		{"DAD for owned IP is defended to all nodes", nsMsg(t, ownedV6, nil), netip.IPv6Unspecified(), 255, true, allNodes, false, false},
		{"DAD with source option is invalid", nsMsg(t, ownedV6, clientMAC), netip.IPv6Unspecified(), 255, true, netip.Addr{}, false, true},
		{"own solicitation looped back", nsMsg(t, ownedV6, nodeMAC), netip.MustParseAddr("fe80::1"), 255, true, netip.Addr{}, false, false},
		{"hop limit not 255", nsMsg(t, ownedV6, clientMAC), clientV6, 64, false, netip.Addr{}, false, true},
		{"ICMP code not 0", badCode, clientV6, 255, false, netip.Addr{}, false, true},
		{"multicast target", nsMsg(t, netip.MustParseAddr("ff02::1"), clientMAC), clientV6, 255, false, netip.Addr{}, false, true},
		{"multicast source", nsMsg(t, ownedV6, clientMAC), netip.MustParseAddr("ff02::1"), 255, false, netip.Addr{}, false, true},
		{"invalid source", nsMsg(t, ownedV6, clientMAC), netip.Addr{}, 255, false, netip.Addr{}, false, true},
		{"advertisement is ignored", na, clientV6, 255, false, netip.Addr{}, false, false},
		{"truncated", nsMsg(t, ownedV6, clientMAC)[:20], clientV6, 255, false, netip.Addr{}, false, true},
		{"bad option length", append(nsMsg(t, ownedV6, nil), 1, 0, 0, 0, 0, 0, 0, 0), clientV6, 255, false, netip.Addr{}, false, true},
		{"empty", nil, clientV6, 255, false, netip.Addr{}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := decideNDP(tt.msg, tt.src, tt.hop, nodeMAC, ownedSet(ownedV6))
			if gotMal := errors.Is(err, errMalformed); gotMal != tt.malformed || (err != nil && !gotMal) {
				t.Fatalf("err = %v, want malformed %v", err, tt.malformed)
			}
			if d.question != tt.solicitation {
				t.Errorf("question = %v, want %v", d.question, tt.solicitation)
			}
			if (d.reply != nil) != tt.dst.IsValid() {
				t.Fatalf("reply %x to %s, want reply to %s", d.reply, d.dstIP, tt.dst)
			}
			if d.reply == nil {
				return
			}
			if d.dstIP != tt.dst {
				t.Errorf("dst = %s, want %s", d.dstIP, tt.dst)
			}
			m, err := ndp.ParseMessage(d.reply)
			if err != nil {
				t.Fatal(err)
			}
			a, ok := m.(*ndp.NeighborAdvertisement)
			if !ok {
				t.Fatalf("reply is %T", m)
			}
			if a.TargetAddress != ownedV6 || a.Solicited != tt.solicited || !a.Override || a.Router {
				t.Errorf("advertisement %+v", a)
			}
			if len(a.Options) != 1 || !bytes.Equal(a.Options[0].(*ndp.LinkLayerAddress).Addr, nodeMAC) ||
				a.Options[0].(*ndp.LinkLayerAddress).Direction != ndp.Target {
				t.Errorf("options %+v, want target link-layer address %s", a.Options, nodeMAC)
			}
		})
	}
}

func TestUnsolicitedNA(t *testing.T) {
	b, err := unsolicitedNA(nodeMAC, ownedV6)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	a := m.(*ndp.NeighborAdvertisement)
	if a.Solicited || !a.Override || a.TargetAddress != ownedV6 || len(a.Options) != 1 {
		t.Errorf("unsolicited advertisement %+v", a)
	}
}

// FuzzARP checks that no input crashes decideARP and that it only ever
// answers for an owned IP, to the asker, from our MAC.
func FuzzARP(f *testing.F) {
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	f.Add(arpFrame(f, arp.OperationRequest, clientMAC, clientMAC, clientV4, zero, ownedV4))
	f.Add(arpFrame(f, arp.OperationRequest, clientMAC, clientMAC, clientV4, zero, otherV4))
	f.Add(arpFrame(f, arp.OperationReply, clientMAC, clientMAC, clientV4, nodeMAC, ownedV4))
	f.Add(arpFrame(f, arp.OperationRequest, clientMAC, clientMAC, netip.IPv4Unspecified(), zero, ownedV4))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		d, err := decideARP(frame, nodeMAC, ownedSet(ownedV4))
		if err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if d.reply == nil {
			return
		}
		var fr ethernet.Frame
		var p arp.Packet
		if err := fr.UnmarshalBinary(d.reply); err != nil {
			t.Fatal(err)
		}
		if err := p.UnmarshalBinary(fr.Payload); err != nil {
			t.Fatal(err)
		}
		if p.SenderIP != ownedV4 || !bytes.Equal(p.SenderHardwareAddr, nodeMAC) || !bytes.Equal(fr.Source, nodeMAC) {
			t.Fatalf("reply for %s from %s", p.SenderIP, p.SenderHardwareAddr)
		}
		if isBroadcastOrMulticast(fr.Destination) || !bytes.Equal(fr.Destination, d.dstMAC) {
			t.Fatalf("reply to %s (dst %s)", fr.Destination, d.dstMAC)
		}
	})
}

// FuzzNDP checks that no input crashes decideNDP and that it only ever
// answers for an owned IP with our MAC.
func FuzzNDP(f *testing.F) {
	f.Add(nsMsg(f, ownedV6, clientMAC), clientV6.AsSlice(), 255)
	f.Add(nsMsg(f, otherV6, clientMAC), clientV6.AsSlice(), 255)
	f.Add(nsMsg(f, ownedV6, nil), netip.IPv6Unspecified().AsSlice(), 255)
	f.Add(nsMsg(f, ownedV6, clientMAC), clientV6.AsSlice(), 1)
	f.Add([]byte{135, 0, 0, 0}, []byte{}, 255)
	f.Fuzz(func(t *testing.T, msg, src []byte, hop int) {
		s, _ := netip.AddrFromSlice(src)
		d, err := decideNDP(msg, s, hop, nodeMAC, ownedSet(ownedV6))
		if err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if d.reply == nil {
			return
		}
		m, err := ndp.ParseMessage(d.reply)
		if err != nil {
			t.Fatal(err)
		}
		a, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || a.TargetAddress != ownedV6 || len(a.Options) != 1 ||
			!bytes.Equal(a.Options[0].(*ndp.LinkLayerAddress).Addr, nodeMAC) {
			t.Fatalf("reply %+v", m)
		}
		if !d.dstIP.IsValid() || (d.dstIP.IsMulticast() && d.dstIP != allNodes) {
			t.Fatalf("reply to %s", d.dstIP)
		}
	})
}
