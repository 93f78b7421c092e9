// Package speaker owns the per-node speaker process: it wires the Kubernetes
// informer cache, the memberlist membership, netlink link watching and the
// layer 2 announcer together, runs the L2 plan (package l2plan) on every
// relevant change, and writes the node's SpeakerStatus, the Services'
// ServiceAnnouncements, events and metrics.
//
// Decisions live in l2plan (pure); this package is the thin adapter around
// them. Announcing needs only the informer cache and memberlist, so it keeps
// working, and keeps failing over between live speakers, while the API server
// is unreachable.
package speaker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/portico-lb/portico/internal/apiwait"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/internal/election"
	"github.com/portico-lb/portico/internal/layer2"
	"github.com/portico-lb/portico/internal/membership"
	"github.com/portico-lb/portico/speaker/facts"
	"github.com/portico-lb/portico/speaker/l2plan"
)

// Config configures a speaker.
type Config struct {
	// NodeName is the Kubernetes node this speaker runs on.
	NodeName string
	// RestConfig reaches the API server.
	RestConfig *rest.Config
	// Namespace, SecretName and SecretKey locate the memberlist keys.
	Namespace, SecretName, SecretKey string
	// KeyRefresh is how often the running speaker re-reads the memberlist
	// Secret, to follow a key rotation (default 10s).
	KeyRefresh time.Duration
	// AllowUnencrypted permits running memberlist without a key when the
	// Secret does not exist.
	AllowUnencrypted bool
	// BindAddr, BindPort and AdvertiseAddr configure memberlist. When
	// AdvertiseAddr is empty and BindAddr is unspecified, the Node's
	// InternalIP is advertised.
	BindAddr      string
	BindPort      int
	AdvertiseAddr string
	Timers        membership.Timers
	// MetricsBindAddress serves /metrics; "" or "0" disables it.
	MetricsBindAddress string
	// PprofBindAddress serves Go's /debug/pprof, for diagnosing CPU and
	// memory use; "" or "0" disables it.
	PprofBindAddress string
	// Registry receives the speaker's metrics; nil registers none.
	Registry prometheus.Registerer
	// LBClass is the loadBalancerClass served; "" serves Services without
	// one.
	LBClass string
	// PeersFile, if set, remembers the last-known memberlist peers across
	// restarts.
	PeersFile string
	// Announce is the layer2 gratuitous schedule (nil: layer2's default).
	Announce []time.Duration
	// StatusInterval is the least time between two writes of the node's
	// SpeakerStatus (default 1s).
	StatusInterval time.Duration
	// NetNS runs f in the node's network namespace. nil runs it directly,
	// which is right for a process started in that namespace; tests running
	// several speakers in one process pass a function that switches.
	NetNS func(f func() error) error
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.NodeName == "" {
		return errors.New("the node name is empty: pass --node-name or set NODE_NAME")
	}
	if c.RestConfig == nil {
		return errors.New("no API server configuration")
	}
	c.Namespace = cmp.Or(c.Namespace, "portico-system")
	c.SecretName = cmp.Or(c.SecretName, "portico-memberlist")
	c.SecretKey = cmp.Or(c.SecretKey, "secretkey")
	c.StatusInterval = cmp.Or(max(c.StatusInterval, 0), time.Second)
	c.KeyRefresh = cmp.Or(max(c.KeyRefresh, 0), keyRefresh)
	if c.NetNS == nil {
		c.NetNS = func(f func() error) error { return f() }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c.Timers.Validate()
}

// Speaker is one running speaker. It owns the memberlist side (readiness,
// node-name conflicts, the metadata it published, the member view) and runs
// the protocols on every change; each protocol (l2Protocol, bgpProtocol)
// owns its own plan and announcer state, the status writer and the peer
// finder only read through their methods.
type Speaker struct {
	cfg  Config
	log  *slog.Logger
	mgr  manager.Manager
	ml   *membership.Membership
	net  *netWatcher
	st   *statusWriter
	peer *peers
	l2   *l2Protocol
	bgp  *bgpProtocol
	keys *memberlistKeys
	// protocols are l2 and bgp, in the order they are applied.
	protocols []protocol
	// builder turns the cached Portico objects into the configuration
	// model, re-parsing only pools that changed; used by recompute only.
	builder config.Builder

	kick signal
	// localAddr is memberlist's address, read once: memberlist mutates its
	// local node on every metadata update.
	localAddr string
	rec       events.EventRecorder
	metaKick  signal

	mu              sync.Mutex
	ready           bool                      // caches synced, joined, first plan applied
	standDown       *membership.ConflictError // another speaker owns our node name
	conflict        *membership.ConflictError // last conflict seen, for status
	conflictAt      time.Time                 // when conflict was reported
	published       []byte                    // last meta published
	publishedIfaces []election.Interface      // the interfaces in published
	localIfaces     []election.Interface      // last local interface view
	members         []string                  // last member names
}

// Run starts a speaker and blocks until ctx ends, then leaves memberlist
// gracefully and stops announcing. It returns an error only when the speaker
// cannot start (bad configuration, missing or malformed memberlist Secret,
// port in use); everything later is reported and retried.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// New prepares a speaker: reads the memberlist key, starts listening for
// memberlist and builds the informer cache. Nothing is announced until Run.
func New(ctx context.Context, cfg Config) (*Speaker, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Speaker{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName), kick: newSignal(), metaKick: newSignal()}
	var err error
	if s.mgr, err = newManager(cfg); err != nil {
		return nil, err
	}
	s.keys = newMemberlistKeys(s)
	keys, err := s.keys.initial(ctx)
	if err != nil {
		return nil, err
	}
	advertise, err := s.advertiseAddr(ctx)
	if err != nil {
		return nil, err
	}
	s.ml, err = membership.New(membership.Config{
		NodeName:         cfg.NodeName,
		BindAddr:         cfg.BindAddr,
		BindPort:         cfg.BindPort,
		AdvertiseAddr:    advertise,
		Keys:             keys,
		AllowUnencrypted: cfg.AllowUnencrypted,
		Timers:           cfg.Timers,
		Meta:             l2plan.EncodeMeta(l2plan.Meta{Ready: false}, membership.MaxMetaSize),
		Logger:           s.log.With("component", "memberlist"),
		OnConflict:       s.onConflict,
	})
	if err != nil {
		return nil, err
	}
	s.localAddr = s.ml.LocalAddr().String()
	s.rec = s.mgr.GetEventRecorder("portico.dev/speaker")
	s.l2 = &l2Protocol{node: cfg.NodeName, netns: cfg.NetNS, log: s.log.With("component", "layer2"),
		ann: layer2.New(layer2.Config{Announce: cfg.Announce, Logger: s.log.With("component", "layer2")})}
	s.net = &netWatcher{netns: cfg.NetNS, onMove: s.trigger, log: s.log.With("component", "netlink")}
	s.st = newStatusWriter(s)
	s.peer = newPeers(s)
	s.bgp, err = newBGPProtocol(cfg.NodeName, s.log.With("component", "bgp"), readPassword(s.mgr.GetAPIReader()), s.trigger)
	if err != nil {
		return nil, err
	}
	s.protocols = []protocol{s.l2, s.bgp}
	if cfg.Registry != nil {
		registerMetrics(cfg.Registry, s)
	}
	return s, nil
}

