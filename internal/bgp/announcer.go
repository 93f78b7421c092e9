package bgp

import (
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
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Announcer keeps BGP sessions to a set of peers and announces a set of
// paths to them. Its methods are safe for concurrent use.
type Announcer struct {
	cfgRouterID netip.Addr
	log         *slog.Logger
	changes     chan struct{}
	secrets     atomic.Pointer[[]string] // passwords to keep out of gobgp's log records

	mu       sync.Mutex // serializes SetDesired and Close; guards the fields below
	srv      *server.BgpServer
	stop     context.CancelFunc // ends srv's event watcher and BFD poller
	polling  chan struct{}      // closed when srv's BFD poller returned
	routerID netip.Addr
	peers    map[string]*peerEntry // what gobgp runs, by peer name
	nextID   uint32
	closed   bool

	st         sync.Mutex // leaf lock, never held while calling gobgp: status below
	stSrv      *server.BgpServer
	stRouterID netip.Addr
	status     map[string]*peerStatus // every peer of the last SetDesired, by name
	byAddr     map[netip.Addr]*peerStatus

	probeCtx  context.Context // ends diagnostic OPENs (probe.go) at Close
	probeStop context.CancelFunc
	probes    sync.WaitGroup
}

// peerEntry is one peer as configured in gobgp.
type peerEntry struct {
	conf   peerConf
	vrfID  uint32
	vrf    bool                   // its VRF exists
	added  bool                   // the gobgp neighbour exists
	routes map[netip.Prefix]route // the paths in its VRF
}

// peerStatus is what the announcer knows of a peer beyond gobgp's ListPeer.
type peerStatus struct {
	name             string
	conf             peerConf
	running          bool // a gobgp neighbour exists (else only ConfigError is meaningful)
	state            string
	since            time.Time
	lastErr          string
	configErr        string
	routes4, routes6 int

	// Diagnostic OPENs (probe.go): one at a time, at most once per
	// probeEvery for the same settings.
	probing     bool
	probedConf  peerConf
	probedAt    time.Time
	probedWords string

	// BFD went down and gobgp asked for a reset of the session: whether the
	// reset's NOTIFICATION left (see flushReset).
	bfdResetPending bool
}

// New returns an Announcer with no peers. gobgp starts with the first peer.
func New(cfg Config) (*Announcer, error) {
	if cfg.RouterID.IsValid() && !cfg.RouterID.Unmap().Is4() {
		return nil, fmt.Errorf("bgp: router ID %s is not an IPv4 address", cfg.RouterID)
	}
	a := &Announcer{
		cfgRouterID: cfg.RouterID.Unmap(),
		log:         cfg.Logger,
		changes:     make(chan struct{}, 1),
		peers:       map[string]*peerEntry{},
		status:      map[string]*peerStatus{},
		byAddr:      map[netip.Addr]*peerStatus{},
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a.probeCtx, a.probeStop = context.WithCancel(context.Background())
	return a, nil
}

// Changes signals, coalesced, that a session's state, BFD state or last
// error changed; call Sessions to see how. It is never closed. SetDesired
// itself does not signal: read Sessions after it.
func (a *Announcer) Changes() <-chan struct{} { return a.changes }

func (a *Announcer) notify() {
	select {
	case a.changes <- struct{}{}:
	default:
	}
}

// SetDesired makes peers the complete set of sessions and paths the
// complete set of announcements, changing only what differs from the
// previous call:
//
//   - a new peer is added; a removed one is closed with a Cease NOTIFICATION
//     and its paths go with it;
//   - a peer whose settings did not change is left alone; one whose settings
//     changed is updated in place, and gobgp resets its session only for
//     settings that travel in OPEN (ASNs, password, source address, port,
//     graceful restart, multihop); timers and BFD change without a reset;
//   - a path that is new, changed or removed for a peer is sent to that peer
//     alone as one UPDATE (or withdrawal); nothing else is resent.
//
// Each peer or path that cannot be applied is reported in the returned
// error and left out (an invalid new version of a running peer keeps the
// running one, so nothing already announced is dropped); everything else is
// applied. A later call retries what failed. Peer settings that can only be
// partly applied (BFD passive mode, a router ID other than the announcer's)
// are applied as far as possible and reported, also in the peer's
// SessionStatus.ConfigError.
//
// The first call with a peer starts gobgp. Its sockets are opened by its own
// goroutines, in the network namespace of the process (see the package
// documentation).
func (a *Announcer) SetDesired(ctx context.Context, peers []Peer, paths []Path) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("bgp: announcer is closed")
	}
	want, configErrs, errs := a.wantPeers(peers)
	routes, rerrs := wantRoutes(want, paths)
	errs = append(errs, rerrs...)
	a.setSecrets(want)
	defer a.setSecrets(nil)

	if len(want) > 0 {
		rid, err := a.chooseRouterID(want)
		if err != nil {
			a.publish(want, configErrs)
			return errors.Join(append(errs, err)...)
		}
		for _, name := range slices.Sorted(maps.Keys(want)) {
			if c := want[name]; c.routerID.IsValid() && c.routerID != rid {
				configErrs[name] = append(configErrs[name], fmt.Sprintf(
					"router ID %s is not used: gobgp has one router ID for all sessions, and this node uses %s", c.routerID, rid))
			}
		}
		if a.srv != nil && rid != a.routerID {
			a.log.Warn("BGP router ID changes: restarting gobgp, every session resets", "from", a.routerID, "to", rid)
			if err := a.stopServer(ctx, false); err != nil {
				return errors.Join(append(errs, err)...)
			}
		}
		if a.srv == nil {
			asn := want[slices.Sorted(maps.Keys(want))[0]].myASN
			if err := a.startServer(ctx, rid, asn); err != nil {
				a.publish(want, configErrs)
				return errors.Join(append(errs, err)...)
			}
		}
	}

	for _, name := range slices.Sorted(maps.Keys(a.peers)) {
		if _, ok := want[name]; !ok {
			errs = append(errs, a.removePeer(ctx, name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		c := want[name]
		a.track(name, c)
		if err := a.applyPeer(ctx, name, c); err != nil {
			errs = append(errs, err)
			configErrs[name] = append(configErrs[name], err.Error())
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if e := a.peers[name]; e != nil && e.vrf {
			errs = append(errs, a.syncRoutes(ctx, e, routes[name]))
		}
	}
	a.publish(want, configErrs)
	return errors.Join(errs...)
}

// wantPeers normalizes peers. A peer that is invalid keeps its running
// version, if any; configErrs collects what each peer's status should say.
func (a *Announcer) wantPeers(peers []Peer) (want map[string]peerConf, configErrs map[string][]string, errs []error) {
	want, configErrs = map[string]peerConf{}, map[string][]string{}
	addrs := map[netip.Addr]string{}
	sorted := slices.SortedFunc(slices.Values(peers), func(x, y Peer) int { return strings.Compare(x.Name, y.Name) })
	for _, p := range sorted {
		if _, dup := want[p.Name]; dup {
			errs = append(errs, fmt.Errorf("bgp: peer %q is listed more than once; the first one is used", p.Name))
			continue
		}
		c, err := normalizePeer(p)
		if err == nil {
			if other, used := addrs[c.addr]; used {
				err = fmt.Errorf("address %s is already the address of peer %q (one session per router address)", c.addr, other)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: peer %q: %w", p.Name, err))
			configErrs[p.Name] = append(configErrs[p.Name], err.Error())
			if e := a.peers[p.Name]; e != nil {
				if other, used := addrs[e.conf.addr]; !used || other == p.Name {
					want[p.Name] = e.conf // keep what runs
					addrs[e.conf.addr] = p.Name
				}
			} else if p.Name != "" {
				a.trackRejected(p)
			}
			continue
		}
		if c.bfdPassive {
			msg := "BFD passive mode is not supported by gobgp: BFD sends control packets from the start (active mode)"
			errs = append(errs, fmt.Errorf("bgp: peer %q: %s", p.Name, msg))
			configErrs[p.Name] = append(configErrs[p.Name], msg)
		}
		want[p.Name] = c
		addrs[c.addr] = p.Name
	}
	return want, configErrs, errs
}

// wantRoutes sorts paths out per peer.
func wantRoutes(want map[string]peerConf, paths []Path) (map[string]map[netip.Prefix]route, []error) {
	out := map[string]map[netip.Prefix]route{}
	var errs []error
	sorted := slices.SortedStableFunc(slices.Values(paths), func(x, y Path) int {
		return cmp.Or(x.Prefix.Addr().Compare(y.Prefix.Addr()), cmp.Compare(x.Prefix.Bits(), y.Prefix.Bits()))
	})
	for _, p := range sorted {
		r, err := normalizeRoute(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: path %s: %w", p.Prefix, err))
			continue
		}
		for _, name := range slices.Compact(slices.Sorted(slices.Values(p.Peers))) {
			c, ok := want[name]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("bgp: path %s names peer %q, which is not configured", p.Prefix, name))
				continue
			case !r.nextHop.IsValid() && p.Prefix.Addr().Is4() != c.addr.Is4():
				errs = append(errs, fmt.Errorf("bgp: path %s to peer %q: no next hop (the session's own address is of the other family)", p.Prefix, name))
				continue
			}
			if out[name] == nil {
				out[name] = map[netip.Prefix]route{}
			}
			if old, dup := out[name][p.Prefix]; dup {
				if !old.equal(&r) {
					errs = append(errs, fmt.Errorf("bgp: path %s to peer %q is listed twice with different attributes; the first one is used", p.Prefix, name))
				}
				continue
			}
			out[name][p.Prefix] = r
		}
	}
	return out, errs
}

// setSecrets makes the handler redact the passwords of want and of the
// running peers (nil want: only the running peers').
func (a *Announcer) setSecrets(want map[string]peerConf) {
	var s []string
	for _, c := range want {
		s = append(s, c.password)
	}
	for _, e := range a.peers {
		s = append(s, e.conf.password)
	}
	s = slices.DeleteFunc(s, func(p string) bool { return p == "" })
	a.secrets.Store(&s)
}

// chooseRouterID: Config.RouterID, else the first peer's RouterID, else the
// one gobgp runs with, else this host's first global IPv4 address.
func (a *Announcer) chooseRouterID(want map[string]peerConf) (netip.Addr, error) {
	if a.cfgRouterID.IsValid() {
		return a.cfgRouterID, nil
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if id := want[name].routerID; id.IsValid() {
			return id, nil
		}
	}
	if a.routerID.IsValid() {
		return a.routerID, nil
	}
	return hostRouterID()
}

func hostRouterID() (netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("bgp: choosing a router ID: %w", err)
	}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() && ip.IsGlobalUnicast() {
					return ip.Unmap(), nil
				}
			}
		}
	}
	return netip.Addr{}, errors.New("bgp: no router ID: this host has no IPv4 address; set Config.RouterID or a peer's RouterID")
}

