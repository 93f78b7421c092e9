// Package layer2 answers ARP (IPv4) and NDP neighbor solicitations (IPv6) for
// the Service IPs this node owns, on the interfaces it is told to, and
// announces them with gratuitous ARP and unsolicited neighbor advertisements
// when it takes them over.
//
// The caller (the speaker) decides ownership and passes the whole desired set
// to Announcer.SetOwned each time it changes, and again when links change
// (SetOwned reopens sockets of interfaces that were recreated, and retries
// pairs that failed). Eligible decides which interfaces may be used.
//
// Per interface and family, one socket is open while at least one IP is owned
// there: a packet socket for ARP, and a raw ICMPv6 socket bound to the
// interface that joins the solicited-node group of each owned IPv6 address.
// The ICMPv6 socket also receives unicast solicitations (neighbour
// unreachability probes) for owned IPs that are local to the node, as with
// kube-proxy's IPVS mode; for IPs that are not local, clients fall back to
// multicast solicitations. Advertisements are sent from the owned IP itself.
//
// Sockets are opened in the network namespace of the thread that calls
// SetOwned. The decisions (decideARP, decideNDP) are pure functions over the
// received bytes and are fuzzed.
package layer2

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultAnnounce is when, after taking over an IP, gratuitous ARP or
// unsolicited neighbor advertisements are sent.
var DefaultAnnounce = []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}

// Config configures an Announcer. The zero value is usable.
type Config struct {
	// Announce lists the delays after takeover at which an IP is announced.
	// nil means DefaultAnnounce; an empty, non-nil slice sends nothing.
	Announce []time.Duration
	// Metrics receives the counters; nil makes a fresh one (see
	// Announcer.Metrics).
	Metrics *Metrics
	// Logger; nil discards.
	Logger *slog.Logger
}

// Announcer answers ARP and NDP for a set of owned (IP, interface) pairs.
// Its methods are safe for concurrent use.
type Announcer struct {
	announce []time.Duration
	m        *Metrics
	log      *slog.Logger

	mu     sync.Mutex
	closed bool
	resp   map[respKey]*responder
	wg     sync.WaitGroup // announcement schedules
}

// respKey names a responder: one per interface and address family.
type respKey struct {
	ifname string
	v6     bool
}

