package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// The BGP benchmarks (issue 8), against the lab's FRR router, in a lab of
// their own:
//
//   - route latency: a Service's IP assigned (its status.loadBalancer, as a
//     watch sees it) -> the router's kernel forwarding the /32 over every
//     node (zebra installed the ECMP route BGP chose); and Service deleted ->
//     route gone;
//   - node death: the node's speaker frozen (SIGSTOP: no FIN, no Cease) and
//     its data link cut at the same moment -> the router's kernel no longer
//     uses the node's next hop, and -> the external client's requests (one
//     every 20 ms, each on a new connection) all succeed again; with BFD
//     (FRR's profile "lab", 100 ms x 3, and a BFDProfile with the same
//     timers), then with BFD off and a 3 s hold time (FRR "timers 1 3",
//     BGPPeer holdTime 3s) for comparison;
//   - scale: a burst of Services (IPv6, one pool) -> the router has every
//     prefix from every node, in its FIB; the speakers' memory; the UPDATEs
//     one more Service costs each session; every route withdrawn after the
//     pool is deleted.
//
// $BGP_TRIALS (route latency trials, default 20), $BGP_FAILOVER_TRIALS (node
// deaths per mode, default 5) and $BGP_SERVICES (default 10000) set the sizes;
// 0 skips that part. $BGP_SCALE_BUDGET (default 30m) bounds the burst: on
// two cores the API server takes about 80 writes a second and each Service
// costs about ten (the Service and its EndpointSlice, the controller's status
// and event, the ServiceAnnouncement and each node's entries and event), so
// 10,000 Services take 20 to 25 minutes; on a busier machine it stops early
// and bgp_scale_services says how many Services were measured. Figures are `BENCH bgp_... value unit` lines on stdout,
// progress goes to stderr; nothing is asserted on time. With $BGP_PPROF set
// the speakers serve /debug/pprof and the scale part saves their heap
// profiles in the lab's log directory.

const (
	bgpPool      = "bench-bgp"          // lab.BGPPoolV4: latency and node death
	bgpScalePool = "bench-scale"        // the burst's pool:
	bgpScaleCIDR = "2001:db8:1:1::/112" // 65,536 addresses behind the router
	poolAnnot    = "portico.dev/address-pool"
	// probeTimeout ends a probe stuck on a dead node before TCP's first SYN
	// retransmission (1 s) could reach a live one.
	probeTimeout = 500 * time.Millisecond
	// stepTimeout bounds each wait for a session, an IP or a route.
	stepTimeout = 2 * time.Minute
)

type bgpBench struct {
	l   *lab.Lab
	fib *fibWatch
	// v4 and v6 are the nodes' data addresses, sorted: the router's
	// neighbours (v4) and the next hops of IPv4 and IPv6 routes.
	v4, v6 []netip.Addr
	// pprof: the speakers serve /debug/pprof (BGP_PPROF).
	pprof bool
}

func benchBGP(name string, nodes int) error {
	trials, err1 := envInt("BGP_TRIALS", 20)
	deaths, err2 := envInt("BGP_FAILOVER_TRIALS", 5)
	services, err3 := envInt("BGP_SERVICES", 10000)
	budget, err4 := envDuration("BGP_SCALE_BUDGET", 30*time.Minute)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return err
	}
	// The burst alone may take the whole budget. With BGP_PPROF the
	// speakers serve /debug/pprof and the scale part saves their heap
	// profiles.
	var flags []string
	if os.Getenv("BGP_PPROF") != "" {
		flags = append(flags, "--pprof-bind-address=127.0.0.1:"+pprofPort)
	}
	l, ctx, done, err := benchLab(name+"-bgpbench", nodes, 30*time.Minute+budget, flags...)
	if err != nil {
		return err
	}
	defer done()
	b := &bgpBench{l: l, pprof: len(flags) > 0}
	for _, n := range l.Nodes {
		b.v4 = append(b.v4, netip.MustParseAddr(n.IPv4))
		b.v6 = append(b.v6, netip.MustParseAddr(n.IPv6))
	}
	slices.SortFunc(b.v4, netip.Addr.Compare)
	slices.SortFunc(b.v6, netip.Addr.Compare)
	if err := b.run(ctx, trials, deaths, services, budget); err != nil {
		return fmt.Errorf("BGP benchmark: %w (logs: %s)", err, l.RunDir)
	}
	return nil
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a whole number, 0 or more", name, v)
	}
	return n, nil
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 5m", name, v)
	}
	return d, nil
}