func (a *Announcer) startServer(ctx context.Context, rid netip.Addr, asn uint32) error {
	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelDebug) // every record reaches gobgpHandler, which filters
	h := &gobgpHandler{inner: a.log.Handler(), observe: a.observe, secrets: &a.secrets}
	srv := server.NewBgpServer(server.LoggerOption(slog.New(h), lvl))
	go srv.Serve()
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        asn,
		RouterId:   rid.String(),
		ListenPort: -1, // dial out only: no listener on port 179
	}})
	if err == nil {
		err = srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: importPolicyDef()})
	}
	if err == nil {
		err = srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name:          "global",
			Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
			Policies:      []*api.Policy{{Name: importPolicy}},
			DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
		}})
	}
	wctx, stop := context.WithCancel(context.Background())
	if err == nil {
		err = srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: a.onPeer}, server.WatchPeer())
	}
	if err != nil {
		stop()
		srv.Stop()
		return fmt.Errorf("bgp: starting gobgp: %w", err)
	}
	a.srv, a.stop, a.polling, a.routerID = srv, stop, make(chan struct{}), rid
	a.peers = map[string]*peerEntry{}
	go a.pollBFD(wctx, srv, a.polling)
	a.st.Lock()
	a.stSrv, a.stRouterID = srv, rid
	a.st.Unlock()
	a.log.Info("gobgp started", "routerID", rid, "asn", asn)
	return nil
}

