// Package membership lets the speakers find each other and notice a dead
// speaker fast, using hashicorp/memberlist (SWIM gossip over UDP and TCP).
//
// A Membership is one speaker's view: the sorted set of live members, a
// callback for every join, update, leave and death, and a conflict report
// when two speakers claim the same node name. Traffic is encrypted with an
// AES key (see ParseKey) unless unencrypted operation is explicitly allowed.
// It needs no Kubernetes API: it keeps working while the API server is down.
package membership

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the speakers' default memberlist port (TCP and UDP). It
// differs from MetalLB's 7946 so both can run on the same hosts during a
// migration.
const DefaultPort = 7947

// DefaultClusterLabel is stamped on every packet; members with another label
// (another memberlist cluster sharing the network) are ignored.
const DefaultClusterLabel = "portico"

// MaxMetaSize is the largest Meta a member may publish.
const MaxMetaSize = memberlist.MetaMaxSize - metaHeaderLen

// Config configures a Membership.
type Config struct {
	// NodeName is this speaker's name, unique in the cluster: the
	// Kubernetes node name.
	NodeName string
	// BindAddr and BindPort are where to listen (TCP and UDP). BindAddr
	// defaults to 0.0.0.0; BindPort 0 lets the system choose a free port
	// (see LocalAddr), so the speaker should pass DefaultPort or its flag.
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what other members use to reach
	// this one; defaults: chosen from the bind address, and BindPort.
	AdvertiseAddr string
	AdvertisePort int
	// Keys are the 16, 24 or 32 byte AES keys shared by all speakers: the
	// first encrypts, every one decrypts (SetKeys changes them). They may
	// be empty only when AllowUnencrypted is set.
	Keys             [][]byte
	AllowUnencrypted bool
	// ClusterLabel defaults to DefaultClusterLabel.
	ClusterLabel string
	// Timers tune failure detection; zero fields take DefaultTimers.
	Timers Timers
	// Meta is published to the other members with this member (at most
	// MaxMetaSize bytes), for example the node's interface carrier states.
	// Change it later with SetMeta.
	Meta []byte
	// Logger receives memberlist's log lines at their levels; nil means
	// slog.Default(). Lines carry only its attributes: give it the node and
	// component (the speaker does), so they are not repeated.
	Logger *slog.Logger
	// OnEvent, if set, is called for every membership change, one at a
	// time and in order, from a goroutine of the Membership (never while
	// memberlist holds its locks, so it may call Members). It should not
	// block for long: later events wait for it.
	OnEvent func(Event)
	// OnConflict, if set, is called like OnEvent when two speakers claim
	// the same node name (reported at most once a minute per address).
	OnConflict func(*ConflictError)
}

// Member is a live member (alive, or suspect and not yet declared dead).
type Member struct {
	Name string
	Addr netip.AddrPort
	Meta []byte
}

// EventType is the kind of a membership change.
type EventType int

