package bgp

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Defaults applied to zero fields of Peer and BFD.
const (
	DefaultPort           = 179
	DefaultHoldTime       = 90 * time.Second
	DefaultConnectTime    = 5 * time.Second
	DefaultBFDInterval    = 300 * time.Millisecond
	DefaultBFDMultiplier  = 3
	GracefulRestartTime   = 120 * time.Second // restart time advertised with Peer.GracefulRestart
	maxTimerSeconds       = math.MaxUint16
	maxBFDIntervalSeconds = 60 // BFD intervals travel in microseconds (uint32); FRR allows up to 60 s
)

// Config configures an Announcer. The zero value is usable.
type Config struct {
	// RouterID is the BGP identifier for every session (gobgp has one per
	// speaker). When invalid, the first Peer.RouterID set (peers sorted by
	// name) is used, else the first global unicast IPv4 address of this
	// host's interfaces.
	RouterID netip.Addr
	// Logger receives the announcer's own records and gobgp's: gobgp's
	// informational chatter at debug level, its warnings and errors at warn.
	// nil discards.
	Logger *slog.Logger
}

// Peer is one BGP session to open and keep open. Name is the key: a peer
// whose Name stays the same across SetDesired calls is the same session.
type Peer struct {
	Name          string     // BGPPeer object name
	Address       netip.Addr // the router's address; at most one Peer per address
	Port          uint16     // 0 means 179
	MyASN         uint32     // our AS on this session (2- or 4-byte)
	PeerASN       uint32     // the router's AS; equal to MyASN for iBGP
	SourceAddress netip.Addr // optional local address to dial from
	RouterID      netip.Addr // optional; must agree with the announcer's router ID (see Config.RouterID)

	// HoldTime (0 means 90 s) and KeepaliveTime (0 means a third of the hold
	// time) are offered in OPEN, in whole seconds; a change applies from the
	// next session, as in FRR. ConnectTime (0 means 5 s) is the time between
	// connection attempts (gobgp waits at least 2 s) and their timeout, and
	// the wait before reconnecting after a reset.
	HoldTime, KeepaliveTime, ConnectTime time.Duration

	EBGPMultiHop    bool   // eBGP over more than one hop (TTL 255)
	Password        string // TCP MD5 signature key; never logged, printed or reported
	GracefulRestart bool   // advertise graceful restart (restart time GracefulRestartTime) for both families
	BFD             *BFD   // nil: no BFD
}

// BFD is a peer's BFD profile, run by gobgp's BFD (single hop, asynchronous
// mode, UDP port 3784).
type BFD struct {
	ReceiveInterval  time.Duration // required minimum receive interval; 0 means 300 ms
	TransmitInterval time.Duration // desired minimum transmit interval; 0 means 300 ms
	DetectMultiplier uint32        // 0 means 3
	// Passive asks to wait for the router's first packet. gobgp cannot: it
	// always sends. SetDesired reports it and runs BFD actively.
	Passive bool
}

// Path is one prefix to announce, with its attributes, to the named peers.
type Path struct {
	Prefix netip.Prefix
	// NextHop is this node's own address of the prefix's family. When
	// invalid, the session's local address is used, which is only possible
	// when the prefix and the peer address are of the same family.
	NextHop          netip.Addr
	LocalPref        *uint32 // sent to iBGP peers only (BGP never carries it over eBGP)
	Communities      []uint32
	LargeCommunities []LargeCommunity
	Peers            []string // names of the peers that receive this path
}

// LargeCommunity is an RFC 8092 large community.
type LargeCommunity struct{ GlobalAdmin, LocalData1, LocalData2 uint32 }

func (c LargeCommunity) String() string {
	return fmt.Sprintf("%d:%d:%d", c.GlobalAdmin, c.LocalData1, c.LocalData2)
}