// stopServer stops gobgp: graceful keeps the routes at peers that
// negotiated graceful restart (no NOTIFICATION, the connection just
// closes); every other peer gets a Cease. Bounded by ctx (gobgp then goes on
// stopping in the background).
func (a *Announcer) stopServer(ctx context.Context, graceful bool) error {
	srv := a.srv
	done := make(chan error, 1)
	go func() {
		var err error
		if graceful {
			err = srv.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: true})
		}
		srv.Stop() // (after StopBgp, its own StopBgp fails; the handler drops that record)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("bgp: stopping gobgp: %w", ctx.Err())
	}
	a.stop()
	<-a.polling
	a.srv, a.peers = nil, map[string]*peerEntry{}
	a.st.Lock()
	a.stSrv = nil
	for _, ps := range a.status {
		ps.running = false
	}
	a.st.Unlock()
	return err
}

// applyPeer makes gobgp run c under name: adds it, updates it or leaves it.
func (a *Announcer) applyPeer(ctx context.Context, name string, c peerConf) error {
	e := a.peers[name]
	if e == nil {
		a.nextID++
		e = &peerEntry{conf: c, vrfID: a.nextID, routes: map[netip.Prefix]route{}}
		a.peers[name] = e
	}
	if !e.vrf {
		v, err := apiVrf(e.vrfID)
		if err == nil {
			err = a.srv.AddVrf(ctx, &api.AddVrfRequest{Vrf: v})
		}
		if err != nil {
			return fmt.Errorf("bgp: peer %q: creating its VRF: %w", name, err)
		}
		e.vrf = true
	}
	vrf := vrfName(e.vrfID)
	switch {
	case e.added && e.conf == c:
		return nil
	case e.added && e.conf.addr != c.addr:
		if err := a.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: e.conf.addr.String()}); err != nil {
			return fmt.Errorf("bgp: peer %q: removing the session to its old address %s: %w", name, e.conf.addr, err)
		}
		e.added = false
	case e.added:
		if _, err := a.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: apiPeer(&c, vrf)}); err != nil {
			return fmt.Errorf("bgp: peer %q: updating: %s", name, a.scrub(err, c.password))
		}
		a.log.Info("BGP peer updated", "peer", name)
		e.conf = c
		return nil
	}
	if err := a.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(&c, vrf)}); err != nil {
		return fmt.Errorf("bgp: peer %q: adding: %s", name, a.scrub(err, c.password))
	}
	a.log.Info("BGP peer added", "peer", name, "address", c.addr, "myASN", c.myASN, "peerASN", c.peerASN)
	e.added, e.conf = true, c
	return nil
}

