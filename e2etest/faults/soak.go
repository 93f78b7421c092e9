package faults

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// The soak's pool: on-link for the client, disjoint from the lab's other
// pools. Ten IPv4 addresses for at most four IPv4 Services, so freed
// addresses are handed out again while their old announcement may linger.
const (
	SoakPoolV4 = "198.51.100.240-198.51.100.249"
	SoakPoolV6 = "2001:db8:1::2:0/120"
)

// SoakOpts shape a soak.
type SoakOpts struct {
	// Duration of churn and faults: at least one whole cycle of faults
	// runs, and the fault in progress at the end is healed first.
	Duration time.Duration
	// Live is how many Services the churn keeps; it creates one when fewer
	// exist and deletes the oldest otherwise, every ChurnEvery.
	Live       int
	ChurnEvery time.Duration
	// Down is how long a killed speaker stays dead and a flapped link
	// down; Gap the pause after each fault; APIOutage how long the API
	// server stays stopped.
	Down, Gap, APIOutage time.Duration
	// Grace is the failover allowance, see SoakResult.Unanswered.
	Grace time.Duration
	// Settle bounds the wait for the end state after the faults stop.
	Settle time.Duration
	// Progress, when set, receives a line per step.
	Progress func(string, ...any)
}

// SoakResult is what a soak saw. Sampling: every 500 ms the client sends
// one ARP request or neighbour solicitation for every IP a soak Service
// holds (lab.Sampler) and waits 300 ms for answers.
type SoakResult struct {
	Elapsed                                          time.Duration
	Created, Deleted, APIErrors                      int
	SpeakerKills, LinkFlaps, ControllerRestarts      int
	APIOutages                                       int
	Rounds, Samples                                  int // rounds, and IPs asked in all rounds
	Unanswered, UnansweredLongest, UnansweredExcused time.Duration
	// Unanswered counts, per IP, the time of every round in which an IP
	// that should have been answered was not, summed over IPs (IP-seconds);
	// UnansweredLongest is the longest such run for one IP. An IP should be
	// answered from Grace after its Service got it (as the watch saw it)
	// until the soak asks to delete its Service. Not counted (counted in
	// UnansweredExcused instead): rounds in which the node that last answered
	// for the IP is in a fault window, which opens when the soak kills that
	// node's speaker or sets its data link down and closes Grace after the
	// speaker was started again or the link set up again.
	//
	// DoubleAnswers are samples in which two MACs answered one request;
	// ForeignAnswers samples answered by a MAC that is no node's.
	DoubleAnswers, ForeignAnswers []string
	// Duplicates are IPs held by two Services at once (watch and final
	// list of every Service).
	Duplicates []string
	// After the faults and the churn stop: Services without an IP, and how
	// long until a round in which every soak Service's IPs were answered by
	// exactly one node (AllAnswered false: not within Settle).
	WithoutIP     []string
	AllAnswered   bool
	AnsweredAfter time.Duration
	Leaks
	// LeaksAfterCleanup are the leaks left once every soak Service is
	// deleted.
	LeaksAfterCleanup Leaks
}