func compareLarge(a, b LargeCommunity) int {
	return cmp.Or(cmp.Compare(a.GlobalAdmin, b.GlobalAdmin), cmp.Compare(a.LocalData1, b.LocalData1),
		cmp.Compare(a.LocalData2, b.LocalData2))
}

// SessionStatus is one peer's session as the announcer sees it.
type SessionStatus struct {
	Peer    string
	Address netip.Addr
	// State is Idle, Connect, Active, OpenSent, OpenConfirm or Established.
	State string
	// Since is when the session was established, when State is
	// Established; otherwise when it last went down, or, before its first
	// session, when the peer was added.
	Since time.Time
	// PrefixesAdvertised counts the paths handed to this peer, of the
	// families it negotiated, while Established; 0 otherwise.
	PrefixesAdvertised int
	// UpdatesSent counts UPDATE messages sent to the peer by this announcer
	// (as seen by Sessions: it never goes back).
	UpdatesSent uint64
	// BFDState is "" without BFD, else Down, Init, Up or AdminDown.
	BFDState string
	// LastError says, in words, why the session is not (or was not)
	// Established; cleared when it reaches Established.
	LastError string
	// ConfigError says what of the peer's settings could not be applied as
	// asked (empty when all were).
	ConfigError string
}

// Format keeps the password out of every fmt verb.
func (p Peer) Format(f fmt.State, verb rune) {
	q := p
	if q.Password != "" {
		q.Password = "<redacted>"
	}
	type plain Peer // no methods: no recursion
	fmt.Fprintf(f, fmt.FormatString(f, verb), plain(q))
}

// LogValue keeps the password out of slog output.
func (p Peer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", p.Name), slog.String("address", p.Address.String()),
		slog.Any("myASN", p.MyASN), slog.Any("peerASN", p.PeerASN), slog.Bool("password", p.Password != ""))
}

// peerConf is a Peer with defaults applied and no pointers, comparable with ==.
type peerConf struct {
	name                  string
	addr, source          netip.Addr
	port                  uint16
	myASN, peerASN        uint32
	routerID              netip.Addr
	hold, keepalive, conn uint64 // seconds
	multihop              bool
	password              string
	gr                    bool
	bfd                   bool
	bfdRx, bfdTx          uint32 // microseconds
	bfdMult               uint32
	bfdPassive            bool
}

func (c *peerConf) ibgp() bool { return c.myASN == c.peerASN }