// retryAPI runs f until it succeeds, fails with an API error that retrying
// cannot fix, or ctx ends; connection failures are retried with backoff.
func retryAPI(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	delay := 200 * time.Millisecond
	for {
		err := f()
		if err == nil || !retriable(err) {
			return err
		}
		log.Warn(what+": API server unreachable, retrying", "error", err, "in", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// retriable reports whether err is worth waiting out: the same
// classification as the informers' (internal/apiwait), so a bad certificate
// or an unknown host is reported at once instead of retried for ever.
func retriable(err error) bool { return apiwait.Unreachable(err) }

// advertiseAddr picks the memberlist address others reach this speaker at.
func (s *Speaker) advertiseAddr(ctx context.Context) (string, error) {
	if s.cfg.AdvertiseAddr != "" {
		return s.cfg.AdvertiseAddr, nil
	}
	if ip := net.ParseIP(s.cfg.BindAddr); ip != nil && !ip.IsUnspecified() {
		return "", nil // memberlist advertises the bind address
	}
	var node corev1.Node
	err := retryAPI(ctx, s.log, "reading node "+s.cfg.NodeName, func() error {
		return s.mgr.GetAPIReader().Get(ctx, types.NamespacedName{Name: s.cfg.NodeName}, &node)
	})
	if err != nil {
		if apierrors.IsNotFound(err) {
			s.log.Warn("node object not found; memberlist chooses its own address (set --memberlist-advertise-addr if others cannot reach it)", "node", s.cfg.NodeName)
			return "", nil
		}
		return "", fmt.Errorf("reading node %s for its InternalIP: %w", s.cfg.NodeName, err)
	}
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address, nil
		}
	}
	return "", nil
}

// Membership returns the speaker's memberlist (for tests and status).
func (s *Speaker) Membership() *membership.Membership { return s.ml }

// Announcer returns the speaker's announcer.
func (s *Speaker) Announcer() *layer2.Announcer { return s.l2.ann }

// Run runs the speaker until ctx ends.
func (s *Speaker) Run(ctx context.Context) error {
	mctx, stopMgr := context.WithCancel(context.WithoutCancel(ctx))
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- s.mgr.Start(mctx) }()
	defer func() {
		stopMgr()
		if err := <-mgrDone; err != nil {
			s.log.Error("stopping the manager", "error", err)
		}
	}()

	var wg sync.WaitGroup
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopWorkers(); wg.Wait() }()
	wg.Go(func() { s.net.run(wctx) })

	err := s.start(ctx)
	if err == nil {
		wg.Go(func() { s.peer.run(wctx) })
		wg.Go(func() { s.st.run(wctx) })
		wg.Go(func() { s.publish(wctx) })
		wg.Go(func() { s.bgp.passwords.run(wctx) })
		wg.Go(func() { s.keys.run(wctx) })
		wg.Go(func() { s.watchBGP(wctx) })
		s.loop(ctx)
	}
	s.shutdown()
	return err
}