func (b *bgpBench) run(ctx context.Context, trials, deaths, services int, budget time.Duration) error {
	// Watched from before the first BGP route, so that every nexthop
	// group zebra creates is known.
	fib, err := watchFIB(b.l.RouterNS)
	if err != nil {
		return err
	}
	b.fib = fib
	defer fib.Close()
	undo, err := b.create(ctx, pool(bgpPool, lab.BGPPoolV4), advertisement(bgpPool))
	defer undo()
	if err != nil {
		return err
	}
	if trials > 0 {
		if err := b.routeLatency(ctx, trials); err != nil {
			return fmt.Errorf("route latency: %w", err)
		}
	}
	if deaths > 0 {
		for _, bfd := range []bool{true, false} {
			if err := b.nodeDeath(ctx, deaths, bfd); err != nil {
				return fmt.Errorf("node death: %w", err)
			}
		}
	}
	fib.Close() // the burst would only flood it
	if services > 0 {
		if err := b.scale(ctx, services, budget); err != nil {
			return fmt.Errorf("%d Services: %w", services, err)
		}
	}
	return nil
}

func pool(name string, addrs ...porticov1.AddressEntry) *porticov1.IPAddressPool {
	auto := false
	return &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: porticov1.IPAddressPoolSpec{AutoAssign: &auto, Addresses: addrs}}
}

func advertisement(poolName string) *porticov1.BGPAdvertisement {
	a := &porticov1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: poolName}}
	a.Spec.IPAddressPools = []string{poolName}
	return a
}

// benchPeer is a BGPPeer from every node to the router's IPv4 address.
func benchPeer(name string, hold time.Duration) *porticov1.BGPPeer {
	return &porticov1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: porticov1.BGPPeerSpec{
		MyASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: lab.RouterIPv4,
		HoldTime: &metav1.Duration{Duration: hold}, ConnectTime: &metav1.Duration{Duration: time.Second},
	}}
}

// create creates objs in order and returns a function that deletes the
// ones it created, in reverse order (also after a failure).
func (b *bgpBench) create(ctx context.Context, objs ...client.Object) (func(), error) {
	var done []client.Object
	undo := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, o := range slices.Backward(done) {
			if err := b.l.Client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				progress("cleanup: deleting %T %s: %v", o, o.GetName(), err)
			}
		}
	}
	for _, o := range objs {
		if err := b.l.Client.Create(ctx, o); err != nil {
			return undo, fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
		done = append(done, o)
	}
	return undo, nil
}

// peer creates p and waits for every node's session at the router (and its
// BFD session, with bfd). The function it returns deletes p and waits for
// the sessions to close, so that the next peer starts new ones.
func (b *bgpBench) peer(ctx context.Context, p *porticov1.BGPPeer, bfd bool) (func(), error) {
	undo, err := b.create(ctx, p)
	closed := func() {
		undo()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.waitSessions(ctx, false, false); err != nil {
			progress("cleanup: %v", err)
		}
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, stepTimeout)
		defer cancel()
		err = b.waitSessions(ctx, true, bfd)
	}
	return closed, err
}