// Soak runs Services churn under faults in l, as SoakOpts say, then checks
// the end state. It needs the lab as Up left it and leaves it so. The error
// is for a soak that could not run (the lab broke); what went wrong in
// Portico is in the result.
func Soak(ctx context.Context, l *lab.Lab, o SoakOpts) (*SoakResult, error) {
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	const pool, label = "soak", "lab.portico.dev/soak"
	auto := false
	p := &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: pool},
		Spec: porticov1.IPAddressPoolSpec{AutoAssign: &auto, Addresses: []porticov1.AddressEntry{SoakPoolV4, SoakPoolV6}}}
	adv := &porticov1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: pool},
		Spec: porticov1.L2AdvertisementSpec{PoolAndNodeSelection: porticov1.PoolAndNodeSelection{IPAddressPools: []string{pool}}}}
	for _, obj := range []client.Object{p, adv} {
		if err := l.Client.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = deleteServices(cctx, l, label)
		_ = l.Client.Delete(cctx, adv)
		_ = l.Client.Delete(cctx, p)
	}()
	tctx, stopTracking := context.WithCancel(ctx)
	defer stopTracking()
	tr, err := track(tctx, l.Kube, lab.Namespace, label+"=1")
	if err != nil {
		return nil, err
	}
	sampler, err := l.NewSampler()
	if err != nil {
		return nil, err
	}
	defer sampler.Close()

	s := &soak{l: l, o: o, tr: tr, res: &SoakResult{}, deleting: map[string]time.Time{},
		windows: map[string][]window{}, label: label, pool: pool}
	start := time.Now()
	fctx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	var wg sync.WaitGroup
	churnCtx, stopChurn := context.WithCancel(ctx)
	defer stopChurn()
	wg.Go(func() { s.churn(churnCtx) })
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	var sampleErr error
	sampling.Go(func() { sampleErr = s.sample(sampleCtx, sampler) })
	defer func() { stopSampling(); sampling.Wait() }()

	faultErr := s.faults(fctx, start.Add(o.Duration))
	ended := time.Now()
	stopChurn()
	wg.Wait()
	s.res.Elapsed = time.Since(start)
	o.Progress("faults and churn stopped after %s: %d Services created, %d deleted", s.res.Elapsed.Round(time.Second), s.res.Created, s.res.Deleted)
	if faultErr != nil {
		return s.res, faultErr
	}
	// The end state: every soak Service has an IP, answered by one node
	// (the sampling notices, see account).
	s.mu.Lock()
	s.ended = ended
	s.mu.Unlock()
	settle, cancel := context.WithTimeout(ctx, o.Settle)
	defer cancel()
	for !s.answered() && settle.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	stopSampling()
	sampling.Wait()
	if sampleErr != nil {
		return s.res, sampleErr
	}
	for svc, given := range tr.served() {
		if len(given) == 0 {
			s.res.WithoutIP = append(s.res.WithoutIP, svc)
		}
	}
	dups, err := tr.problems()
	if err != nil {
		return s.res, err
	}
	s.res.Duplicates = dups
	listed, err := APIDuplicates(ctx, l)
	if err != nil {
		return s.res, err
	}
	s.res.Duplicates = append(s.res.Duplicates, listed...)
	lctx, cancel1 := context.WithTimeout(ctx, o.Settle)
	defer cancel1()
	if s.res.Leaks, err = waitNoLeaks(lctx, l); err != nil {
		return s.res, err
	}
	// Nothing changes now: events written meanwhile pile up.
	if s.res.Events, s.res.EventsIdleGrowth, err = idleEvents(ctx, l, o.Gap); err != nil {
		return s.res, err
	}
	o.Progress("end state: %d Services without an IP, all answered %v (%s after the faults), leaks %+v",
		len(s.res.WithoutIP), s.res.AllAnswered, s.res.AnsweredAfter.Round(time.Millisecond), s.res.Leaks)
	// Cleanup, then nothing of the soak may remain.
	if err := deleteServices(ctx, l, label); err != nil {
		return s.res, err
	}
	cctx, cancel2 := context.WithTimeout(ctx, o.Settle)
	defer cancel2()
	if s.res.LeaksAfterCleanup, err = waitNoLeaks(cctx, l); err != nil {
		return s.res, err
	}
	return s.res, nil
}

type soak struct {
	l     *lab.Lab
	o     SoakOpts
	tr    *tracker
	label string
	pool  string

	mu       sync.Mutex
	res      *SoakResult
	deleting map[string]time.Time // Service -> when the soak asked to delete it
	windows  map[string][]window  // node -> its fault windows
	// ended is when the faults and the churn stopped (zero before).
	ended time.Time
}

func (s *soak) answered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.res.AllAnswered
}

// window is a node's fault window; end is zero while it is open.
type window struct{ start, end time.Time }

func (s *soak) openWindow(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.windows[node] = append(s.windows[node], window{start: time.Now()})
}

func (s *soak) closeWindow(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.windows[node]
	ws[len(ws)-1].end = time.Now().Add(s.o.Grace)
}

func (s *soak) count(f *int) {
	s.mu.Lock()
	*f++
	s.mu.Unlock()
}