const (
	// EventJoin: a member joined (including this one, at start).
	EventJoin EventType = iota + 1
	// EventUpdate: a member's Meta or address changed.
	EventUpdate
	// EventLeave: a member left gracefully (Leave).
	EventLeave
	// EventDead: a member stopped answering and was declared dead. A member
	// whose graceful-leave notice did not reach us is also reported dead.
	EventDead
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventDead:
		return "dead"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one membership change.
type Event struct {
	Type   EventType
	Member Member
	// Time is when this member learned of the change.
	Time time.Time
}

// ConflictError reports two speakers using the same node name at different
// addresses. memberlist keeps the member it knew first and ignores the
// other; election then treats the name as one node, so the duplicate must
// be fixed.
type ConflictError struct {
	Name string
	// Known is the address memberlist already had for Name; Other is the
	// newcomer's. When Local, Known is this speaker's own address and Other
	// the other claimant's.
	Known, Other netip.AddrPort
	// Local reports that this speaker is one of the two.
	Local bool
	// Refused (with Local) reports that this speaker is the one the other
	// members refuse: they know Name at Other. Only a refused speaker must
	// stop announcing; the other one keeps the name.
	Refused bool
}

func (e *ConflictError) Error() string {
	var who string
	switch {
	case e.Refused:
		who = fmt.Sprintf("the other speakers know node name %q at %s, and this speaker (at %s) uses it too",
			e.Name, e.Other, e.Known)
	case e.Local:
		who = fmt.Sprintf("another speaker at %s uses this speaker's node name %q (this speaker is at %s)",
			e.Other, e.Name, e.Known)
	default:
		who = fmt.Sprintf("two speakers claim node name %q: %s (known) and %s (refused)", e.Name, e.Known, e.Other)
	}
	return "memberlist: " + who + "; every speaker needs a unique node name: " +
		"check --node-name / NODE_NAME and look for a second speaker process on that node"
}

// Membership is this speaker's memberlist. Its methods are safe for
// concurrent use.
type Membership struct {
	list     *memberlist.Memberlist
	name     string
	log      *slog.Logger
	timers   Timers
	onEvent  func(Event)
	onClash  func(*ConflictError)
	changes  chan struct{}
	dispatch *dispatcher

	// ring holds the keys (nil: unencrypted); keysMu serialises SetKeys.
	ring   *memberlist.Keyring
	keysMu sync.Mutex

	metaMu  sync.Mutex
	meta    []byte // user meta
	leaving bool

	mu       sync.Mutex
	self     netip.AddrPort // this member's address, set once by New
	members  map[string]Member
	leavers  map[string]bool      // members that announced a graceful leave
	reported map[string]time.Time // conflict reports, for rate limiting
	// conflicts counts the conflicts over this member's own name; lastLocal
	// is the latest and lastLocalAt when it was seen.
	conflicts   int
	lastLocal   *ConflictError
	lastLocalAt time.Time
	// views holds, per other member, the address it last told us it knows
	// for this member's name (invalid: none). See nameConflictLocked.
	views    map[string]netip.AddrPort
	shutdown bool
}

// New validates cfg and starts listening. The Membership is alone until
// Join.
func New(cfg Config) (*Membership, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("membership: NodeName is empty")
	}
	if err := checkKeys(cfg.Keys, cfg.AllowUnencrypted); err != nil {
		return nil, err
	}
	if err := cfg.Timers.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Meta) > MaxMetaSize {
		return nil, fmt.Errorf("membership: Meta is %d bytes, at most %d allowed", len(cfg.Meta), MaxMetaSize)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	m := &Membership{
		name:     cfg.NodeName,
		log:      logger,
		timers:   cfg.Timers.withDefaults(),
		onEvent:  cfg.OnEvent,
		onClash:  cfg.OnConflict,
		changes:  make(chan struct{}, 1),
		dispatch: newDispatcher(),
		meta:     slices.Clone(cfg.Meta),
		members:  make(map[string]Member),
		leavers:  make(map[string]bool),
		reported: make(map[string]time.Time),
		views:    make(map[string]netip.AddrPort),
	}
	mlc, err := m.memberlistConfig(cfg)
	if err != nil {
		m.dispatch.stop()
		return nil, err
	}
	list, err := memberlist.Create(mlc)
	if err != nil {
		m.dispatch.stop()
		return nil, fmt.Errorf("membership: start memberlist on %s: %w",
			net.JoinHostPort(mlc.BindAddr, fmt.Sprint(mlc.BindPort)), err)
	}
	m.list = list
	m.mu.Lock()
	m.self = addrPort(list.LocalNode())
	m.mu.Unlock()
	return m, nil
}

func (m *Membership) memberlistConfig(cfg Config) (*memberlist.Config, error) {
	t := m.timers
	c := memberlist.DefaultLANConfig()
	c.Name = cfg.NodeName
	c.BindAddr = cmpOr(cfg.BindAddr, "0.0.0.0")
	c.BindPort = cfg.BindPort
	c.AdvertiseAddr = cfg.AdvertiseAddr
	c.AdvertisePort = cmpOr(cfg.AdvertisePort, cfg.BindPort)
	c.Label = cmpOr(cfg.ClusterLabel, DefaultClusterLabel)
	if len(cfg.Keys) > 0 {
		ring, err := memberlist.NewKeyring(cloneKeys(cfg.Keys), slices.Clone(cfg.Keys[0]))
		if err != nil {
			return nil, fmt.Errorf("membership: keys: %w", err)
		}
		c.Keyring, m.ring = ring, ring
	}

	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.IndirectChecks = t.IndirectChecks
	c.GossipInterval = t.GossipInterval
	c.GossipNodes = t.GossipNodes
	c.RetransmitMult = t.RetransmitMult
	c.PushPullInterval = t.PushPullInterval
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	c.DeadNodeReclaimTime = t.DeadNodeReclaimTime
	c.TCPTimeout = t.TCPTimeout

	c.Logger = newStdLogger(m.log)
	d := &delegate{m}
	c.Delegate = d
	c.Events = d
	c.Conflict = d
	return c, nil
}

func cloneKeys(keys [][]byte) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = slices.Clone(k)
	}
	return out
}