// scrub is err's text without password.
func (a *Announcer) scrub(err error, password string) string {
	if password == "" {
		return err.Error()
	}
	return strings.ReplaceAll(err.Error(), password, "<redacted>")
}

// removePeer closes name's session (Cease) and drops its VRF and paths.
func (a *Announcer) removePeer(ctx context.Context, name string) error {
	e := a.peers[name]
	var errs []error
	if e.added {
		if err := a.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: e.conf.addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: peer %q: removing: %w", name, err))
		} else {
			e.added = false
		}
	}
	if e.vrf && !e.added {
		if err := a.srv.DeleteVrf(ctx, &api.DeleteVrfRequest{Name: vrfName(e.vrfID)}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: peer %q: removing its VRF: %w", name, err))
		} else {
			e.vrf = false
		}
	}
	if !e.added && !e.vrf {
		delete(a.peers, name)
		a.log.Info("BGP peer removed", "peer", name)
	}
	return errors.Join(errs...)
}

// pathChunk bounds one AddPath or DeletePath call, so that gobgp's other
// work (status requests) interleaves with a large change.
const pathChunk = 1024

// syncRoutes makes e's VRF hold exactly want, as far as ctx allows (what
// is done is kept: a later call goes on from there).
func (a *Announcer) syncRoutes(ctx context.Context, e *peerEntry, want map[netip.Prefix]route) error {
	var errs []error
	var dels []netip.Prefix
	for pfx := range e.routes {
		if _, ok := want[pfx]; !ok {
			dels = append(dels, pfx)
		}
	}
	slices.SortFunc(dels, comparePrefix)
	vrf := vrfName(e.vrfID)
	for chunk := range slices.Chunk(dels, pathChunk) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		var paths []*apiutil.Path
		for _, pfx := range chunk {
			r := e.routes[pfx]
			p, err := apiPath(pfx, &r, true)
			if err != nil {
				errs = append(errs, fmt.Errorf("bgp: withdrawing %s: %w", pfx, err))
				continue
			}
			paths = append(paths, p)
		}
		if len(paths) == 0 {
			continue
		}
		if err := a.srv.DeletePath(apiutil.DeletePathRequest{VRFID: vrf, Paths: paths}); err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdrawing %d paths: %w", len(paths), err))
			continue
		}
		for _, pfx := range chunk {
			delete(e.routes, pfx)
		}
	}

	var adds []netip.Prefix
	for pfx, r := range want {
		if old, ok := e.routes[pfx]; !ok || !old.equal(&r) {
			adds = append(adds, pfx)
		}
	}
	slices.SortFunc(adds, comparePrefix)
	for chunk := range slices.Chunk(adds, pathChunk) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		var paths []*apiutil.Path
		var ok []netip.Prefix
		for _, pfx := range chunk {
			r := want[pfx]
			p, err := apiPath(pfx, &r, false)
			if err != nil {
				errs = append(errs, fmt.Errorf("bgp: announcing %s: %w", pfx, err))
				continue
			}
			paths, ok = append(paths, p), append(ok, pfx)
		}
		if len(paths) == 0 {
			continue
		}
		if _, err := a.srv.AddPath(apiutil.AddPathRequest{VRFID: vrf, Paths: paths}); err != nil {
			// gobgp does not say which path failed: add them one by one.
			for i, p := range paths {
				if _, err := a.srv.AddPath(apiutil.AddPathRequest{VRFID: vrf, Paths: []*apiutil.Path{p}}); err != nil {
					errs = append(errs, fmt.Errorf("bgp: announcing %s: %w", ok[i], err))
					continue
				}
				e.routes[ok[i]] = want[ok[i]]
			}
			continue
		}
		for _, pfx := range ok {
			e.routes[pfx] = want[pfx]
		}
	}
	return errors.Join(errs...)
}