// faults runs fault after fault, with o.Gap before each: the whole first
// cycle, then until deadline; it returns as soon as the last fault is
// healed.
func (s *soak) faults(ctx context.Context, deadline time.Time) error {
	for cycle := 0; ; cycle++ {
		for _, fault := range s.cycle(cycle) {
			if cycle > 0 && !time.Now().Before(deadline) {
				return nil
			}
			if err := pause(ctx, s.o.Gap); err != nil {
				return err
			}
			if err := fault(ctx); err != nil {
				return err
			}
		}
	}
}

// nodeFault breaks node n, counts it, waits o.Down and heals it, with n's
// fault window open from the break to Grace after the heal.
func (s *soak) nodeFault(ctx context.Context, n *lab.Node, counter *int, breakIt, heal func() error) error {
	s.openWindow(n.Name)
	if err := breakIt(); err != nil {
		return err
	}
	s.count(counter)
	err := pause(ctx, s.o.Down)
	if err := heal(); err != nil {
		return err
	}
	s.closeWindow(n.Name)
	return err
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// cycle is one round of faults, each healed before it returns: kill a
// speaker and start it again, flap another node's data link, restart the
// controller, and (every other cycle, the first included) stop the API
// server.
func (s *soak) cycle(c int) []func(context.Context) error {
	l, o := s.l, s.o
	n, m := l.Nodes[c%len(l.Nodes)], l.Nodes[(c+1)%len(l.Nodes)]
	faults := []func(context.Context) error{
		func(ctx context.Context) error {
			o.Progress("cycle %d: killing the speaker on %s for %s", c+1, n.Name, o.Down)
			return s.nodeFault(ctx, n, &s.res.SpeakerKills,
				func() error { l.KillSpeaker(n); return nil }, func() error { return l.StartSpeaker(n) })
		},
		func(ctx context.Context) error {
			o.Progress("cycle %d: data link of %s down for %s", c+1, m.Name, o.Down)
			return s.nodeFault(ctx, m, &s.res.LinkFlaps,
				func() error { return l.CutDataLink(m) }, func() error { return l.RestoreDataLink(m) })
		},
		func(ctx context.Context) error {
			o.Progress("cycle %d: restarting the controller (SIGKILL)", c+1)
			s.count(&s.res.ControllerRestarts)
			return l.RestartController(ctx)
		},
	}
	if c%2 == 1 {
		return faults
	}
	return append(faults, func(ctx context.Context) error {
		o.Progress("cycle %d: API server stopped for %s", c+1, o.APIOutage)
		l.StopAPIServer()
		s.count(&s.res.APIOutages)
		err := pause(ctx, o.APIOutage)
		// Started again even when ctx ended: the lab must outlive the soak.
		actx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return cmp.Or(l.StartAPIServer(actx), err)
	})
}

// churn keeps about o.Live soak Services: it creates one when fewer live,
// deletes the oldest otherwise. Errors (the API server is down at times)
// are counted and the step tried again.
func (s *soak) churn(ctx context.Context) {
	var live []string
	v4 := map[string]bool{}
	next := 0
	tick := time.NewTicker(s.o.ChurnEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if len(live) < s.o.Live {
			name := fmt.Sprintf("soak-%d", next)
			ipv6 := !(next%3 == 0 && len(v4) < 4)
			_, err := s.l.CreateService(ctx, name, lab.ServiceOpts{IPv6: ipv6,
				Labels:      map[string]string{s.label: "1"},
				Annotations: map[string]string{"portico.dev/address-pool": s.pool}})
			if err != nil && ctx.Err() == nil && !apierrors.IsAlreadyExists(err) {
				s.count(&s.res.APIErrors)
				continue
			}
			if ctx.Err() != nil {
				return
			}
			live = append(live, name)
			if !ipv6 {
				v4[name] = true
			}
			next++
			s.count(&s.res.Created)
			continue
		}
		name := live[0]
		s.mu.Lock()
		if _, ok := s.deleting[name]; !ok {
			s.deleting[name] = time.Now()
		}
		s.mu.Unlock()
		if err := s.l.DeleteService(ctx, name); err != nil {
			if ctx.Err() == nil {
				s.count(&s.res.APIErrors)
			}
			continue
		}
		live = live[1:]
		delete(v4, name)
		s.count(&s.res.Deleted)
	}
}

// A round every samplePeriod, waiting sampleWait for answers.
const (
	samplePeriod = 500 * time.Millisecond
	sampleWait   = 300 * time.Millisecond
)

// sample asks for every soak IP each round until ctx ends, and accounts
// each round (see SoakResult).
func (s *soak) sample(ctx context.Context, sampler *lab.Sampler) error {
	last := map[netip.Addr]string{}       // IP -> node that last answered
	run := map[netip.Addr]time.Duration{} // IP -> current unanswered run
	for ctx.Err() == nil {
		t := time.Now()
		served := s.tr.served()
		var ips []netip.Addr
		for _, given := range served {
			for ip := range given {
				ips = append(ips, ip)
			}
		}
		answers, err := sampler.Round(ctx, ips, sampleWait)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sampling from the client: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(t.Add(samplePeriod))):
		}
		dt := time.Since(t)
		s.account(t, dt, served, answers, last, run)
	}
	return nil
}