// waitSessions waits until every node's session at the router is
// Established (up) and, with bfd, its BFD session up; or until none is
// Established (!up).
func (b *bgpBench) waitSessions(ctx context.Context, up, bfd bool) error {
	var last string
	for {
		state, err := b.sessions(bfd)
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprint(state)
			ok := true
			for _, a := range b.v4 {
				est := strings.HasPrefix(state[a], "Established")
				ok = ok && est == up && (!up || !bfd || state[a] == "Established+BFD")
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the router's sessions with the nodes: want up=%v bfd=%v, last seen %s", up, bfd, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sessions returns the router's view of each node's session ("Established",
// "Active", ...; "Established+BFD" when bfd and its BFD session is up).
func (b *bgpBench) sessions(bfd bool) (map[netip.Addr]string, error) {
	nbs, err := b.l.Router.Neighbors()
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]string{}
	for a, n := range nbs {
		out[a] = n.State
	}
	if !bfd {
		return out, nil
	}
	peers, err := b.l.Router.BFDPeers()
	if err != nil {
		return nil, err
	}
	for _, p := range peers {
		if p.Status == "up" && out[p.Peer] == "Established" {
			out[p.Peer] = "Established+BFD"
		}
	}
	return out, nil
}

func hostPrefix(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, ip.BitLen()) }

// checkNextHops confirms with zebra (show ip route P json) what the kernel
// notifications said: p's next hops are want.
func (b *bgpBench) checkNextHops(p netip.Prefix, want []netip.Addr) error {
	var got []netip.Addr
	for range 20 {
		fib, err := b.l.Router.FIB(p)
		got = nil
		if fib != nil {
			got = fib.NextHops
		}
		if err == nil && slices.Equal(got, want) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("zebra's route for %s has next hops %v, want %v", p, got, want)
}

// routeTimes is one Service's way to the router.
type routeTimes struct {
	ip                        netip.Addr
	created, assigned, routed time.Time
}

// serviceRoute creates an IPv4 Service in the bench pool and waits until
// the router's kernel forwards its IP over every node.
func (b *bgpBench) serviceRoute(ctx context.Context, name string) (routeTimes, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	var rt routeTimes
	w, err := b.l.Kube.CoreV1().Services(lab.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return rt, err
	}
	defer w.Stop()
	rt.created = time.Now()
	if _, err := b.l.CreateService(ctx, name, lab.ServiceOpts{Annotations: map[string]string{poolAnnot: bgpPool}}); err != nil {
		return rt, err
	}
	for !rt.ip.IsValid() {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rt, fmt.Errorf("the watch of Service %s ended", name)
			}
			if svc, _ := ev.Object.(*corev1.Service); svc != nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
				rt.assigned = time.Now()
				if rt.ip, err = netip.ParseAddr(svc.Status.LoadBalancer.Ingress[0].IP); err != nil {
					return rt, fmt.Errorf("the Service %s: %w", name, err)
				}
			}
		case <-ctx.Done():
			return rt, fmt.Errorf("the Service %s got no IP: %w", name, ctx.Err())
		}
	}
	if rt.routed, err = b.fib.wait(ctx, hostPrefix(rt.ip), len(b.v4), rt.created); err != nil {
		return rt, err
	}
	return rt, b.checkNextHops(hostPrefix(rt.ip), b.v4)
}