// start waits for the caches, joins the other speakers, applies the first
// plan and declares this speaker ready.
func (s *Speaker) start(ctx context.Context) error {
	if err := s.watch(ctx); err != nil {
		return err
	}
	s.log.Info("waiting for the informer caches")
	if !s.mgr.GetCache().WaitForCacheSync(ctx) {
		return nil // ctx ended
	}
	s.peer.joinOnce(ctx)
	s.recompute() // reads the links; announces nothing before ready
	s.mu.Lock()
	s.ready = true
	meta, ifs := s.encodeMetaLocked(), s.localIfaces
	s.mu.Unlock()
	if err := s.ml.SetMeta(meta, time.Second); err != nil {
		// publish retries; until then the others see this node not ready.
		s.log.Warn("publishing readiness", "error", err)
	} else {
		s.mu.Lock()
		s.published, s.publishedIfaces = meta, ifs
		s.mu.Unlock()
	}
	s.recompute()
	s.log.Info("speaker ready", "memberlist", s.localAddr, "members", s.ml.MemberNames())
	return nil
}

func (s *Speaker) trigger() { s.kick.fire() }

// loop recomputes the plan on every change (and every 30 s) until ctx ends.
func (s *Speaker) loop(ctx context.Context) {
	go func() { // memberlist changes are changes too
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.ml.Changes():
				s.trigger()
			}
		}
	}()
	runOn(ctx, s.kick, 30*time.Second, func() {
		start := time.Now()
		s.recompute()
		// Pace: a recompute covers every Service, so during a burst of
		// changes recomputing after each one would cost time quadratic in
		// the number of Services. Resting as long as the last recompute
		// took lets the changes of that time coalesce into the next one
		// (at most half the CPU), and costs nothing while recomputes are
		// quick.
		if took := time.Since(start); took > 10*time.Millisecond {
			select {
			case <-ctx.Done():
			case <-time.After(took):
			}
		}
	})
}

// watchBGP recomputes and rewrites status when a BGP session changes state
// (which peers have a route is reported only for Established sessions).
func (s *Speaker) watchBGP(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.bgp.ann.Changes():
			s.trigger()
		}
	}
}

// shutdown withdraws the BGP routes and closes the sessions with a Cease,
// so routers move traffic before the process is gone; then it leaves
// memberlist, so the other speakers take over the L2 IPs at once, and stops
// answering.
func (s *Speaker) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	s.bgp.close(ctx)
	cancel()
	if err := s.ml.Leave(time.Second); err != nil {
		s.log.Warn("leaving memberlist", "error", err)
	}
	s.l2.close(context.Background())
	if err := s.ml.Shutdown(); err != nil {
		s.log.Warn("memberlist shutdown", "error", err)
	}
	s.log.Info("speaker stopped")
}

func (s *Speaker) onConflict(ce *membership.ConflictError) {
	s.mu.Lock()
	s.conflict, s.conflictAt = ce, time.Now()
	s.mu.Unlock()
	s.st.nodeEvent(corev1.EventTypeWarning, "NodeNameConflict", ce.Error())
	s.trigger()
}

// localView returns this node's interfaces as election sees them.
func (s *Speaker) localView(named []string) (linkState, []election.Interface) {
	st, _ := s.net.current()
	return st, l2plan.LocalInterfaces(st.links, st.prefixes, named)
}