func comparePrefix(x, y netip.Prefix) int {
	return cmp.Or(x.Addr().Compare(y.Addr()), cmp.Compare(x.Bits(), y.Bits()))
}

// track makes sure name has a status entry for c, indexed by address,
// before gobgp hears of it (so its first events and log records find it).
func (a *Announcer) track(name string, c peerConf) {
	a.st.Lock()
	defer a.st.Unlock()
	ps := a.status[name]
	if ps == nil {
		ps = &peerStatus{name: name, state: "Idle", since: time.Now()}
		a.status[name] = ps
	}
	if ps.conf.addr != c.addr && a.byAddr[ps.conf.addr] == ps {
		delete(a.byAddr, ps.conf.addr)
	}
	ps.conf, ps.running = c, true
	a.byAddr[c.addr] = ps
}

// trackRejected gives a peer that was never applied a status entry, so
// that Sessions reports why.
func (a *Announcer) trackRejected(p Peer) {
	a.st.Lock()
	defer a.st.Unlock()
	if a.status[p.Name] == nil {
		a.status[p.Name] = &peerStatus{name: p.Name, state: "Idle", conf: peerConf{name: p.Name, addr: p.Address}}
	}
}

// publish brings the status entries in line with want after SetDesired.
func (a *Announcer) publish(want map[string]peerConf, configErrs map[string][]string) {
	a.st.Lock()
	defer a.st.Unlock()
	for name, ps := range a.status {
		_, wanted := want[name]
		e := a.peers[name]
		if !wanted && configErrs[name] == nil {
			if a.byAddr[ps.conf.addr] == ps {
				delete(a.byAddr, ps.conf.addr)
			}
			delete(a.status, name)
			continue
		}
		ps.configErr = strings.Join(configErrs[name], "; ")
		ps.running = e != nil && e.added
		ps.routes4, ps.routes6 = 0, 0
		if e != nil {
			for pfx := range e.routes {
				if pfx.Addr().Is4() {
					ps.routes4++
				} else {
					ps.routes6++
				}
			}
		}
	}
}

