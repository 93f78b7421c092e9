package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/portico-lb/portico/internal/ipam"
)

// Event reasons on Services.
const (
	EventIPAllocated       = "IPAllocated"
	EventAllocationFailed  = "AllocationFailed"
	EventIPReleased        = "IPReleased"
	EventIPChanged         = "IPChanged"
	EventAnnotationWarning = "AnnotationConflict"
)

// ServiceReconciler allocates addresses to the LoadBalancer Services of its
// class and writes their status.
type ServiceReconciler struct {
	client      client.Client
	st          *state
	class       string
	rec         events.EventRecorder
	countsDirty *atomic.Bool
	retry       *retrier
}

type svcEvent struct{ typ, reason, msg string }

// Reconcile brings one Service's allocation and status up to date.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := r.st.waitReady(ctx); err != nil {
		return reconcile.Result{}, err
	}
	start := time.Now()
	defer func() { metricReconcile.WithLabelValues("service").Observe(time.Since(start).Seconds()) }()
	key := req.Namespace + "/" + req.Name
	svc := &corev1.Service{}
	if err := r.client.Get(ctx, req.NamespacedName, svc); err != nil {
		if apierrors.IsNotFound(err) {
			if len(r.st.alloc.Release(key)) > 0 {
				r.released()
			}
			r.st.forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !Handles(svc, r.class) {
		return r.stopHandling(ctx, svc, key)
	}
	rq, perr := ParseRequest(svc)
	if w := strings.Join(rq.Warnings, "; "); r.st.noteWarning(key, w) {
		r.event(svc, corev1.EventTypeWarning, EventAnnotationWarning, w)
	}
	if perr != nil {
		// A bad request changes nothing: the Service keeps what it has.
		r.failed(svc, key, ipam.ReasonInvalid, perr.Error()+"; the Service keeps its current addresses until this is fixed")
		return reconcile.Result{}, nil
	}
	// Pools may be pinned to namespaces by label: without the labels the
	// Service could look unwelcome in its own pool and be moved. Try again
	// later instead; nothing changes meanwhile.
	labels, err := r.namespaceLabels(ctx, svc.Namespace)
	if err != nil {
		return reconcile.Result{}, err
	}
	rq.Service.NamespaceLabels = labels
	freed := r.st.freed.Load()
	ips, evs, reason, failure := r.ensure(svc, key, &rq)
	for _, e := range evs {
		r.event(svc, e.typ, e.reason, e.msg)
	}
	if failure != "" {
		r.failed(svc, key, reason, failure)
		if r.st.freed.Load() != freed {
			// An address may have been freed while this one was tried,
			// before it was noted as waiting: try again.
			r.retry.add(key)
		}
	} else {
		r.st.noteFailure(key, "")
	}
	if len(evs) > 0 {
		r.countsDirty.Store(true)
	}
	pool := ""
	if len(ips) > 0 {
		pool, _ = r.st.alloc.PoolOf(ips[0])
	}
	return r.writeStatus(ctx, svc, ips, pool)
}

func (r *ServiceReconciler) failed(svc *corev1.Service, key string, reason ipam.Reason, msg string) {
	if r.st.noteFailure(key, msg) {
		metricFailures.WithLabelValues(string(reason)).Inc()
		r.event(svc, corev1.EventTypeWarning, EventAllocationFailed, msg)
	}
}

// eventActions are the events.k8s.io actions of the controller's event
// reasons: what it did, or failed to do, to the Service.
var eventActions = map[string]string{
	EventIPAllocated:       "Allocate",
	EventIPChanged:         "Allocate",
	EventAllocationFailed:  "Allocate",
	EventIPReleased:        "Release",
	EventAnnotationWarning: "ReadAnnotations",
}

// event records an event on svc. The events.k8s.io recorder folds an event
// into an earlier one with the same reason and action on the same object (a
// series, counted) and keeps only the first note: "allocated 192.0.2.5"
// after "allocated 192.0.2.4" would show the old address. So the action
// carries a short digest of the note: a repeated note is counted on its
// event, a new one gets its own.
func (r *ServiceReconciler) event(svc *corev1.Service, typ, reason, note string) {
	sum := sha256.Sum256([]byte(note))
	action := eventActions[reason] + ":" + hex.EncodeToString(sum[:4])
	r.rec.Eventf(svc, nil, typ, reason, action, "%s", note)
}

// released retries the Services waiting for an address, since one was freed.
func (r *ServiceReconciler) released() {
	r.countsDirty.Store(true)
	r.st.freed.Add(1)
	r.retry.waiting()
}

// servicesIn maps a Namespace to the Services in it, from the cache.
func (r *ServiceReconciler) servicesIn(ctx context.Context, ns client.Object) []reconcile.Request {
	var list corev1.ServiceList
	if err := r.client.List(ctx, &list, client.InNamespace(ns.GetName())); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		if Handles(&list.Items[i], r.class) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}

// namespaceLabels returns the labels of namespace ns. Not found is an error
// too: a Service's namespace exists, so the cache has not seen it yet.
func (r *ServiceReconciler) namespaceLabels(ctx context.Context, ns string) (map[string]string, error) {
	n := &corev1.Namespace{}
	if err := r.client.Get(ctx, types.NamespacedName{Name: ns}, n); err != nil {
		return nil, fmt.Errorf("reading the labels of namespace %s, which pools may be pinned to (the Service keeps its addresses and is retried): %w", ns, err)
	}
	return n.Labels, nil
}

// stopHandling releases the addresses of a Service that is no longer ours and
// removes what this controller wrote.
func (r *ServiceReconciler) stopHandling(ctx context.Context, svc *corev1.Service, key string) (reconcile.Result, error) {
	ips := r.st.alloc.Release(key)
	r.st.forget(key)
	if len(ips) > 0 {
		why := "the Service is no longer of type LoadBalancer"
		switch {
		case svc.DeletionTimestamp != nil:
			why = "the Service is being deleted"
		case svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass != nil:
			why = fmt.Sprintf("its loadBalancerClass is now %q, which this controller does not handle", *svc.Spec.LoadBalancerClass)
		}
		r.event(svc, corev1.EventTypeNormal, EventIPReleased, fmt.Sprintf("released %s: %s", joinIPs(ips), why))
		r.released()
	}
	_, ours := svc.Annotations[AnnAllocatedFromPool]
	if !ours || svc.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	upd := svc.DeepCopy()
	delete(upd.Annotations, AnnAllocatedFromPool)
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || IngressMatches(svc.Status.LoadBalancer.Ingress, ips) {
		upd.Status.LoadBalancer.Ingress = nil
	}
	return r.update(ctx, svc, upd)
}

// ensure makes the allocator hold what rq asks for, keeping every address it
// cannot replace. It returns the Service's addresses in family order, the
// events to record, and the failure to report ("" if none).
func (r *ServiceReconciler) ensure(svc *corev1.Service, key string, rq *Request) ([]netip.Addr, []svcEvent, ipam.Reason, string) {
	a := r.st.alloc
	why := r.st.takeReason(key)
	fams := rq.Families
	if len(rq.IPs) > 0 {
		fams = nil
		for _, ip := range rq.IPs {
			fams = append(fams, ipam.FamilyOf(ip))
		}
	}
	var evs []svcEvent
	for _, ip := range a.Holding(key) {
		if !slices.Contains(fams, ipam.FamilyOf(ip)) && a.ReleaseIP(key, ip) {
			evs = append(evs, svcEvent{corev1.EventTypeNormal, EventIPReleased,
				fmt.Sprintf("released %s: the Service no longer asks for an %s address", ip, ipam.FamilyOf(ip))})
		}
	}
	var failures []string
	var reason ipam.Reason
	fail := func(err error, prefix string) {
		if reason == "" {
			reason = ipam.ReasonOf(err)
		}
		failures = append(failures, prefix+err.Error())
	}
	var missing []ipam.Family
	for _, f := range fams {
		cur := ipOf(a.Holding(key), f)
		want := ipOf(rq.IPs, f)
		switch {
		case want.IsValid() && cur == want:
			if _, err := a.Assign(rq.Service, want, rq.Pool); err != nil {
				fail(err, fmt.Sprintf("%s can no longer be kept: ", want))
			}
		case want.IsValid() && cur.IsValid():
			if pool, err := a.ReplaceIP(rq.Service, cur, want, rq.Pool); err != nil {
				fail(err, fmt.Sprintf("requested %s cannot be assigned, %s is kept: ", want, cur))
			} else {
				evs = append(evs, changed(cur, want, pool, fmt.Sprintf("the Service requests %s", want)))
			}
		case want.IsValid():
			if pool, err := a.Assign(rq.Service, want, rq.Pool); err != nil {
				fail(err, "")
			} else {
				evs = append(evs, r.allocated(want, pool))
			}
		case cur.IsValid():
			move := r.mustMove(rq, cur, why)
			if move == "" {
				break
			}
			pools, err := a.SelectPools(rq.Service, rq.Pool)
			if err != nil {
				fail(err, fmt.Sprintf("%s must change (%s) but ", cur, move))
				break
			}
			if got, pool, err := a.ReallocateIP(rq.Service, cur, pools); err != nil {
				fail(err, fmt.Sprintf("%s must change (%s) and is kept until a new address is free: ", cur, move))
			} else {
				evs = append(evs, changed(cur, got, pool, move))
			}
		default:
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		got, pool, err := r.allocateMissing(rq, key, missing)
		prev := IngressIPs(svc)
		for _, ip := range got {
			if old := ipOf(prev, ipam.FamilyOf(ip)); old.IsValid() && old != ip {
				msg := why
				if msg == "" {
					msg = fmt.Sprintf("%s could not be kept", old)
				}
				evs = append(evs, changed(old, ip, pool, msg))
				metricAllocations.WithLabelValues(pool, ipam.FamilyOf(ip).String()).Inc()
			} else {
				evs = append(evs, r.allocated(ip, pool))
			}
		}
		if err != nil {
			fail(err, "")
		}
	}
	held := a.Holding(key)
	out := make([]netip.Addr, 0, len(held))
	for _, f := range rq.Families {
		if ip := ipOf(held, f); ip.IsValid() {
			out = append(out, ip)
		}
	}
	return out, evs, reason, strings.Join(failures, "; ")
}

// mustMove says why cur, held by the Service, must change, or "" if it stays.
func (r *ServiceReconciler) mustMove(rq *Request, cur netip.Addr, why string) string {
	a := r.st.alloc
	pool, ok := a.PoolOf(cur)
	switch {
	case !ok:
		if why != "" {
			return why
		}
		for _, s := range a.Stranded() {
			if s.Service == rq.Service.Key && s.IP == cur {
				return s.Reason
			}
		}
		return fmt.Sprintf("%s is no longer in any pool", cur)
	case rq.Pool != "" && pool != rq.Pool:
		return fmt.Sprintf("the Service now asks for pool %q and %s is in pool %q", rq.Pool, cur, pool)
	}
	if _, err := a.Assign(rq.Service, cur, ""); err != nil {
		return err.Error()
	}
	return ""
}

func (r *ServiceReconciler) allocated(ip netip.Addr, pool string) svcEvent {
	metricAllocations.WithLabelValues(pool, ipam.FamilyOf(ip).String()).Inc()
	return svcEvent{corev1.EventTypeNormal, EventIPAllocated, fmt.Sprintf("allocated %s from pool %q", ip, pool)}
}

func changed(from, to netip.Addr, pool, why string) svcEvent {
	return svcEvent{corev1.EventTypeNormal, EventIPChanged, fmt.Sprintf("changed %s to %s (pool %q): %s", from, to, pool, why)}
}

// allocateMissing allocates the families the Service has no address for,
// all from one pool: the pool of the address it already holds, else the
// first pool (in SelectPools order) that can give every missing family, else,
// for PreferDualStack, the first that can give any.
func (r *ServiceReconciler) allocateMissing(rq *Request, key string, missing []ipam.Family) ([]netip.Addr, string, error) {
	a := r.st.alloc
	var pools []string
	if held := a.Holding(key); len(held) > 0 {
		p, ok := a.PoolOf(held[0])
		if !ok {
			return nil, "", fmt.Errorf("cannot add an %s address while %s is outside every pool", missing[0], held[0])
		}
		pools = []string{p}
	} else {
		var err error
		if pools, err = a.SelectPools(rq.Service, rq.Pool); err != nil {
			return nil, "", err
		}
	}
	var errs []string
	var firstErr error
	for _, p := range pools {
		got, err := r.tryPool(rq, p, missing, true)
		if err == nil {
			return got, p, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		errs = append(errs, err.Error())
	}
	if !rq.RequireAll || len(missing) < len(rq.Families) {
		for _, p := range pools {
			if got, err := r.tryPool(rq, p, missing, false); len(got) > 0 {
				return got, p, fmt.Errorf("no %s address yet (retried when pools change): %w", missing[len(missing)-1], err)
			}
		}
	}
	if len(errs) == 1 {
		return nil, "", prefixed(rq, missing, firstErr)
	}
	return nil, "", &ipam.Error{Reason: ipam.ReasonOf(firstErr), Message: prefixed(rq, missing, fmt.Errorf("no pool can give it: %s", strings.Join(errs, "; "))).Error()}
}

func prefixed(rq *Request, missing []ipam.Family, err error) error {
	if len(missing) < 2 {
		return err
	}
	return &ipam.Error{Reason: ipam.ReasonOf(err), Message: fmt.Sprintf("the Service needs %s addresses from one pool: %v", familiesString(missing), err)}
}

// tryPool allocates each family from pool. With all, it gives back what it
// got on the first failure; without, it keeps what it got.
func (r *ServiceReconciler) tryPool(rq *Request, pool string, fams []ipam.Family, all bool) ([]netip.Addr, error) {
	var got []netip.Addr
	var firstErr error
	for _, f := range fams {
		ip, err := r.st.alloc.Allocate(rq.Service, pool, f)
		if err != nil {
			if all {
				for _, g := range got {
					r.st.alloc.ReleaseIP(rq.Service.Key, g)
				}
				return nil, err
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		got = append(got, ip)
	}
	return got, firstErr
}

func ipOf(ips []netip.Addr, f ipam.Family) netip.Addr {
	for _, ip := range ips {
		if ipam.FamilyOf(ip) == f {
			return ip
		}
	}
	return netip.Addr{}
}

func joinIPs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// writeStatus writes ips and pool to the Service, only if they differ from
// what is stored (after normalising).
func (r *ServiceReconciler) writeStatus(ctx context.Context, svc *corev1.Service, ips []netip.Addr, pool string) (reconcile.Result, error) {
	cur, has := svc.Annotations[AnnAllocatedFromPool]
	annOK := (pool == "" && !has) || (pool != "" && cur == pool)
	if annOK && IngressMatches(svc.Status.LoadBalancer.Ingress, ips) {
		return reconcile.Result{}, nil
	}
	upd := svc.DeepCopy()
	upd.Status.LoadBalancer.Ingress = DesiredIngress(ips)
	if pool == "" {
		delete(upd.Annotations, AnnAllocatedFromPool)
	} else {
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[AnnAllocatedFromPool] = pool
	}
	return r.update(ctx, svc, upd)
}

// conflictRetry is how soon a Service whose status update met a conflict is
// looked at again.
const conflictRetry = 100 * time.Millisecond

// update writes upd's status and annotations in one status update when the
// API server keeps metadata changes on the status subresource, and patches
// the annotation separately when it does not.
func (r *ServiceReconciler) update(ctx context.Context, svc, upd *corev1.Service) (reconcile.Result, error) {
	want := upd.Annotations[AnnAllocatedFromPool]
	if err := r.client.Status().Update(ctx, upd); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return reconcile.Result{}, nil
		case apierrors.IsConflict(err):
			// The Service changed under us: its watch event queues it
			// again, and this retry covers a cache not yet showing it.
			return reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		return reconcile.Result{}, err
	}
	if upd.Annotations[AnnAllocatedFromPool] == want {
		return reconcile.Result{}, nil
	}
	patch := client.MergeFrom(upd.DeepCopy())
	if want == "" {
		delete(upd.Annotations, AnnAllocatedFromPool)
	} else {
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[AnnAllocatedFromPool] = want
	}
	if err := r.client.Patch(ctx, upd, patch); err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, nil
}