// recompute runs the plan on the current facts and hands the owned set to the
// announcer, which diffs it.
func (s *Speaker) recompute() {
	objs, err := s.listAll()
	if err != nil {
		s.log.Error("reading the cache", "error", err)
		return
	}
	f := facts.Gather(objs)
	view, fresh := s.nodeView(f)

	s.mu.Lock()
	ready, standDown := s.ready, s.standDown
	s.localIfaces = fresh
	s.mu.Unlock()
	// Nothing is announced before ready (caches synced, joined) or while
	// another speaker owns this node's name.
	announce := ready && standDown == nil
	for _, p := range s.protocols {
		p.apply(f, view, announce)
	}
	names := make([]string, 0, len(view.members))
	for _, m := range view.members {
		names = append(names, m.Name)
	}
	s.mu.Lock()
	s.members = names
	s.mu.Unlock()
	s.metaKick.fire()
	s.st.trigger()
}

// encodeMetaLocked encodes this node's memberlist metadata; s.mu is held.
func (s *Speaker) encodeMetaLocked() []byte {
	return l2plan.EncodeMeta(l2plan.Meta{Ready: s.ready, Interfaces: s.localIfaces}, membership.MaxMetaSize)
}

// publish gossips this node's metadata (readiness, interfaces and carrier)
// whenever it changes, one update at a time so the latest always wins. Once
// an update is sent, the plan is recomputed: a regained carrier counts for
// this node only from then on (see l2plan.GateCarrier).
func (s *Speaker) publish(ctx context.Context) {
	runOn(ctx, s.metaKick, time.Minute, s.publishOnce)
}

func (s *Speaker) publishOnce() {
	s.mu.Lock()
	meta, ifs := s.encodeMetaLocked(), s.localIfaces
	same := slices.Equal(meta, s.published)
	s.mu.Unlock()
	if same {
		return
	}
	if err := s.ml.SetMeta(meta, 500*time.Millisecond); err != nil {
		// Not published: the carrier gate must not count this state as
		// known to the others; try again soon.
		s.log.Debug("publishing interface state", "error", err)
		time.AfterFunc(200*time.Millisecond, s.metaKick.fire)
		return
	}
	s.mu.Lock()
	s.published, s.publishedIfaces = meta, ifs
	s.mu.Unlock()
	s.trigger()
}

// nodeView reads this node's links and addresses and the memberlist view.
// It also returns this node's fresh interface view (before the carrier gate).
func (s *Speaker) nodeView(f facts.Facts) (nodeView, []election.Interface) {
	var named []string
	for _, ad := range f.Config.Advertisements() {
		named = append(named, ad.Interfaces...)
	}
	slices.Sort(named)
	st, fresh := s.localView(slices.Compact(named))
	s.mu.Lock()
	ready, published := s.ready, s.publishedIfaces
	s.mu.Unlock()
	ifs := l2plan.GateCarrier(fresh, published)
	v := nodeView{addresses: st.prefixes, links: st.names, interfaces: ifs}
	for _, m := range s.ml.Members() {
		meta, err := l2plan.DecodeMeta(m.Meta)
		if err != nil {
			s.log.Debug("member metadata", "member", m.Name, "error", err)
		}
		if m.Name == s.cfg.NodeName {
			meta = l2plan.Meta{Ready: ready, Interfaces: ifs}
		}
		v.members = append(v.members, l2plan.Member{Name: m.Name, Meta: meta})
	}
	return v, fresh
}

// lastError summarises what this speaker cannot fix by itself.
func (s *Speaker) lastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	if s.standDown != nil {
		parts = append(parts, "not announcing: "+s.standDown.Error())
	} else if s.conflict != nil {
		parts = append(parts, s.conflict.Error())
	}
	for _, p := range s.protocols {
		parts = append(parts, p.problems()...)
	}
	if p := s.keys.currentProblem(); p != "" {
		parts = append(parts, p)
	}
	if _, err := s.net.current(); err != nil {
		parts = append(parts, "reading links: "+err.Error())
	}
	return strings.Join(parts, "; ")
}

// Ready reports whether the speaker has started: caches synced, joined the
// others, first plan applied. A speaker standing down over a node-name
// conflict is ready but announces nothing.
func (s *Speaker) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// Owned returns what the L2 announcer was last told to announce.
func (s *Speaker) Owned() map[netip.Addr][]string { return s.l2.ownedCopy() }

// signal is a coalescing wake-up: any number of fire calls before the
// waiter runs wake it once.
type signal chan struct{}

func newSignal() signal { return make(signal, 1) }

func (c signal) fire() {
	select {
	case c <- struct{}{}:
	default:
	}
}

// runOn calls f whenever wake fires, and every period, until ctx ends.
func runOn(ctx context.Context, wake signal, period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-t.C:
		}
		f()
	}
}