// Sessions reports every peer of the last SetDesired, sorted by name.
func (a *Announcer) Sessions() []SessionStatus {
	a.st.Lock()
	srv := a.stSrv
	list := make([]peerStatus, 0, len(a.status))
	for _, ps := range a.status {
		list = append(list, *ps)
	}
	a.st.Unlock()
	slices.SortFunc(list, func(x, y peerStatus) int { return strings.Compare(x.name, y.name) })

	live := map[netip.Addr]*api.PeerState{}
	if srv != nil {
		_ = srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
			if addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil && p.State != nil {
				live[addr.Unmap()] = p.State
			}
		})
	}
	out := make([]SessionStatus, len(list))
	for i, ps := range list {
		s := SessionStatus{Peer: ps.name, Address: ps.conf.addr, State: "Idle", Since: ps.since,
			LastError: ps.lastErr, ConfigError: ps.configErr}
		if ps.conf.bfd {
			s.BFDState = "Down"
		}
		if st := live[ps.conf.addr]; st != nil && ps.running {
			s.State = cmp.Or(sessionStates[st.SessionState], "Idle")
			s.UpdatesSent = st.GetMessages().GetSent().GetUpdate()
			if ps.conf.bfd && st.BfdState != nil {
				s.BFDState = cmp.Or(bfdStates[st.BfdState.SessionState], "Down")
			}
			if st.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED {
				v4, v6 := negotiated(st)
				if v4 {
					s.PrefixesAdvertised += ps.routes4
				}
				if v6 {
					s.PrefixesAdvertised += ps.routes6
				}
			}
		}
		out[i] = s
	}
	return out
}

// onPeer records a session state change reported by gobgp.
func (a *Announcer) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, t time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := &ev.Peer.State
	a.st.Lock()
	ps := a.byAddr[st.NeighborAddress.Unmap()]
	if ps == nil {
		a.st.Unlock()
		return
	}
	prev := ps.state
	if name := fsmStates[st.SessionState]; name != "" && name != ps.state {
		ps.state, ps.since = name, t
	}
	switch {
	case st.SessionState == bgp.BGP_FSM_ESTABLISHED:
		ps.lastErr = ""
	case st.DisconnectReason == api.PeerState_DISCONNECT_REASON_INVALID_MSG && prev != "Established":
		// In OpenConfirm this is the router's NOTIFICATION, its code lost.
		a.refused(ps)
	default:
		if msg := reasonWords(st.DisconnectReason, st.DisconnectMessage, &ps.conf); msg != "" {
			ps.lastErr = msg
		}
	}
	a.st.Unlock()
	a.notify()
}

// reasonWords is the LastError for a session that left a state for reason,
// or "" when the reason is no error (our own reset or removal, or one
// reported better by a log record).
func reasonWords(reason api.PeerState_DisconnectReason, msg string, c *peerConf) string {
	switch reason {
	case api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED:
		return holdWords(c)
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED:
		return outgoingWords(msg, c)
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT:
		code, subcode, ok := parseCodes(msg)
		if !ok || code == 6 && (subcode == 2 || subcode == 3 || subcode == 4 || subcode == 6) {
			return "" // our own shutdown, removal, reset (BFD: see observe) or reconfiguration
		}
		if code == 4 {
			return holdWords(c)
		}
		return sentWords(code, subcode, c)
	case api.PeerState_DISCONNECT_REASON_BAD_PEER_AS:
		return sentWords(2, 2, c)
	case api.PeerState_DISCONNECT_REASON_READ_FAILED:
		return "the router closed the connection"
	case api.PeerState_DISCONNECT_REASON_WRITE_FAILED:
		return "the connection to the router broke while sending"
	case api.PeerState_DISCONNECT_REASON_INVALID_MSG:
		return "the router sent a message gobgp could not accept"
	case api.PeerState_DISCONNECT_REASON_GRACEFUL_RESTART:
		return "the connection to the router dropped (graceful restart: the router may keep our routes for the restart time)"
	case api.PeerState_DISCONNECT_REASON_HARD_RESET:
		return "peer sent NOTIFICATION: hard reset"
	}
	return ""
}