// New returns an Announcer that owns nothing.
func New(cfg Config) *Announcer {
	a := &Announcer{
		announce: cfg.Announce,
		m:        cfg.Metrics,
		log:      cfg.Logger,
		resp:     map[respKey]*responder{},
	}
	if a.announce == nil {
		a.announce = DefaultAnnounce
	}
	if a.m == nil {
		a.m = new(Metrics)
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return a
}

// Metrics returns the announcer's counters.
func (a *Announcer) Metrics() *Metrics { return a.m }

// SetOwned makes owned the complete set of IPs this node answers for, each
// on the named interfaces. IPs newly owned on an interface are answered at
// once and announced on the Config.Announce schedule; IPs no longer owned on
// an interface are not answered any more by the time SetOwned returns, and
// their pending announcements are cancelled. Calling it again with the same
// set changes and sends nothing.
//
// Each (IP, interface) pair that cannot be set up (missing interface, no IPv6
// on it, ...) is reported in the returned error, naming both, and is left out;
// everything else is applied. A later call with the same set retries the
// pairs that failed.
func (a *Announcer) SetOwned(owned map[netip.Addr][]string) error {
	want := map[respKey]map[netip.Addr]bool{}
	var errs []error
	for ip, ifaces := range owned {
		ip = ip.Unmap().WithZone("")
		if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() {
			errs = append(errs, fmt.Errorf("layer2: cannot answer for %s: not a unicast address", ip))
			continue
		}
		for _, name := range ifaces {
			k := respKey{name, ip.Is6()}
			if want[k] == nil {
				want[k] = map[netip.Addr]bool{}
			}
			want[k][ip] = true
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("layer2: announcer is closed")
	}

	// Removals first, so nothing is answered after return that is not owned.
	for k, r := range a.resp {
		if r.failed() || r.stale() {
			// The socket broke, or the interface was deleted, recreated or
			// given a new MAC: start over, which reopens it below and
			// announces its IPs again.
			a.closeResponder(k, r)
			continue
		}
		r.mu.Lock()
		for ip, cancel := range r.ips {
			if !want[k][ip] {
				cancel()
				delete(r.ips, ip)
				if err := r.leave(ip); err != nil {
					errs = append(errs, fmt.Errorf("layer2: stopping answering for %s on interface %q: %w", ip, k.ifname, err))
				}
			}
		}
		empty := len(r.ips) == 0
		r.mu.Unlock()
		if empty {
			a.closeResponder(k, r)
		}
	}

	for _, k := range slices.SortedFunc(maps.Keys(want), func(x, y respKey) int {
		return cmp.Or(strings.Compare(x.ifname, y.ifname), cmp.Compare(x.String(), y.String()))
	}) {
		r := a.resp[k]
		type addition struct {
			ip  netip.Addr
			ctx context.Context
		}
		var added []addition
		ips := slices.SortedFunc(maps.Keys(want[k]), netip.Addr.Compare)
		for i, ip := range ips {
			if r != nil {
				r.mu.RLock()
				has := r.ips[ip] != nil
				r.mu.RUnlock()
				if has {
					continue
				}
			}
			if r == nil {
				var err error
				if r, err = a.openResponder(k); err != nil {
					errs = append(errs, fmt.Errorf("layer2: answering for %s on interface %q: %w", joinAddrs(ips[i:]), k.ifname, err))
					break
				}
			}
			var ctx context.Context
			r.mu.Lock()
			err := r.join(ip)
			if err == nil {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(context.Background())
				r.ips[ip] = cancel
			}
			empty := len(r.ips) == 0
			r.mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("layer2: answering for %s on interface %q: %w", ip, k.ifname, err))
				if empty {
					a.closeResponder(k, r)
					r = nil
				}
				continue
			}
			added = append(added, addition{ip, ctx})
		}
		for _, ad := range added {
			a.startAnnouncing(r, ad.ip, ad.ctx)
		}
	}
	return errors.Join(errs...)
}

