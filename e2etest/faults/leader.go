package faults

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// BurstPool is the pool of LeaderBurst: IPv6 (the lab's IPv4 ClusterIPs
// are too few for a burst), disjoint from the lab's other pools, advertised
// by nothing (the speakers have no part in this measurement).
const BurstPool = "2001:db8:1::3:0/116"

// The controller's Lease (its defaults: --namespace portico-system).
const (
	leaseNamespace = "portico-system"
	leaseName      = "portico-controller"
)

// BurstResult is what LeaderBurst saw.
type BurstResult struct {
	Services  int // created
	Allocated int // with an IP at the end
	// Duplicates are IPs seen held by two Services at once, in the watch or
	// in the final list.
	Duplicates []string
	// AllocatedBeforeKill Services had an IP when the leader was killed.
	AllocatedBeforeKill int
	Killed, NewLeader   string // replica names
	// Takeover is from the kill to the new leader's acquireTime in the
	// Lease; FirstAllocation from the kill to the first Service given an IP
	// after that (so by the new leader); AllAllocated from the kill to the
	// last Service given an IP.
	Takeover, FirstAllocation, AllAllocated time.Duration
	// InFlight Services got their first IP between the kill and the new
	// Lease: writes the killed leader had sent (or, if many, a bug: a
	// replica allocating without the Lease).
	InFlight int
}