// SetKeys replaces the keys while running: the first one encrypts from now
// on, every one decrypts. Members whose keys share one with ours keep
// hearing us, so a rotation done in steps (add the new key second, make it
// first, remove the old one; each step on every member before the next)
// never splits the cluster. A Membership started unencrypted cannot start
// encrypting: it must be restarted.
func (m *Membership) SetKeys(keys [][]byte) error {
	if err := checkKeys(keys, false); err != nil {
		return err
	}
	ring := m.ring
	if ring == nil {
		return errors.New("membership: this speaker started without encryption and cannot start encrypting " +
			"while running; restart it to use the key")
	}
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	for _, k := range keys {
		if err := ring.AddKey(slices.Clone(k)); err != nil {
			return fmt.Errorf("membership: adding a key: %w", err)
		}
	}
	kept := func(k []byte) bool {
		return slices.ContainsFunc(keys, func(w []byte) bool { return bytes.Equal(w, k) })
	}
	// memberlist's Keyring.RemoveKey shifts the keys after the removed one
	// in place, under the feet of goroutines decrypting with the slice
	// GetKeys returned; removing the last key shifts nothing. So a key to
	// remove is first brought last: UseKey(last) moves the last key to the
	// front and the others one down.
	for {
		cur := ring.GetKeys()
		last := -1 // the last key to remove
		for i, k := range cur {
			if !kept(k) {
				last = i
			}
		}
		if last < 0 {
			break
		}
		if last != len(cur)-1 { // (a kept key is in the ring, so len(cur) > 1)
			if err := ring.UseKey(cur[len(cur)-1]); err != nil {
				return fmt.Errorf("membership: reordering the keys: %w", err)
			}
			continue
		}
		if err := ring.RemoveKey(cur[last]); err != nil {
			return fmt.Errorf("membership: removing a key: %w", err)
		}
	}
	if err := ring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("membership: switching to the first key: %w", err)
	}
	return nil
}

// Keys returns the keys in use, the encrypting one first.
func (m *Membership) Keys() [][]byte {
	if m.ring == nil {
		return nil
	}
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	return cloneKeys(m.ring.GetKeys()) // primary first
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Join contacts the given members ("host:port"; a host alone means
// DefaultPort) and syncs state with them. It succeeds if any answered. An
// empty list is not an error: this speaker starts a cluster of its own and
// others may join it. If another speaker uses this speaker's node name and
// the other members know that one (see NameConflict), Join returns a
// *ConflictError with Refused set.
func (m *Membership) Join(addrs []string) error {
	var targets []string
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(strings.Trim(a, "[]"), fmt.Sprint(DefaultPort))
		}
		targets = append(targets, a)
	}
	if len(targets) == 0 {
		return nil
	}
	m.mu.Lock()
	before := m.conflicts
	m.mu.Unlock()
	n, err := m.joinAll(targets)
	if err != nil {
		hint := ""
		if strings.Contains(err.Error(), "crypt") {
			hint = " (every speaker must use the same memberlist secret key)"
		}
		return fmt.Errorf("membership: joined %d of %d members (%s)%s: %w",
			n, len(targets), strings.Join(targets, ", "), hint, flatten(err))
	}
	// A conflict over this name seen during the join may be the other
	// claimant's (it contacted us, or we contacted it): what settles who
	// keeps the name is what the other members know. Ask those whose view
	// we do not have yet; each state exchange carries it.
	m.mu.Lock()
	var ask []string
	if m.conflicts != before {
		for name, mem := range m.members {
			if _, known := m.views[name]; !known && name != m.name {
				ask = append(ask, mem.Addr.String())
			}
		}
	}
	m.mu.Unlock()
	if len(ask) > 0 {
		if _, err := m.joinAll(ask); err != nil {
			m.log.Debug("asking the other members which speaker they know by this name", "error", flatten(err))
		}
	}
	if ce := m.NameConflict(); ce != nil {
		return ce
	}
	return nil
}

// NameConflict reports whether this speaker must give up its node name
// because another speaker uses it: nil unless this one is the newcomer.
//
// memberlist keeps, for each name, the member it knew first and refuses the
// other, so both claimants see the same conflict; which one lost is told by
// the other members. Each member sends, with every state exchange, the
// address it knows for every name, and this speaker is refused when one of
// them knows its name at another address. (Should the others disagree, as
// after a partition, both claimants stand down: never two announcers for
// one name.) With no other member to tell, the claimant at the lower address
// keeps the name, which both work out alike.
func (m *Membership) NameConflict() *ConflictError {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nameConflictLocked(time.Now())
}