// Owned returns the (IP, interfaces) pairs currently answered for, in the
// form SetOwned takes, interfaces sorted.
func (a *Announcer) Owned() map[netip.Addr][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[netip.Addr][]string{}
	for k, r := range a.resp {
		r.mu.RLock()
		for ip := range r.ips {
			out[ip] = append(out[ip], k.ifname)
		}
		r.mu.RUnlock()
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// Close stops answering for everything and closes all sockets. Nothing
// further is sent.
func (a *Announcer) Close() error {
	a.mu.Lock()
	a.closed = true
	for k, r := range a.resp {
		a.closeResponder(k, r)
	}
	a.mu.Unlock()
	a.wg.Wait()
	return nil
}

func (a *Announcer) openResponder(k respKey) (*responder, error) {
	ifi, err := net.InterfaceByName(k.ifname)
	if err != nil {
		return nil, err
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface has no Ethernet address")
	}
	r := &responder{key: k, ifi: ifi, m: a.m, log: a.log, ips: map[netip.Addr]context.CancelFunc{}, done: make(chan struct{})}
	if k.v6 {
		c, err := openNDP(ifi)
		if err != nil {
			return nil, err
		}
		r.conn, r.ndp = c, c
	} else {
		c, err := openARP(ifi)
		if err != nil {
			return nil, err
		}
		r.conn = c
	}
	go func() {
		defer close(r.done)
		err := r.conn.serve(r)
		r.mu.Lock()
		r.err = err
		stopping := r.stopping
		r.mu.Unlock()
		if !stopping {
			a.log.Error("responder stopped; it is reopened on the next SetOwned", "interface", k.ifname, "ipv6", k.v6, "error", err)
		}
	}()
	a.resp[k] = r
	return r, nil
}

// closeResponder cancels r's announcements, closes its socket, waits for its
// reader to stop and forgets it. a.mu must be held.
func (a *Announcer) closeResponder(k respKey, r *responder) {
	r.mu.Lock()
	r.stopping = true
	for ip, cancel := range r.ips {
		cancel()
		delete(r.ips, ip)
	}
	r.mu.Unlock()
	if err := r.conn.close(); err != nil {
		a.log.Warn("closing responder", "interface", k.ifname, "error", err)
	}
	<-r.done
	delete(a.resp, k)
}

// startAnnouncing sends the first announcement for ip now, if the schedule
// starts at 0, and the rest from a goroutine, until ctx is cancelled (ip
// removed from r).
func (a *Announcer) startAnnouncing(r *responder, ip netip.Addr, ctx context.Context) {
	if len(a.announce) == 0 {
		return
	}
	start := time.Now()
	sched := a.announce
	if sched[0] <= 0 {
		r.sendAnnouncement(ctx, ip)
		sched = sched[1:]
	}
	if len(sched) == 0 {
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTimer(0)
		defer t.Stop()
		<-t.C
		for _, off := range sched {
			t.Reset(time.Until(start.Add(off)))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			r.sendAnnouncement(ctx, ip)
		}
	}()
}

func (k respKey) String() string {
	if k.v6 {
		return k.ifname + "/ndp"
	}
	return k.ifname + "/arp"
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// conn is one family's socket on one interface.
type conn interface {
	serve(r *responder) error
	announce(ip netip.Addr) (int, error)
	close() error
}

// responder answers for the owned IPs of one address family on one interface.
type responder struct {
	key  respKey
	ifi  *net.Interface // as it was when the socket was opened
	conn conn
	ndp  *ndpConn // for multicast groups, when key.v6
	m    *Metrics
	log  *slog.Logger
	done chan struct{} // closed when the reader returns

	mu       sync.RWMutex
	ips      map[netip.Addr]context.CancelFunc // owned IP -> cancels its announcements
	stopping bool
	err      error // why the reader stopped
}

func (r *responder) ownedLocked(ip netip.Addr) bool {
	_, ok := r.ips[ip]
	return ok
}

// handle runs decide on one received packet and sends its reply, if any, with
// send. Both run with r.mu held for reading, so no IP is answered once its
// removal has returned.
func (r *responder) handle(decide func(owned func(netip.Addr) bool) (decision, error), send func(decision) error) {
	questions, replies, kind := &r.m.ARPRequests, &r.m.ARPReplies, "ARP"
	if r.key.v6 {
		questions, replies, kind = &r.m.NDPSolicitations, &r.m.NDPAdvertisements, "NDP"
	}
	r.mu.RLock()
	d, err := decide(r.ownedLocked)
	var werr error
	if d.reply != nil {
		werr = send(d)
	}
	r.mu.RUnlock()
	if d.question {
		questions.Add(1)
	}
	if d.reply != nil {
		if werr != nil {
			r.m.SendErrors.Add(1)
			r.log.Warn("sending "+kind+" reply failed", "interface", r.key.ifname, "ip", d.target, "error", werr)
		} else {
			replies.Add(1)
		}
	}
	if err != nil {
		r.m.Malformed.Add(1)
		r.log.Debug("ignoring "+kind+" packet", "interface", r.key.ifname, "error", err)
	}
}

// stale reports whether r's interface is gone or is no longer the one its
// socket was opened on (same name, new index or MAC).
func (r *responder) stale() bool {
	ifi, err := net.InterfaceByName(r.key.ifname)
	return err != nil || ifi.Index != r.ifi.Index || !bytes.Equal(ifi.HardwareAddr, r.ifi.HardwareAddr)
}

func (r *responder) failed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// join and leave maintain NDP multicast membership; r.mu must be held.
func (r *responder) join(ip netip.Addr) error {
	if r.ndp == nil {
		return nil
	}
	return r.ndp.join(ip)
}

func (r *responder) leave(ip netip.Addr) error {
	if r.ndp == nil {
		return nil
	}
	return r.ndp.leave(ip)
}

// sendAnnouncement announces ip once unless ctx was cancelled, which
// happens, under r.mu, when ip stops being owned.
func (r *responder) sendAnnouncement(ctx context.Context, ip netip.Addr) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if ctx.Err() != nil {
		return
	}
	n, err := r.conn.announce(ip)
	r.m.Gratuitous.Add(uint64(n))
	if err != nil {
		r.m.SendErrors.Add(1)
		r.log.Warn("announcing failed", "interface", r.key.ifname, "ip", ip, "error", err)
	}
}