// routeLatency: IP assigned -> the router forwards over every node; Service
// deleted -> the route is gone (before the next trial, which may get the
// same IP).
func (b *bgpBench) routeLatency(ctx context.Context, trials int) error {
	closePeer, err := b.peer(ctx, benchPeer("bench-latency", 9*time.Second), false)
	defer closePeer()
	if err != nil {
		return err
	}
	var assigned, created, withdrawn []time.Duration
	for i := range trials {
		name := fmt.Sprintf("bgp-latency-%d", i)
		rt, err := b.serviceRoute(ctx, name)
		if err != nil {
			_ = b.l.DeleteService(ctx, name)
			return err
		}
		deleted := time.Now()
		if err := b.l.DeleteService(ctx, name); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, stepTimeout)
		gone, err := b.fib.wait(wctx, hostPrefix(rt.ip), 0, deleted)
		cancel()
		if err != nil {
			return err
		}
		progress("route latency %d: %s assigned %s after the create, routed over %d nodes %s later; withdrawn %s after the delete",
			i+1, rt.ip, ms(rt.assigned.Sub(rt.created)), len(b.v4), ms(rt.routed.Sub(rt.assigned)), ms(gone.Sub(deleted)))
		assigned = append(assigned, rt.routed.Sub(rt.assigned))
		created = append(created, rt.routed.Sub(rt.created))
		withdrawn = append(withdrawn, gone.Sub(deleted))
	}
	reportQuantiles("bgp_route_latency", assigned, 50, 90)
	reportQuantiles("bgp_route_latency_from_create", created, 50, 90)
	reportQuantiles("bgp_route_withdraw_latency", withdrawn, 50, 90)
	return nil
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// nodeDeath kills each node in turn, trials times, with BFD or with only
// the hold timer, and reports how long the router kept the dead next hop
// and how long the external client saw failures.
func (b *bgpBench) nodeDeath(ctx context.Context, trials int, bfd bool) error {
	r := b.l.Router
	h := int(r.HoldTime / time.Second)
	mode, hold := "hold_3s", 3*time.Second
	set, reset := []string{"timers 1 3"}, []string{fmt.Sprintf("timers %d %d", max(h/3, 1), h)}
	peer := benchPeer("bench-hold", hold)
	var objs []client.Object
	if bfd {
		ivl, mult := int32(lab.BFDInterval.Milliseconds()), int32(lab.BFDMultiplier)
		mode, hold = fmt.Sprintf("bfd_%dms_x%d", ivl, mult), 9*time.Second
		set, reset = []string{"bfd profile " + lab.BFDProfile}, []string{"no bfd"}
		peer = benchPeer("bench-bfd", hold)
		peer.Spec.BFDProfile = "bench-bfd"
		objs = append(objs, &porticov1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "bench-bfd"},
			Spec: porticov1.BFDProfileSpec{ReceiveInterval: &ivl, TransmitInterval: &ivl, DetectMultiplier: &mult}})
	}
	progress("node death, %s: router neighbours %q, BGPPeer holdTime %s", mode, set, hold)
	for _, a := range b.v4 {
		if err := r.Neighbor(a.String(), set...); err != nil {
			return err
		}
		defer func() {
			if err := r.Neighbor(a.String(), reset...); err != nil {
				progress("cleanup: %v", err)
			}
		}()
	}
	undo, err := b.create(ctx, objs...)
	defer undo()
	if err != nil {
		return err
	}
	closePeer, err := b.peer(ctx, peer, bfd)
	defer closePeer()
	if err != nil {
		return err
	}
	name := "bgp-death-" + strings.SplitN(mode, "_", 2)[0]
	defer func() { _ = b.l.DeleteService(context.Background(), name) }()
	rt, err := b.serviceRoute(ctx, name)
	if err != nil {
		return err
	}
	var withdrawn, traffic []time.Duration
	for i := range trials {
		n := b.l.Nodes[i%len(b.l.Nodes)]
		w, t, err := b.killNode(ctx, rt.ip, n, bfd)
		if err != nil {
			return fmt.Errorf("%s, killing %s: %w", mode, n.Name, err)
		}
		progress("node death, %s, %d: %s: the router's kernel dropped its next hop after %s; the client's requests all succeed again after %s",
			mode, i+1, n.Name, ms(w), ms(t))
		withdrawn, traffic = append(withdrawn, w), append(traffic, t)
	}
	reportDurations("bgp_node_death_"+mode+"_withdraw", withdrawn)
	reportDurations("bgp_node_death_"+mode+"_traffic", traffic)
	return nil
}

// killNode freezes n's speaker and cuts its data link, measures, then heals
// n (link back, speaker continued) and waits for its session and route.
func (b *bgpBench) killNode(ctx context.Context, ip netip.Addr, n *lab.Node, bfd bool) (withdraw, traffic time.Duration, err error) {
	link, err := openLink(b.l.L2NS, n.Port)
	if err != nil {
		return 0, 0, err
	}
	defer link.close()
	probes := startProbes(ctx, b.l, ip)
	defer probes.stop()
	if err := probes.waitAnswers(ctx, 10); err != nil {
		return 0, 0, err
	}
	pid := b.l.Proc("speaker-" + n.Name).PID
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return 0, 0, err
	}
	cutErr := link.set(false)
	defer func() {
		// Heal: the link first, so that the continued speaker finds it.
		err = errors.Join(err, link.set(true), syscall.Kill(pid, syscall.SIGCONT))
		healed := time.Now()
		ctx, cancel := context.WithTimeout(ctx, stepTimeout)
		defer cancel()
		if err == nil {
			_, err = b.fib.wait(ctx, hostPrefix(ip), len(b.v4), healed)
		}
		if err == nil {
			err = b.waitSessions(ctx, true, bfd)
		}
		progress("healed %s in %s", n.Name, ms(time.Since(healed)))
	}()
	if cutErr != nil {
		return 0, 0, cutErr
	}
	others := slices.DeleteFunc(slices.Clone(b.v4), func(a netip.Addr) bool { return a.String() == n.IPv4 })
	wctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	at, err := b.fib.wait(wctx, hostPrefix(ip), len(others), killed)
	if err != nil {
		return 0, 0, err
	}
	if err := b.checkNextHops(hostPrefix(ip), others); err != nil {
		return 0, 0, err
	}
	time.Sleep(time.Second) // the client keeps asking meanwhile
	traffic, failed, err := recovery(probes.stop(), killed)
	if failed == 0 {
		progress("note: none of the client's requests went to %s while it was dead", n.Name)
	}
	return at.Sub(killed), traffic, err
}