// LeaderBurst replaces the lab's controller with two replicas electing a
// leader, creates n Services eight at a time, kills the leader (SIGKILL, by
// PID) once a quarter of them have an IP, waits until every Service has one,
// and puts the lab's single controller back. The Services and their pool are
// deleted afterwards. progress, when set, receives a line per step.
func LeaderBurst(ctx context.Context, l *lab.Lab, n int, progress func(string, ...any)) (*BurstResult, error) {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	const pool, label = "burst", "lab.portico.dev/burst"
	auto := false
	p := &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: pool},
		Spec: porticov1.IPAddressPoolSpec{AutoAssign: &auto, Addresses: []porticov1.AddressEntry{BurstPool}}}
	if err := l.Client.Create(ctx, p); err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		if err := deleteServices(cctx, l, label); err != nil {
			progress("deleting the burst's Services: %v", err)
		}
		_ = l.Client.Delete(cctx, p)
		progress("deleted the burst's Services in %s", time.Since(start).Round(time.Millisecond))
	}()
	rs, err := l.StartControllerReplicas(ctx, 2)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.StopControllerReplicas(cctx, rs); err != nil {
			progress("putting the single controller back: %v", err)
		}
	}()
	if err != nil {
		return nil, err
	}
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	tr, err := track(tctx, l.Kube, lab.Namespace, label+"=1")
	if err != nil {
		return nil, err
	}
	leader, err := l.WaitLeader(ctx, rs)
	if err != nil {
		return nil, err
	}
	holder, err := leaseHolder(ctx, l)
	if err != nil {
		return nil, err
	}
	res := &BurstResult{Services: n, Killed: leader.Name}
	progress("%s leads (Lease holder %s); creating %d Services", leader.Name, holder, n)

	var created atomic.Int64
	createErr := make(chan error, 1)
	go func() { createErr <- createBurst(ctx, l, n, pool, label, &created) }()

	// Kill the leader while it allocates.
	for {
		if _, got := tr.counts(); got >= n/4 {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("waiting for %d of %d Services to get an IP before the kill: %w", n/4, n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, res.AllocatedBeforeKill = tr.counts()
	killed := time.Now()
	leader.Kill()
	progress("killed %s (PID %d) with %d Services created, %d with an IP", leader.Name, leader.PID, created.Load(), res.AllocatedBeforeKill)

	if err := <-createErr; err != nil {
		return res, err
	}
	_, got := tr.counts()
	progress("all %d Services created %s after the kill, %d with an IP", n, time.Since(killed).Round(time.Millisecond), got)
	for {
		svcs, got := tr.counts()
		if svcs == n && got == n {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("%d of %d Services have an IP (%d seen): %w", got, n, svcs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	newLeader, err := l.WaitLeader(ctx, rs)
	if err != nil {
		return res, err
	}
	res.NewLeader = newLeader.Name
	var lease coordinationv1.Lease
	if err := l.Client.Get(ctx, client.ObjectKey{Namespace: leaseNamespace, Name: leaseName}, &lease); err != nil {
		return res, err
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == holder || lease.Spec.AcquireTime == nil {
		return res, fmt.Errorf("the Lease did not change hands: %+v", lease.Spec)
	}
	acquired := lease.Spec.AcquireTime.Time
	res.Takeover = acquired.Sub(killed)
	after := tr.allocatedAfter(acquired)
	if len(after) == 0 {
		return res, fmt.Errorf("no Service got an IP after the new leader took the Lease at %s", acquired.Format(time.RFC3339Nano))
	}
	res.FirstAllocation = after[0].Sub(killed)
	res.AllAllocated = after[len(after)-1].Sub(killed)
	res.InFlight = len(tr.allocatedAfter(killed)) - len(after)
	_, res.Allocated = tr.counts()
	dups, err := tr.problems()
	if err != nil {
		return res, err
	}
	listed, err := APIDuplicates(ctx, l)
	if err != nil {
		return res, err
	}
	res.Duplicates = append(dups, listed...)
	progress("%s took over %s after the kill and gave its first IP %s after it; all %d had an IP %s after it",
		newLeader.Name, res.Takeover.Round(time.Millisecond), res.FirstAllocation.Round(time.Millisecond), n, res.AllAllocated.Round(time.Millisecond))
	return res, nil
}

func leaseHolder(ctx context.Context, l *lab.Lab) (string, error) {
	var lease coordinationv1.Lease
	if err := l.Client.Get(ctx, client.ObjectKey{Namespace: leaseNamespace, Name: leaseName}, &lease); err != nil {
		return "", fmt.Errorf("the controller's Lease: %w", err)
	}
	return ptr.Deref(lease.Spec.HolderIdentity, ""), nil
}

// createBurst creates Services burst-0 ... burst-(n-1): IPv6 from pool,
// with no node ports and no EndpointSlice (only allocation is measured).
func createBurst(ctx context.Context, l *lab.Lab, n int, pool, label string, created *atomic.Int64) error {
	return eightAtATime(ctx, n, func(i int) error {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: lab.Namespace, Name: fmt.Sprintf("burst-%d", i),
				Labels:      map[string]string{label: "1"},
				Annotations: map[string]string{"portico.dev/address-pool": pool}},
			Spec: corev1.ServiceSpec{
				Type:                          corev1.ServiceTypeLoadBalancer,
				Ports:                         []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
				IPFamilies:                    []corev1.IPFamily{corev1.IPv6Protocol},
				IPFamilyPolicy:                ptr.To(corev1.IPFamilyPolicySingleStack),
				AllocateLoadBalancerNodePorts: ptr.To(false),
			},
		}
		if err := l.Client.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating Service %s: %w", svc.Name, err)
		}
		created.Add(1)
		return nil
	})
}

// deleteServices deletes every Service in the lab's namespace with label
// (and its EndpointSlice, if the lab made one).
func deleteServices(ctx context.Context, l *lab.Lab, label string) error {
	var list corev1.ServiceList
	if err := l.Client.List(ctx, &list, client.InNamespace(lab.Namespace), client.HasLabels{label}); err != nil {
		return err
	}
	return eightAtATime(ctx, len(list.Items), func(i int) error {
		return l.DeleteService(ctx, list.Items[i].Name)
	})
}

// eightAtATime calls do(0) ... do(n-1), eight at a time (about what the
// lab's API server takes on two cores), until ctx ends; it returns the
// first error, having tried every i.
func eightAtATime(ctx context.Context, n int, do func(i int) error) error {
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if err := do(i); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return cmp.Or(first, ctx.Err())
}

// APIDuplicates lists every Service in the cluster and returns each IP that
// more than one holds in its status.
func APIDuplicates(ctx context.Context, l *lab.Lab) ([]string, error) {
	var list corev1.ServiceList
	if err := l.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	holders := map[netip.Addr][]string{}
	for i := range list.Items {
		s := &list.Items[i]
		for _, ip := range ingressIPs(s) {
			holders[ip] = append(holders[ip], s.Namespace+"/"+s.Name)
		}
	}
	var out []string
	for ip, hs := range holders {
		if len(hs) > 1 {
			out = append(out, fmt.Sprintf("%s held by %v", ip, hs))
		}
	}
	return out, nil
}
