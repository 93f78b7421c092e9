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
	"github.com/osrg/gobgp/v4/pkg/config/oc"
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
	byPrefix := func(x, y Path) int {
		return cmp.Or(x.Prefix.Addr().Compare(y.Prefix.Addr()), cmp.Compare(x.Prefix.Bits(), y.Prefix.Bits()))
	}
	// Sorted, so that of two paths for one prefix the first one listed
	// wins. Plans come sorted: copying 10,000 paths on every change was a
	// good part of the speaker's garbage.
	sorted := paths
	if !slices.IsSortedFunc(paths, byPrefix) {
		sorted = slices.SortedStableFunc(slices.Values(paths), byPrefix)
	}
	for _, p := range sorted {
		r, err := normalizeRoute(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: path %s: %w", p.Prefix, err))
			continue
		}
		for _, name := range sortedSet(p.Peers, strings.Compare) {
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

// globalFamilies are the families of gobgp's global tables: only those
// Portico uses. Without the list gobgp makes two tables for every family it
// knows, each with 2,048 map shards: about 14 MiB before the first route.
// Each peer's paths live in its own VRF (see applyPeer), which gobgp keeps
// in the global tables as VPN paths: the VPN families are needed too, or
// no path is ever sent.
func globalFamilies() []uint32 {
	var out []uint32
	for _, f := range []oc.AfiSafiType{
		oc.AFI_SAFI_TYPE_IPV4_UNICAST, oc.AFI_SAFI_TYPE_IPV6_UNICAST,
		oc.AFI_SAFI_TYPE_L3VPN_IPV4_UNICAST, oc.AFI_SAFI_TYPE_L3VPN_IPV6_UNICAST,
		oc.AFI_SAFI_TYPE_RTC, // gobgp reads its table when a VRF is deleted
	} {
		out = append(out, uint32(oc.AfiSafiTypeToIntMap[f]))
	}
	return out
}

func (a *Announcer) startServer(ctx context.Context, rid netip.Addr, asn uint32) error {
	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelDebug) // every record reaches gobgpHandler, which filters
	h := &gobgpHandler{inner: a.log.Handler(), observe: a.observe, secrets: &a.secrets, repeats: &repeats{}}
	srv := server.NewBgpServer(server.LoggerOption(slog.New(h), lvl))
	go srv.Serve()
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        asn,
		RouterId:   rid.String(),
		ListenPort: -1, // dial out only: no listener on port 179
		Families:   globalFamilies(),
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
	a.st.Lock()
	if ps := a.status[name]; ps != nil {
		ps.since = time.Now()
	}
	a.st.Unlock()
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
	err := a.closeLocked(ctx, graceful)
	// Probes and watchReset goroutines end with probeCtx; a watchReset
	// goroutine may be waiting for a.mu (flushReset), so wait unlocked.
	a.probes.Wait()
	return err
}

func (a *Announcer) closeLocked(ctx context.Context, graceful bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	a.probeStop()
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
