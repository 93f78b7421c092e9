package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
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
	arp     *arp.Client
	ndp     *ndp.Conn
	src4    netip.Addr
	replies chan reply
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
		if s.ndp, _, err = ndp.Listen(ifi, ndp.Global); err != nil {
			s.arp.Close()
			return fmt.Errorf("ICMPv6 socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sampler in %s: %w", l.ClientNS, err)
	}
	s.src4 = netip.MustParseAddr(ClientIPv4)
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := s.ndp.SetICMPFilter(&f); err != nil {
		s.Close()
		return nil, err
	}
	s.wg.Add(2)
	go s.readARP()
	go s.readNDP()
	return s, nil
}

// Close closes the sockets and waits for the readers.
func (s *Sampler) Close() {
	s.arp.Close()
	s.ndp.Close()
	s.wg.Wait()
}

func (s *Sampler) readARP() {
	defer s.wg.Done()
	for {
		p, _, err := s.arp.Read()
		if errors.Is(err, net.ErrClosed) {
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
	for {
		m, _, _, err := s.ndp.ReadFrom()
		if errors.Is(err, net.ErrClosed) {
			return
		}
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
		group, err := ndp.SolicitedNodeMulticast(ip)
		if err == nil {
			err = s.ndp.WriteTo(&ndp.NeighborSolicitation{TargetAddress: ip, Options: []ndp.Option{
				&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: s.arp.HardwareAddr()},
			}}, nil, group)
		}
		errs = append(errs, err)
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