// observe turns gobgp log records about a peer into its LastError.
func (a *Announcer) observe(rec gobgpRecord) {
	if rec.msg == "Can't listen UDP" {
		msg := "BFD cannot run: UDP port 3784 cannot be opened on this node (" + rec.str("Error") + "); is another BFD daemon running?"
		a.st.Lock()
		for _, ps := range a.status {
			if ps.conf.bfd {
				ps.lastErr = msg
			}
		}
		a.st.Unlock()
		a.notify()
		return
	}
	key := cmp.Or(rec.str("Key"), rec.str("Peer"))
	addr, err := netip.ParseAddr(key)
	if err != nil {
		return
	}
	a.st.Lock()
	ps := a.byAddr[addr.Unmap()]
	if ps == nil {
		a.st.Unlock()
		return
	}
	c := &ps.conf
	code, _ := rec.int("Code")
	subcode, _ := rec.int("Subcode")
	var msg string
	switch rec.msg {
	case "failed to connect":
		msg = dialWords(rec.str("Error"), c)
	case "outgoing connection IO error":
		msg = outgoingWords(rec.str("reason"), c)
	case "outgoing connection closing due to hold timer expired in OPEN SENT state":
		msg = "no answer to OPEN: the router accepted the connection but never answered our OPEN"
	case "sent notification":
		if rec.str("Communicated-Reason") == "BFD is down" {
			ps.bfdResetPending = false
		}
		if code == 6 && (subcode == 2 || subcode == 3 || subcode == 4 || subcode == 6) {
			break // our own shutdown, removal, reset (BFD: its own record) or reconfiguration
		}
		if code == 5 && ps.state != "Established" {
			// gobgp's answer to a message other than OPEN after its own
			// OPEN: the router's NOTIFICATION came first.
			before := ps.lastErr
			a.refused(ps)
			msg = ps.lastErr
			ps.lastErr = before
			break
		}
		msg = sentWords(code, subcode, c)
		if code == 4 {
			msg = holdWords(c)
		}
	case "received notification":
		msg = receivedWords(code, subcode, c)
		if r := rec.str("Communicated-Reason"); r != "" {
			msg += ": " + r
		}
	case "hold timer expired":
		msg = holdWords(c)
	case "Expired":
		msg = bfdExpiredWords()
		a.watchReset(ps)
	case "Remote peer signaled BFD down":
		msg = bfdRemoteDownWords
		a.watchReset(ps)
	case "Can't dial UDP":
		msg = "BFD cannot send to the router: " + rec.str("Error")
	}
	changed := msg != "" && msg != ps.lastErr
	if changed {
		ps.lastErr = msg
	}
	a.st.Unlock()
	if changed {
		a.notify()
	}
}

// refusedWords is the LastError for a refused OPEN whose NOTIFICATION
// gobgp did not report, until a diagnostic OPEN tells more.
const refusedWords = "peer sent NOTIFICATION in answer to our OPEN (gobgp does not report which; check myASN, peerASN, the router ID and the router's neighbour configuration)"

// refused handles a refused OPEN whose NOTIFICATION gobgp did not report:
// it says so, with the reason a diagnostic OPEN found for these settings,
// and starts one if none ran lately. a.st must be held.
func (a *Announcer) refused(ps *peerStatus) {
	if ps.probedConf == ps.conf && ps.probedWords != "" {
		ps.lastErr = ps.probedWords
	} else {
		ps.lastErr = refusedWords
	}
	if ps.probing || ps.probedConf == ps.conf && time.Since(ps.probedAt) < probeEvery || a.probeCtx.Err() != nil {
		return
	}
	ps.probing = true
	name, c, rid := ps.name, ps.conf, a.stRouterID
	a.probes.Add(1)
	go func() {
		defer a.probes.Done()
		code, subcode, err := probeOpen(a.probeCtx, c, rid)
		words := ""
		if err == nil {
			words = receivedWords(code, subcode, &c)
		}
		a.log.Debug("diagnostic OPEN", "peer", name, "answer", words, "error", err)
		a.st.Lock()
		changed := false
		if ps := a.status[name]; ps != nil {
			ps.probing = false
			if ps.conf == c {
				ps.probedConf, ps.probedAt, ps.probedWords = c, time.Now(), words
				if words != "" && ps.state != "Established" && ps.lastErr == refusedWords {
					ps.lastErr, changed = words, true
				}
			}
		}
		a.st.Unlock()
		if changed {
			a.notify()
		}
	}()
}

// flushAfter is how long a BFD reset's NOTIFICATION may take to leave
// before watchReset takes it for stuck.
const flushAfter = 500 * time.Millisecond