// recovery returns how long after killed the client's requests all
// succeed again: when the first request sent after the last failed one was
// answered (0 when none failed), and how many failed. Each request meets
// the dead next hop with a chance of one in the number of nodes, so the
// last failed one comes on average a few probe intervals before the route
// changes: this figure can be a little below the withdrawal's.
func recovery(ps []lab.Probe, killed time.Time) (time.Duration, int, error) {
	var last time.Time
	failed := 0
	for _, p := range ps {
		if p.Err != nil && !p.At.Before(killed) {
			failed++
			last = p.Sent
		}
	}
	if failed == 0 {
		return 0, 0, nil
	}
	for _, p := range ps {
		if p.Sent.After(last) && p.Err == nil {
			return p.At.Sub(killed), failed, nil
		}
	}
	return 0, failed, fmt.Errorf("no request succeeded after the last failed one (%d failed)", failed)
}

// dataLink sets a node's bridge port up or down through netlink, without
// the few milliseconds an `ip` command takes, so that the cut follows the
// SIGSTOP at once.
type dataLink struct {
	h    *netlink.Handle
	link netlink.Link
}

func openLink(ns, name string) (*dataLink, error) {
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, err
	}
	link, err := h.LinkByName(name)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("%s in %s: %w", name, ns, err)
	}
	return &dataLink{h: h, link: link}, nil
}

func (d *dataLink) set(up bool) error {
	if up {
		return d.h.LinkSetUp(d.link)
	}
	return d.h.LinkSetDown(d.link)
}

func (d *dataLink) close() { d.h.Close() }

// probes asks http://ip/ from the external client every probeEvery, each
// request on a new connection, until stopped.
type probes struct {
	stopOnce sync.Once
	stopc    chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	got      []lab.Probe
}

