// Package faults measures Portico under faults in a running lab (package
// e2etest/lab): a burst of Services while the controller leader is killed
// (LeaderBurst), and a soak of Service churn under speaker kills, link flaps,
// controller restarts and an API server outage (Soak). Each returns what it
// saw; the end-to-end tests assert the outcomes that must hold (no duplicate
// IPs, no double answers, nothing leaked, everything allocated and answered
// in the end) and `make bench` prints every figure, times included.
package faults

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/klog/v2"
)

// tracker follows the Services of one namespace with a label through a
// watch (resumed across API server outages), in the order etcd committed
// their changes. So it sees a duplicate IP even when one lasts only between
// two writes: an IP in one Service's status while another Service still
// holds it.
type tracker struct {
	mu    sync.Mutex
	ips   map[string][]netip.Addr // Service name -> its ingress IPs
	owner map[netip.Addr]string   // IP -> the Service holding it
	// given is when the tracker first saw each (Service, IP).
	given map[string]map[netip.Addr]time.Time
	// allocations are the times Services got their first IP, in order.
	allocations []time.Time
	duplicates  []string
	err         error
}

// track lists the Services of namespace ns matching selector and follows
// them until ctx ends.
func track(ctx context.Context, kube kubernetes.Interface, ns, selector string) (*tracker, error) {
	t := &tracker{ips: map[string][]netip.Addr{}, owner: map[netip.Addr]string{},
		given: map[string]map[netip.Addr]time.Time{}}
	svcs := kube.CoreV1().Services(ns)
	rv, err := t.relist(ctx, svcs, selector)
	if err != nil {
		return nil, err
	}
	go t.follow(ctx, svcs, selector, rv)
	return t, nil
}

// relist makes the tracker's Services those listed (a Service gone since
// counts as deleted) and returns the list's resource version.
func (t *tracker) relist(ctx context.Context, svcs typedcorev1.ServiceInterface, selector string) (string, error) {
	list, err := svcs.List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "", err
	}
	// Owners come from the list alone: changes missed since the last event
	// must not look like two Services holding one IP.
	t.mu.Lock()
	t.owner = map[netip.Addr]string{}
	t.mu.Unlock()
	listed := map[string]bool{}
	for i := range list.Items {
		t.update(&list.Items[i], false)
		listed[list.Items[i].Name] = true
	}
	t.mu.Lock()
	var gone []string
	for name := range t.ips {
		if !listed[name] {
			gone = append(gone, name)
		}
	}
	t.mu.Unlock()
	for _, name := range gone {
		t.update(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}}, true)
	}
	return list.ResourceVersion, nil
}

// follow watches from resource version rv until ctx ends. The watch resumes
// across API server outages; when the server no longer has rv (it
// restarted with a fresh watch cache), the tracker lists again.
func (t *tracker) follow(ctx context.Context, svcs typedcorev1.ServiceInterface, selector, rv string) {
	// The watch fails every second while the API server is down, as the
	// soak means it to: not worth a log line each time.
	quiet := klog.NewContext(ctx, logr.Discard())
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.LabelSelector = selector
		return svcs.Watch(ctx, o)
	}}
	for {
		w, err := watchtools.NewRetryWatcherWithContext(quiet, rv, lw)
		if err != nil {
			t.fail(err)
			return
		}
		expired := t.drain(ctx, w)
		w.Stop()
		if !expired {
			return
		}
		for {
			if rv, err = t.relist(ctx, svcs, selector); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// drain applies the watch's events until ctx ends (false), or the watch
// says its resource version is too old (true).
func (t *tracker) drain(ctx context.Context, w watch.Interface) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-w.ResultChan():
			switch {
			case !ok:
				if ctx.Err() == nil {
					t.fail(fmt.Errorf("the watch of Services ended early"))
				}
				return false
			case ev.Type == watch.Added || ev.Type == watch.Modified:
				t.update(ev.Object.(*corev1.Service), false)
			case ev.Type == watch.Deleted:
				t.update(ev.Object.(*corev1.Service), true)
			case ev.Type == watch.Error:
				err := apierrors.FromObject(ev.Object)
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					return true
				}
				t.fail(fmt.Errorf("watching Services: %w", err))
				return false
			}
		}
	}
}

func (t *tracker) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = err
	}
}

func ingressIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

func (t *tracker) update(svc *corev1.Service, deleted bool) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	name := svc.Name
	var ips []netip.Addr
	if !deleted {
		ips = ingressIPs(svc)
	}
	for _, ip := range t.ips[name] {
		if !slices.Contains(ips, ip) && t.owner[ip] == name {
			delete(t.owner, ip)
		}
	}
	if deleted {
		delete(t.ips, name)
		delete(t.given, name)
		return
	}
	if len(ips) > 0 && len(t.given[name]) == 0 {
		t.allocations = append(t.allocations, now)
	}
	given := map[netip.Addr]time.Time{}
	for _, ip := range ips {
		if other, ok := t.owner[ip]; ok && other != name {
			t.duplicates = append(t.duplicates, fmt.Sprintf("%s given to %s while %s held it (resourceVersion %s)",
				ip, name, other, svc.ResourceVersion))
		}
		t.owner[ip] = name
		given[ip] = now
		if at, ok := t.given[name][ip]; ok {
			given[ip] = at
		}
	}
	t.ips[name] = ips
	t.given[name] = given
}

// served is a snapshot: every tracked Service's IPs with when each was
// given.
func (t *tracker) served() map[string]map[netip.Addr]time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]map[netip.Addr]time.Time{}
	for name := range t.ips {
		out[name] = map[netip.Addr]time.Time{}
		for ip, at := range t.given[name] {
			out[name][ip] = at
		}
	}
	return out
}

// counts returns how many tracked Services exist and how many have an IP.
func (t *tracker) counts() (services, allocated int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ips := range t.ips {
		if len(ips) > 0 {
			allocated++
		}
	}
	return len(t.ips), allocated
}

// allocatedAfter returns the times Services got their first IP after from.
func (t *tracker) allocatedAfter(from time.Time) []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Time
	for _, at := range t.allocations {
		if at.After(from) {
			out = append(out, at)
		}
	}
	return out
}

// problems returns the duplicates seen so far and the watch's error.
func (t *tracker) problems() ([]string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.duplicates), t.err
}