// normalizePeer checks p and applies defaults.
func normalizePeer(p Peer) (peerConf, error) {
	c := peerConf{name: p.Name, addr: p.Address.Unmap(), source: p.SourceAddress.Unmap(), port: p.Port,
		myASN: p.MyASN, peerASN: p.PeerASN, routerID: p.RouterID.Unmap(), multihop: p.EBGPMultiHop,
		password: p.Password, gr: p.GracefulRestart}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.Name == "" {
		bad("no name")
	}
	if !c.addr.IsValid() || c.addr.IsUnspecified() || c.addr.IsMulticast() || c.addr.Zone() != "" {
		bad("address %q is not a unicast IP address", p.Address)
	}
	if c.source.IsValid() && (c.source.Is4() != c.addr.Is4() || c.source.IsUnspecified() || c.source.IsMulticast()) {
		bad("source address %s cannot reach %s (another family, or not unicast)", c.source, c.addr)
	}
	if c.port == 0 {
		c.port = DefaultPort
	}
	if c.myASN == 0 || c.peerASN == 0 {
		bad("ASN 0 (myASN %d, peerASN %d)", c.myASN, c.peerASN)
	}
	if c.routerID.IsValid() && !c.routerID.Is4() {
		bad("router ID %s is not an IPv4 address", c.routerID)
	}
	secs := func(name string, d, def time.Duration) uint64 {
		if d == 0 {
			d = def
		}
		if d < 0 || d > maxTimerSeconds*time.Second {
			bad("%s %s out of range", name, d)
			return 0
		}
		return uint64((d + time.Second - 1) / time.Second) // whole seconds, rounded up
	}
	c.hold = secs("hold time", p.HoldTime, DefaultHoldTime)
	if c.hold > 0 && c.hold < 3 {
		bad("hold time %s is under 3 s", p.HoldTime)
	}
	c.keepalive = secs("keepalive time", p.KeepaliveTime, time.Duration(c.hold)*time.Second/3)
	if c.keepalive == 0 && c.hold > 0 {
		c.keepalive = 1
	}
	if c.hold > 0 && c.keepalive >= c.hold {
		bad("keepalive time %s is not below the hold time %ds", p.KeepaliveTime, c.hold)
	}
	c.conn = secs("connect time", p.ConnectTime, DefaultConnectTime)
	if c.conn == 0 {
		c.conn = 1
	}
	if b := p.BFD; b != nil {
		c.bfd, c.bfdPassive = true, b.Passive
		us := func(name string, d time.Duration) uint32 {
			if d == 0 {
				d = DefaultBFDInterval
			}
			if d < time.Millisecond || d > maxBFDIntervalSeconds*time.Second {
				bad("BFD %s %s out of range (1 ms to %d s)", name, d, maxBFDIntervalSeconds)
				return 0
			}
			return uint32(d / time.Microsecond)
		}
		c.bfdRx, c.bfdTx = us("receive interval", b.ReceiveInterval), us("transmit interval", b.TransmitInterval)
		c.bfdMult = cmp.Or(b.DetectMultiplier, DefaultBFDMultiplier)
		if c.bfdMult < 2 || c.bfdMult > 255 {
			bad("BFD detect multiplier %d out of range (2 to 255)", b.DetectMultiplier)
		}
	}
	return c, errors.Join(errs...)
}

// route is a Path's attributes, normalized: sorted, deduplicated
// communities.
type route struct {
	nextHop      netip.Addr
	localPref    uint32
	hasLocalPref bool
	communities  []uint32
	large        []LargeCommunity
}

func normalizeRoute(p Path) (route, error) {
	r := route{nextHop: p.NextHop.Unmap()}
	if p.LocalPref != nil {
		r.localPref, r.hasLocalPref = *p.LocalPref, true
	}
	r.communities = sortedSet(p.Communities, cmp.Compare[uint32])
	r.large = sortedSet(p.LargeCommunities, compareLarge)
	pfx := p.Prefix
	switch {
	case !pfx.IsValid() || pfx.Addr().Zone() != "":
		return r, fmt.Errorf("prefix %q is not valid", p.Prefix)
	case pfx != pfx.Masked():
		return r, fmt.Errorf("prefix %s has host bits set", pfx)
	case pfx.Addr().Is4In6():
		return r, fmt.Errorf("prefix %s is an IPv4-mapped IPv6 prefix", pfx)
	case r.nextHop.IsValid() && (r.nextHop.Is4() != pfx.Addr().Is4() || r.nextHop.IsUnspecified() ||
		r.nextHop.IsMulticast() || r.nextHop.Zone() != ""):
		return r, fmt.Errorf("next hop %s for %s is not a unicast address of the prefix's family", p.NextHop, pfx)
	}
	return r, nil
}

func (r *route) equal(o *route) bool {
	return r.nextHop == o.nextHop && r.hasLocalPref == o.hasLocalPref && r.localPref == o.localPref &&
		slices.Equal(r.communities, o.communities) && slices.Equal(r.large, o.large)
}

// sortedSet returns s sorted without repeats: s itself when it already is
// (as planned paths are; the route then shares the plan's slice, and
// neither is changed), otherwise a sorted copy.
func sortedSet[E comparable](s []E, compare func(a, b E) int) []E {
	for i := 1; i < len(s); i++ {
		if compare(s[i-1], s[i]) >= 0 {
			return slices.Compact(slices.SortedFunc(slices.Values(s), compare))
		}
	}
	return s
}