func startProbes(ctx context.Context, l *lab.Lab, ip netip.Addr) *probes {
	p := &probes{stopc: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		for {
			sent := time.Now()
			p.wg.Go(func() {
				node, err := l.ExtHTTPGet(ctx, ip, probeTimeout)
				p.mu.Lock()
				p.got = append(p.got, lab.Probe{Sent: sent, At: time.Now(), Node: node, Err: err})
				p.mu.Unlock()
			})
			select {
			case <-p.stopc:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// waitAnswers waits for n answers in a row.
func (p *probes) waitAnswers(ctx context.Context, n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		ok, last := 0, error(nil)
		for _, pr := range slices.Backward(p.got) {
			if pr.Err != nil {
				last = pr.Err
				break
			}
			ok++
		}
		p.mu.Unlock()
		if ok >= n {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the external client gets no steady answers: %v", last)
		}
		time.Sleep(probeEvery)
	}
}

// stop stops probing, waits for the requests in flight and returns every
// probe by sending time.
func (p *probes) stop() []lab.Probe {
	p.stopOnce.Do(func() { close(p.stopc) })
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	slices.SortFunc(p.got, func(x, y lab.Probe) int { return x.Sent.Compare(y.Sent) })
	return slices.Clone(p.got)
}

// scale: a burst of IPv6 Services -> every prefix at the router from every
// node and in its FIB; speaker memory; UPDATEs for one more Service; every
// route withdrawn after the pool's deletion. The burst stops early when it
// runs past budget (the Services created by then are measured, and
// bgp_scale_services says how many). Its Services go with the lab (its
// etcd data is removed at teardown): deleting them one by one would take as
// long as creating them.
func (b *bgpBench) scale(ctx context.Context, count int, budget time.Duration) error {
	closePeer, err := b.peer(ctx, benchPeer("bench-scale", 9*time.Second), false)
	defer closePeer()
	if err != nil {
		return err
	}
	undo, err := b.create(ctx, pool(bgpScalePool, bgpScaleCIDR), advertisement(bgpScalePool))
	defer undo()
	if err != nil {
		return err
	}
	opts := lab.ServiceOpts{IPv6: true, Annotations: map[string]string{poolAnnot: bgpScalePool}}
	before, err := b.updatesRecv()
	if err != nil {
		return err
	}
	cpu0, rev0 := b.cpuUse(), b.revision(ctx)
	start := time.Now()
	burst, endBurst := context.WithCancel(ctx)
	go b.logPrefixes(burst, start)
	n, err := createServices(ctx, b.l, count, start.Add(budget), "bgp-scale-%05d", opts)
	endBurst()
	if err != nil {
		return err
	}
	created := time.Since(start)
	if n < count {
		progress("the burst stopped at %d of %d Services after %s (BGP_SCALE_BUDGET=%s)", n, count, ms(created), budget)
	}
	progress("%d Services created in %s (%.0f/s); waiting for the router", n, ms(created), float64(n)/created.Seconds())
	converged, err := b.waitPrefixes(ctx, n)
	if err != nil {
		return err
	}
	b.reportCPU(cpu0, b.cpuUse(), converged.Sub(start))
	if rev := b.revision(ctx); rev0 > 0 && rev > 0 {
		progress("the API server wrote %d objects during the burst: %.1f per Service", rev-rev0, float64(rev-rev0)/float64(max(n, 1)))
	}
	report("bgp_scale_services", float64(n), "services")
	report("bgp_scale_paths_at_router", float64(n*len(b.v4)), "paths")
	report("bgp_scale_create_burst", created.Seconds(), "s")
	report("bgp_scale_converge", converged.Sub(start).Seconds(), "s")
	for _, name := range []string{fmt.Sprintf("bgp-scale-%05d", 0), fmt.Sprintf("bgp-scale-%05d", n-1)} {
		ip, err := b.l.WaitIngress(ctx, name)
		if err == nil {
			err = b.checkNextHops(hostPrefix(ip), b.v6)
		}
		if err != nil {
			return err
		}
	}
	if err := b.reportMemory("bgp_scale_"); err != nil {
		return err
	}
	b.saveHeapProfiles()
	after, err := b.waitQuiet(ctx)
	if err != nil {
		return err
	}
	b.reportUpdates("bgp_scale_burst_updates_", before, after)

	// One more Service: one UPDATE per session, not a resend of the table.
	if _, err := b.l.CreateService(ctx, "bgp-scale-extra", opts); err != nil {
		return err
	}
	if _, err := b.waitPrefixes(ctx, n+1); err != nil {
		return err
	}
	more, err := b.waitQuiet(ctx)
	if err != nil {
		return err
	}
	b.reportUpdates("bgp_scale_add_one_updates_", after, more)

	// Withdraw everything: the pool goes.
	start = time.Now()
	if err := b.l.Client.Delete(ctx, pool(bgpScalePool)); err != nil {
		return err
	}
	gone, err := b.waitPrefixes(ctx, 0)
	if err != nil {
		return err
	}
	report("bgp_scale_withdraw_pool_deleted", gone.Sub(start).Seconds(), "s")
	return nil
}

// logPrefixes says every 15 s how far the router got, until ctx ends.
func (b *bgpBench) logPrefixes(ctx context.Context, start time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(15 * time.Second):
		}
		got, fib, err := b.prefixCounts()
		progress("%s into the burst: the router received %v IPv6 prefixes, %d in its FIB (%v)", ms(time.Since(start)), got, fib, err)
	}
}

// revision returns etcd's revision (0 when it cannot): a list with a
// limit is read from etcd, and its resourceVersion is the revision then.
func (b *bgpBench) revision(ctx context.Context) int64 {
	var list corev1.NamespaceList
	if err := b.l.Client.List(ctx, &list, client.Limit(1)); err != nil {
		return 0
	}
	rv, _ := strconv.ParseInt(list.ResourceVersion, 10, 64)
	return rv
}

// cpuUse reads the CPU time used so far by the lab's main processes, this
// one (the kube-proxy stand-in and the HTTP responders run in it) and the
// whole machine ("machine").
func (b *bgpBench) cpuUse() map[string]time.Duration {
	names := []string{"kube-apiserver", "etcd", "controller", "router-bgpd", "router-zebra"}
	for _, n := range b.l.Nodes {
		names = append(names, "speaker-"+n.Name)
	}
	out := map[string]time.Duration{}
	for _, name := range names {
		if p := b.l.Proc(name); p != nil {
			out[name] = procCPU(fmt.Sprintf("/proc/%d/stat", p.PID), 13)
		}
	}
	out["bench"] = procCPU("/proc/self/stat", 13)
	out["machine"] = procCPU("/proc/stat", 0)
	return out
}

// procCPU adds the user and system time of /proc/PID/stat (fields 14 and 15,
// counted from 1: first=13) or, for /proc/stat (first=0), of every CPU
// except idle and iowait.
func procCPU(file string, first int) time.Duration {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	s := string(data)
	var f []string
	if first == 0 {
		f = strings.Fields(strings.SplitN(s, "\n", 2)[0])[1:] // cpu user nice system idle iowait irq softirq ...
		f = append(f[:3], f[5:7]...)
	} else {
		// The command name (field 2) may hold spaces: count from after ')'.
		f = strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[first-2 : first]
	}
	var ticks int64
	for _, v := range f {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// reportCPU says on stderr where the machine's CPU went during the burst:
// on this machine other work often shares the two cores.
func (b *bgpBench) reportCPU(before, after map[string]time.Duration, wall time.Duration) {
	var parts []string
	lab := time.Duration(0)
	for _, name := range slices.Sorted(maps.Keys(after)) {
		d := after[name] - before[name]
		if name != "machine" {
			lab += d
			parts = append(parts, fmt.Sprintf("%s %.1fs", name, d.Seconds()))
		}
	}
	machine := after["machine"] - before["machine"]
	progress("CPU during the burst (%s wall): %s; the lab %.1fs of the machine's %.1fs",
		ms(wall), strings.Join(parts, ", "), lab.Seconds(), machine.Seconds())
}

// pprofPort is where the speakers serve /debug/pprof with BGP_PPROF set,
// on the loopback of their node namespace.
const pprofPort = "6060"

// saveHeapProfiles saves each speaker's heap profile in the lab's run
// directory (go tool pprof reads them).
func (b *bgpBench) saveHeapProfiles() {
	if !b.pprof {
		return
	}
	for _, n := range b.l.Nodes {
		file := filepath.Join(b.l.RunDir, "heap-"+n.Name+".pprof")
		out, err := exec.Command("ip", "netns", "exec", n.NS, "curl", "-sS", "-o", file,
			"http://127.0.0.1:"+pprofPort+"/debug/pprof/heap?gc=1").CombinedOutput()
		if err != nil {
			progress("heap profile of the speaker on %s: %v: %s", n.Name, err, out)
			continue
		}
		progress("heap profile of the speaker on %s: %s", n.Name, file)
		// The text form ends with the runtime's MemStats: how the resident
		// memory splits into live heap, heap not yet returned, stacks and
		// the collector's own.
		text := strings.TrimSuffix(file, ".pprof") + ".txt"
		if out, err := exec.Command("ip", "netns", "exec", n.NS, "curl", "-sS", "-o", text,
			"http://127.0.0.1:"+pprofPort+"/debug/pprof/heap?debug=1").CombinedOutput(); err != nil {
			progress("heap statistics of the speaker on %s: %v: %s", n.Name, err, out)
		}
	}
}

// reportMemory reports the speakers' largest resident memory now (VmRSS),
// at its peak (VmHWM), and its private part (RssAnon: VmRSS less the pages
// of the 75 MB executable and other files it has read, which are shared and
// can be dropped).
func (b *bgpBench) reportMemory(fig string) error {
	var rss, hwm, anon int
	for _, n := range b.l.Nodes {
		pid := b.l.Proc("speaker-" + n.Name).PID
		var v [3]int
		for i, field := range []string{"VmRSS", "VmHWM", "RssAnon"} {
			kb, err := procStatusKB(pid, field)
			if err != nil {
				return err
			}
			v[i] = kb
		}
		progress("speaker on %s: VmRSS %d kB, VmHWM %d kB, RssAnon %d kB", n.Name, v[0], v[1], v[2])
		rss, hwm, anon = max(rss, v[0]), max(hwm, v[1]), max(anon, v[2])
	}
	report(fig+"speaker_rss_max", float64(rss)/1024, "MiB")
	report(fig+"speaker_vmhwm_max", float64(hwm)/1024, "MiB")
	report(fig+"speaker_rss_anon_max", float64(anon)/1024, "MiB")
	return nil
}

// reportUpdates reports, per node, the UPDATEs the router received between
// two readings.
func (b *bgpBench) reportUpdates(fig string, before, after map[netip.Addr]int) {
	for _, n := range b.l.Nodes {
		a := netip.MustParseAddr(n.IPv4)
		report(fig+n.Name, float64(after[a]-before[a]), "updates")
	}
}

// waitPrefixes waits until the router has want IPv6 prefixes from every
// node and want BGP routes in its IPv6 FIB, and returns when it saw that.
func (b *bgpBench) waitPrefixes(ctx context.Context, want int) (time.Time, error) {
	var last string
	lastLog := time.Now()
	for {
		got, fib, err := b.prefixCounts()
		now := time.Now()
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("received %v, %d in the FIB", got, fib)
			ok := fib == want
			for _, a := range b.v4 {
				ok = ok && got[a] == want
			}
			if ok {
				return now, nil
			}
		}
		if now.Sub(lastLog) > 10*time.Second {
			progress("waiting for %d prefixes from each node: %s", want, last)
			lastLog = now
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("the router never had %d IPv6 prefixes from every node: %s", want, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// prefixCounts returns the IPv6 prefixes the router accepted from each
// neighbour and the BGP routes zebra has in the kernel for IPv6.
func (b *bgpBench) prefixCounts() (map[netip.Addr]int, int, error) {
	type peers struct {
		Peers map[string]struct {
			PfxRcd int `json:"pfxRcd"`
		} `json:"peers"`
	}
	var sum struct {
		peers
		IPv6 *peers `json:"ipv6Unicast"`
	}
	if err := b.l.Router.Show("show bgp ipv6 unicast summary json", &sum); err != nil {
		return nil, 0, err
	}
	if sum.IPv6 != nil {
		sum.peers = *sum.IPv6
	}
	got := map[netip.Addr]int{}
	for s, p := range sum.Peers {
		if a, err := netip.ParseAddr(s); err == nil {
			got[a] = p.PfxRcd
		}
	}
	var routes struct {
		Routes []struct {
			Type string `json:"type"`
			FIB  int    `json:"fib"`
		} `json:"routes"`
	}
	if err := b.l.Router.Show("show ipv6 route summary json", &routes); err != nil {
		return nil, 0, err
	}
	fib := 0
	for _, r := range routes.Routes {
		if strings.Contains(r.Type, "bgp") {
			fib += r.FIB
		}
	}
	return got, fib, nil
}

// updatesRecv returns the UPDATE messages the router received from each
// neighbour (show bgp neighbors json: messageStats.updatesRecv).
func (b *bgpBench) updatesRecv() (map[netip.Addr]int, error) {
	var raw map[string]json.RawMessage
	if err := b.l.Router.Show("show bgp neighbors json", &raw); err != nil {
		return nil, err
	}
	out := map[netip.Addr]int{}
	for s, msg := range raw {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		var n struct {
			Stats struct {
				UpdatesRecv int `json:"updatesRecv"`
			} `json:"messageStats"`
		}
		if err := json.Unmarshal(msg, &n); err != nil {
			return nil, fmt.Errorf("router: neighbour %s: %w", s, err)
		}
		out[a] = n.Stats.UpdatesRecv
	}
	return out, nil
}

// waitQuiet waits until no neighbour's UPDATE counter moved for a second,
// and returns the counters.
func (b *bgpBench) waitQuiet(ctx context.Context) (map[netip.Addr]int, error) {
	last, err := b.updatesRecv()
	for err == nil {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		var cur map[netip.Addr]int
		if cur, err = b.updatesRecv(); err == nil && maps.Equal(cur, last) {
			return cur, nil
		}
		last = cur
	}
	return nil, err
}