func (s *soak) account(t time.Time, dt time.Duration, served map[string]map[netip.Addr]time.Time,
	answers map[netip.Addr][]string, last map[netip.Addr]string, run map[netip.Addr]time.Duration) {
	s.mu.Lock()
	s.res.Rounds++
	deleting := make(map[string]time.Time, len(s.deleting))
	for k, v := range s.deleting {
		deleting[k] = v
	}
	settling := !s.ended.IsZero() && !t.Before(s.ended) && !s.res.AllAnswered
	s.mu.Unlock()
	// After the faults: is every Service answered, by one node each?
	all := true
	for _, given := range served {
		all = all && len(given) > 0
		for ip := range given {
			all = all && len(answers[ip]) == 1 && s.l.NodeByMAC(answers[ip][0]) != nil
		}
	}
	if settling && all {
		s.mu.Lock()
		s.res.AllAnswered, s.res.AnsweredAfter = true, t.Sub(s.ended)
		s.mu.Unlock()
	}
	for svc, given := range served {
		for ip, at := range given {
			s.mu.Lock()
			s.res.Samples++
			s.mu.Unlock()
			macs := answers[ip]
			var nodes []string
			for _, mac := range macs {
				if n := s.l.NodeByMAC(mac); n != nil {
					nodes = append(nodes, n.Name)
				} else {
					s.note(&s.res.ForeignAnswers, "%s %s (%s) answered by %s, no node's MAC", t.Format("15:04:05.000"), ip, svc, mac)
				}
			}
			if len(macs) > 1 {
				s.note(&s.res.DoubleAnswers, "%s %s (%s) answered by %v (nodes %v) to one request", t.Format("15:04:05.000"), ip, svc, macs, nodes)
			}
			if len(nodes) == 1 {
				last[ip] = nodes[0]
			}
			if len(macs) > 0 {
				run[ip] = 0
				continue
			}
			del, deleted := deleting[svc]
			if t.Before(at.Add(s.o.Grace)) || (deleted && !t.Before(del)) {
				continue // not yet, or no longer, expected to be answered
			}
			s.mu.Lock()
			if node, ok := last[ip]; ok && s.faulted(node, t) {
				s.res.UnansweredExcused += dt
			} else {
				s.res.Unanswered += dt
				run[ip] += dt
				s.res.UnansweredLongest = max(s.res.UnansweredLongest, run[ip])
			}
			s.mu.Unlock()
		}
	}
}

// faulted reports whether node's fault window is open at t; s.mu is held.
func (s *soak) faulted(node string, t time.Time) bool {
	for _, w := range s.windows[node] {
		if !t.Before(w.start) && (w.end.IsZero() || t.Before(w.end)) {
			return true
		}
	}
	return false
}

func (s *soak) note(list *[]string, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(*list) < 50 {
		*list = append(*list, fmt.Sprintf(format, args...))
	} else if len(*list) == 50 {
		*list = append(*list, "...")
	}
}
