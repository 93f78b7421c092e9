package bgp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"golang.org/x/sys/unix"
)

// A diagnostic OPEN, for one gap in gobgp 4.8: when the router refuses our
// OPEN with a NOTIFICATION sent after its own OPEN (FRR does so for a bad
// peer AS, a bad BGP identifier, an unacceptable hold time), gobgp receives
// it in OpenConfirm and reports only "invalid-msg": neither its API nor its
// log carries the NOTIFICATION's code. To say why in words, the announcer
// then opens one connection of its own the way gobgp does (same source
// address, port, TCP MD5 password and TTL), sends an OPEN like gobgp's, reads
// the router's answer and closes. It never does more: routes only ever
// travel on gobgp's sessions. It runs only while a session keeps failing
// that way, at most once per probeEvery for the same settings.

const (
	probeEvery   = time.Minute
	probeTimeout = 10 * time.Second
)

// errAccepted: the router accepted the diagnostic OPEN (so it no longer
// refuses ours).
var errAccepted = errors.New("the router accepted the OPEN")

// probeOpen returns the error code and subcode of the NOTIFICATION the
// router answers an OPEN for c with.
func probeOpen(ctx context.Context, c peerConf, routerID netip.Addr) (code, subcode int, err error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error { return probeSockopts(rc, &c) }}
	if c.source.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: c.source.AsSlice()}
	}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(c.addr.String(), strconv.Itoa(int(c.port))))
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	open, err := probeOpenMessage(&c, routerID)
	if err != nil {
		return 0, 0, err
	}
	if _, err := conn.Write(open); err != nil {
		return 0, 0, err
	}
	for range 3 { // the router's OPEN, then its NOTIFICATION or KEEPALIVE
		m, err := readMessage(conn)
		if err != nil {
			return 0, 0, err
		}
		switch body := m.Body.(type) {
		case *bgp.BGPNotification:
			return int(body.ErrorCode), int(body.ErrorSubcode), nil
		case *bgp.BGPKeepAlive:
			// Accepted: leave politely (Cease, administrative shutdown).
			if b, err := bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN, nil).Serialize(); err == nil {
				_, _ = conn.Write(b)
			}
			return 0, 0, errAccepted
		}
	}
	return 0, 0, errors.New("no NOTIFICATION from the router")
}

// probeSockopts sets what gobgp sets on its connections: the TCP MD5 key
// and, for single-hop eBGP, TTL 1 (255 for multihop).
func probeSockopts(rc syscall.RawConn, c *peerConf) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if c.password != "" {
			sig := unix.TCPMD5Sig{Keylen: uint16(len(c.password))}
			copy(sig.Key[:], c.password)
			if c.addr.Is4() {
				sig.Addr.Family = unix.AF_INET
				b := c.addr.As4()
				copy(sig.Addr.Data[2:], b[:])
			} else {
				sig.Addr.Family = unix.AF_INET6
				b := c.addr.As16()
				copy(sig.Addr.Data[6:], b[:])
			}
			if serr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig); serr != nil {
				serr = fmt.Errorf("setting the TCP MD5 key: %w", serr)
				return
			}
		}
		ttl := 0
		switch {
		case c.ibgp():
		case c.multihop:
			ttl = 255
		default:
			ttl = 1
		}
		if ttl > 0 {
			if c.addr.Is4() {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// probeOpenMessage is an OPEN with the parameters gobgp's has for c.
func probeOpenMessage(c *peerConf, routerID netip.Addr) ([]byte, error) {
	caps := []bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
		bgp.NewCapMultiProtocol(bgp.RF_IPv6_UC),
		bgp.NewCapRouteRefresh(),
		bgp.NewCapFourOctetASNumber(c.myASN),
	}
	if c.gr {
		caps = append(caps, bgp.NewCapGracefulRestart(false, false, uint16(GracefulRestartTime.Seconds()),
			[]*bgp.CapGracefulRestartTuple{
				bgp.NewCapGracefulRestartTuple(bgp.RF_IPv4_UC, false),
				bgp.NewCapGracefulRestartTuple(bgp.RF_IPv6_UC, false),
			}))
	}
	as := uint16(bgp.AS_TRANS)
	if c.myASN <= 0xffff {
		as = uint16(c.myASN)
	}
	m, err := bgp.NewBGPOpenMessage(as, uint16(c.hold), routerID,
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		return nil, err
	}
	return m.Serialize()
}

func readMessage(r io.Reader) (*bgp.BGPMessage, error) {
	buf := make([]byte, bgp.BGP_HEADER_LENGTH)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(buf[16:18]))
	if n < bgp.BGP_HEADER_LENGTH || n > bgp.BGP_MAX_MESSAGE_LENGTH {
		return nil, fmt.Errorf("bad BGP message length %d", n)
	}
	buf = append(buf, make([]byte, n-bgp.BGP_HEADER_LENGTH)...)
	if _, err := io.ReadFull(r, buf[bgp.BGP_HEADER_LENGTH:]); err != nil {
		return nil, err
	}
	return bgp.ParseBGPMessage(buf)
}
