package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// Sampler asks from the client namespace who answers for many IPs at once:
// one ARP request (IPv4) or neighbour solicitation (IPv6) per IP per round,
// and every distinct MAC that answered that request. ARPReplies (arping -c
// 2) spans two requests a second apart, so a handover from one node to
// another inside that second shows two MACs; a round of the Sampler is one
// request, so two MACs in a round are two nodes answering at the same time.
// Only answers addressed to the client count (gratuitous ARP and
// unsolicited advertisements of a takeover are not answers to a question).
type Sampler struct {
	arp *arp.Client
	// ndp is a raw ICMPv6 socket of the client's. Not an ndp.Conn: that
	// names the interface in each destination's zone, which Go resolves in
	// the root namespace, not the client's.
	ndp     *ipv6.PacketConn
	ifindex int
	src4    netip.Addr
	replies chan reply
	closed  atomic.Bool
	wg      sync.WaitGroup
}

type reply struct {
	ip  netip.Addr
	mac string
	at  time.Time
}

// NewSampler opens the client's raw ARP and ICMPv6 sockets (on eth0, inside
// the client namespace). Close it when done.
func (l *Lab) NewSampler() (*Sampler, error) {
	s := &Sampler{replies: make(chan reply, 4096)}
	err := inNS(l.ClientNS, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if s.arp, err = arp.Dial(ifi); err != nil {
			return fmt.Errorf("ARP socket: %w", err)
		}
		s.ifindex = ifi.Index
		c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			s.arp.Close()
			return fmt.Errorf("ICMPv6 socket: %w", err)
		}
		s.ndp = ipv6.NewPacketConn(c)
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
		for _, set := range []error{
			s.ndp.SetICMPFilter(&f),
			s.ndp.SetMulticastHopLimit(ndp.HopLimit),
			s.ndp.SetMulticastInterface(ifi),
			s.ndp.SetChecksum(true, 2),
		} {
			if set != nil {
				s.arp.Close()
				c.Close()
				return fmt.Errorf("ICMPv6 socket: %w", set)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sampler in %s: %w", l.ClientNS, err)
	}
	s.src4 = netip.MustParseAddr(ClientIPv4)
	s.wg.Add(2)
	go s.readARP()
	go s.readNDP()
	return s, nil
}

// Close closes the sockets and waits for the readers.
func (s *Sampler) Close() {
	s.closed.Store(true)
	s.arp.Close()
	s.ndp.Close()
	s.wg.Wait()
}

// stopped reports whether a reader should stop: the socket was closed. A
// read error on an open socket (a malformed packet, the link down for a
// moment) is waited out briefly and reading goes on.
func (s *Sampler) stopped(err error) bool {
	if err != nil && !s.closed.Load() {
		time.Sleep(time.Millisecond)
	}
	return s.closed.Load()
}

func (s *Sampler) readARP() {
	defer s.wg.Done()
	for {
		p, _, err := s.arp.Read()
		if s.stopped(err) {
			return
		}
		if err != nil || p.Operation != arp.OperationReply || p.TargetIP != s.src4 {
			continue
		}
		s.replies <- reply{ip: p.SenderIP, mac: p.SenderHardwareAddr.String(), at: time.Now()}
	}
}

func (s *Sampler) readNDP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, _, err := s.ndp.ReadFrom(buf)
		if s.stopped(err) {
			return
		}
		if err != nil {
			continue
		}
		m, err := ndp.ParseMessage(buf[:n])
		na, ok := m.(*ndp.NeighborAdvertisement)
		if err != nil || !ok || !na.Solicited {
			continue
		}
		for _, o := range na.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
				s.replies <- reply{ip: na.TargetAddress, mac: lla.Addr.String(), at: time.Now()}
			}
		}
	}
}

// solicit sends a neighbour solicitation for ip to its solicited-node
// group on the client's eth0.
func (s *Sampler) solicit(ip netip.Addr) error {
	group, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return err
	}
	b, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: ip, Options: []ndp.Option{
		&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: s.arp.HardwareAddr()},
	}})
	if err != nil {
		return err
	}
	_, err = s.ndp.WriteTo(b, &ipv6.ControlMessage{HopLimit: ndp.HopLimit, IfIndex: s.ifindex}, &net.IPAddr{IP: group.AsSlice()})
	return err
}

// Round asks once for every IP and waits wait for the answers; it returns
// the distinct MACs (sorted, lower case) that answered each IP, no entry for
// an IP nobody answered. Answers that arrive after wait are dropped when
// the next round starts, or counted for it if they come later still, so
// wait must be well above the answer time (milliseconds).
func (s *Sampler) Round(ctx context.Context, ips []netip.Addr, wait time.Duration) (map[netip.Addr][]string, error) {
	// Answers to earlier rounds that came late are dropped.
	for drained := false; !drained; {
		select {
		case <-s.replies:
		default:
			drained = true
		}
	}
	var errs []error
	for _, ip := range ips {
		if ip.Is4() {
			errs = append(errs, s.arp.Request(ip))
			continue
		}
		errs = append(errs, s.solicit(ip))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := map[netip.Addr][]string{}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case r := <-s.replies:
			if !slices.Contains(out[r.ip], r.mac) {
				out[r.ip] = append(out[r.ip], r.mac)
				slices.Sort(out[r.ip])
			}
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}