// watchReset handles a gap in gobgp 4.8: when BFD goes down it resets the
// BGP session by queueing a NOTIFICATION that only an Established session
// sends. If the session is not Established at that moment (BFD went down
// before BGP came up, or while it was being reset), the NOTIFICATION waits
// in its queue and ends the next session the moment it is established. So
// when the reset has not left after flushAfter, the announcer re-adds the
// gobgp neighbour (the session is down anyway), which drops the queue.
// a.st must be held.
func (a *Announcer) watchReset(ps *peerStatus) {
	if ps.bfdResetPending {
		return
	}
	ps.bfdResetPending = true
	name, c := ps.name, ps.conf
	a.probes.Add(1)
	go func() {
		defer a.probes.Done()
		select {
		case <-a.probeCtx.Done():
			return
		case <-time.After(flushAfter):
		}
		a.st.Lock()
		ps := a.status[name]
		stuck := ps != nil && ps.bfdResetPending && ps.conf == c
		if ps != nil {
			ps.bfdResetPending = false
		}
		a.st.Unlock()
		if stuck {
			a.flushReset(name, c)
		}
	}()
}

// flushReset re-adds peer name's gobgp neighbour if it still runs c.
func (a *Announcer) flushReset(name string, c peerConf) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.peers[name]
	if a.closed || a.srv == nil || e == nil || !e.added || e.conf != c {
		return
	}
	a.log.Info("BFD went down while the BGP session was not established: re-adding the gobgp neighbour so that its queued reset does not end the next session", "peer", name)
	ctx := context.Background()
	if err := a.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: c.addr.String()}); err != nil {
		a.log.Warn("re-adding BGP peer: removing it", "peer", name, "error", err)
		return
	}
	e.added = false
	if err := a.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(&c, vrfName(e.vrfID))}); err != nil {
		a.log.Warn("re-adding BGP peer", "peer", name, "error", a.scrub(err, c.password))
		return
	}
	e.added = true
}

// bfdPoll is how often BFD states are read for Changes: gobgp has no BFD
// event.
const bfdPoll = 100 * time.Millisecond

func (a *Announcer) pollBFD(ctx context.Context, srv *server.BgpServer, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(bfdPoll)
	defer t.Stop()
	last := map[string]api.BfdSessionState{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := map[string]api.BfdSessionState{}
		srv.ListBfdPeer(ctx, func(addr string, st *api.BfdPeerState) { cur[addr] = st.SessionState })
		if !maps.Equal(cur, last) {
			last = cur
			a.notify()
		}
	}
}

// Close withdraws every path, waits for the withdrawals to leave, closes
// every session with a Cease NOTIFICATION and stops gobgp, all bounded by
// ctx. The announcer cannot be used afterwards.
func (a *Announcer) Close(ctx context.Context) error { return a.close(ctx, false) }

// CloseForRestart stops gobgp for a restart of this process, bounded by
// ctx: peers that negotiated graceful restart get no withdrawals and no
// NOTIFICATION (the connection just closes), so the routers keep this
// node's routes for the restart time (GracefulRestartTime) until the next
// process announces them again; every other peer gets a Cease, as in Close.
func (a *Announcer) CloseForRestart(ctx context.Context) error { return a.close(ctx, true) }

func (a *Announcer) close(ctx context.Context, graceful bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	a.probeStop()
	defer a.probes.Wait()
	if a.srv == nil {
		return nil
	}
	var errs []error
	if !graceful {
		withdrawn := false
		for _, name := range slices.Sorted(maps.Keys(a.peers)) {
			if e := a.peers[name]; e.vrf && len(e.routes) > 0 {
				errs = append(errs, a.syncRoutes(ctx, e, nil))
				withdrawn = true
			}
		}
		if withdrawn {
			a.waitSent(ctx)
		}
	}
	errs = append(errs, a.stopServer(ctx, graceful))
	a.log.Info("gobgp stopped", "graceful", graceful)
	a.notify()
	return errors.Join(errs...)
}

// waitSent waits until no session's UPDATE counter moved for a few polls:
// gobgp queues UPDATEs per session and sends them from another goroutine,
// and a Cease must not overtake the withdrawals.
func (a *Announcer) waitSent(ctx context.Context) {
	const poll, quiet = 20 * time.Millisecond, 3
	var last map[string]uint64
	still := 0
	for still < quiet && ctx.Err() == nil {
		cur := map[string]uint64{}
		_ = a.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			cur[p.GetConf().GetNeighborAddress()] = p.GetState().GetMessages().GetSent().GetUpdate()
		})
		if maps.Equal(cur, last) {
			still++
		} else {
			still = 0
		}
		last = cur
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
}