func (m *Membership) nameConflictLocked(now time.Time) *ConflictError {
	refused := func(other netip.AddrPort) *ConflictError {
		return &ConflictError{Name: m.name, Known: m.self, Other: other, Local: true, Refused: true}
	}
	var against netip.AddrPort
	vouched := false
	for voter, held := range m.views {
		if _, live := m.members[voter]; !live || !held.IsValid() {
			continue
		}
		if held == m.self {
			vouched = true
		} else if !against.IsValid() || held.Compare(against) < 0 {
			against = held
		}
	}
	switch {
	case against.IsValid():
		return refused(against)
	case vouched:
		return nil
	}
	if c := m.lastLocal; c != nil && now.Sub(m.lastLocalAt) < conflictReportInterval && c.Other.Compare(m.self) < 0 {
		return refused(c.Other)
	}
	return nil
}

// joinAll joins every target at once: memberlist tries addresses one after
// another, each with its TCP timeout, so a few dead addresses (the
// SpeakerStatus of a node that is gone) would delay every live one. It
// returns how many answered and the errors of those that did not.
func (m *Membership) joinAll(targets []string) (int, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(targets))
	joined := make([]int, len(targets))
	for i, t := range targets {
		wg.Go(func() { joined[i], errs[i] = m.list.Join([]string{t}) })
	}
	wg.Wait()
	n := 0
	for _, j := range joined {
		n += j
	}
	if n > 0 {
		return n, nil // one live member is enough: gossip brings the rest
	}
	return 0, errors.Join(errs...)
}

// Members returns the live members, this one included, sorted by name.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		mem.Meta = slices.Clone(mem.Meta)
		out = append(out, mem)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// MemberNames returns the names of the live members, sorted.
func (m *Membership) MemberNames() []string {
	var names []string
	for _, mem := range m.Members() {
		names = append(names, mem.Name)
	}
	return names
}

// Changes returns a channel that receives a value after membership
// changes. Several changes may be coalesced into one value: read Members
// after each.
func (m *Membership) Changes() <-chan struct{} { return m.changes }

// LocalAddr is the address other members reach this one at.
func (m *Membership) LocalAddr() netip.AddrPort {
	return addrPort(m.list.LocalNode())
}

// Timers returns the effective timers, defaults applied.
func (m *Membership) Timers() Timers { return m.timers }

// SetMeta publishes new metadata for this member and waits up to timeout
// for the update to be gossiped.
func (m *Membership) SetMeta(meta []byte, timeout time.Duration) error {
	if len(meta) > MaxMetaSize {
		return fmt.Errorf("membership: Meta is %d bytes, at most %d allowed", len(meta), MaxMetaSize)
	}
	m.metaMu.Lock()
	m.meta = slices.Clone(meta)
	m.metaMu.Unlock()
	if err := m.checkRunning(); err != nil {
		return err
	}
	return m.list.UpdateNode(timeout)
}

// Leave tells the other members that this one is leaving on purpose, so
// they report EventLeave rather than EventDead, and waits up to timeout
// for each of the two broadcasts (the leaving mark, then the leave). Call
// Shutdown afterwards.
func (m *Membership) Leave(timeout time.Duration) error {
	if err := m.checkRunning(); err != nil {
		return err
	}
	m.metaMu.Lock()
	m.leaving = true
	m.metaMu.Unlock()
	if err := m.list.UpdateNode(timeout); err != nil {
		m.log.Debug("leave: announcing the leave mark", "error", err)
	}
	if err := m.list.Leave(timeout); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// Shutdown stops this member without telling the others, who will declare
// it dead: what a crash looks like to them. No callback runs after Shutdown
// returns. It is safe to call more than once, but not from a callback.
func (m *Membership) Shutdown() error {
	m.mu.Lock()
	already := m.shutdown
	m.shutdown = true
	m.mu.Unlock()
	if already {
		return nil
	}
	err := m.list.Shutdown()
	m.dispatch.stop()
	return err
}

func (m *Membership) checkRunning() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shutdown {
		return errors.New("membership: already shut down")
	}
	return nil
}

func (m *Membership) notify(ev Event) {
	select {
	case m.changes <- struct{}{}:
	default:
	}
	if m.onEvent != nil {
		m.dispatch.do(func() { m.onEvent(ev) })
	}
}

// flatten turns memberlist's multi-line multierror into one line, keeping
// the errors wrapped.
func flatten(err error) error {
	var multi interface{ WrappedErrors() []error }
	if !errors.As(err, &multi) {
		return err
	}
	errs := multi.WrappedErrors()
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return &joinError{msg: strings.Join(msgs, "; "), errs: errs}
}

type joinError struct {
	msg  string
	errs []error
}

func (e *joinError) Error() string   { return e.msg }
func (e *joinError) Unwrap() []error { return e.errs }

func addrPort(n *memberlist.Node) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(ip.Unmap(), n.Port)
}
