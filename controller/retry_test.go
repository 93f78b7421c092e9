package controller_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-lb/portico/controller"
)

// stacks returns the stacks of every goroutine.
func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// ourGoroutines returns the stacks of goroutines running or started by
// package controller (not its tests).
func ourGoroutines() []string {
	var out []string
	for _, g := range stacks() {
		if strings.Contains(g, "github.com/portico-lb/portico/controller.") {
			out = append(out, g)
		}
	}
	return out
}

// holdReleases holds, once hold is set, every reconcile of a deleted
// Service (the one that releases its addresses) until the controller has
// stopped and its event sources with it: releases that race with shutdown.
type holdReleases struct {
	client.Client
	hold atomic.Bool
	held atomic.Int32
}

func (c *holdReleases) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := c.Client.Get(ctx, key, obj, opts...)
	if _, svc := obj.(*corev1.Service); svc && apierrors.IsNotFound(err) && c.hold.Load() {
		c.held.Add(1)
		<-ctx.Done()
		for sourcesRunning() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return err
}

// sourcesRunning says whether a controller-runtime channel source still
// forwards events to a controller.
func sourcesRunning() bool {
	for _, g := range stacks() {
		if strings.Contains(g, "sigs.k8s.io/controller-runtime/pkg/source.(*channel[...]).syncLoop") {
			return true
		}
	}
	return false
}

// servicesByRole lists the Services of ns labelled role, and how many of
// them have an address.
func servicesByRole(t *testing.T, ns, role string) (all []corev1.Service, withIP int) {
	t.Helper()
	var list corev1.ServiceList
	if err := cluster.Client.List(ctxBG, &list, client.InNamespace(ns), client.MatchingLabels{"role": role}); err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			withIP++
		}
	}
	return list.Items, withIP
}

// failedServices returns the names of the Services of ns with an
// AllocationFailed event.
func failedServices(t *testing.T, ns string) map[string]bool {
	t.Helper()
	var list corev1.EventList
	if err := cluster.Client.List(ctxBG, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range list.Items {
		if e.Reason == controller.EventAllocationFailed {
			out[e.InvolvedObject.Name] = true
		}
	}
	return out
}

// TestManyReleasesRetryEveryWaitingService: many Services deleted at once
// while many wait for an address hand every freed address to a waiting
// Service, and when the controller stops in the middle of such a burst
// nothing of it keeps running.
func TestManyReleasesRetryEveryWaitingService(t *testing.T) {
	const n = 100
	pool(t, "burst", nil, "198.51.100.0-198.51.100.99")
	hold := &holdReleases{}
	stop := run(t, controller.Options{WrapClient: func(c client.Client) client.Client { hold.Client = c; return hold }})
	ns := namespace(t, nil)
	create := func(prefix, role string) {
		for i := range n {
			service(t, ns, fmt.Sprintf("%s%03d", prefix, i), func(s *corev1.Service) { s.Labels = map[string]string{"role": role} })
		}
	}
	waitAddressed := func(role string) {
		eventually(t, func() string {
			all, with := servicesByRole(t, ns, role)
			if len(all) != n || with != n {
				return fmt.Sprintf("%d of %d %s Services have an address", with, len(all), role)
			}
			return ""
		})
	}
	waitFailed := func(prefix string) {
		eventually(t, func() string {
			failed := failedServices(t, ns)
			count := 0
			for name := range failed {
				if strings.HasPrefix(name, prefix) {
					count++
				}
			}
			if count != n {
				return fmt.Sprintf("%d of %d %s Services reported waiting", count, n, prefix)
			}
			return ""
		})
	}
	deleteRole := func(role string) {
		if err := cluster.Client.DeleteAllOf(ctxBG, &corev1.Service{}, client.InNamespace(ns), client.MatchingLabels{"role": role}); err != nil {
			t.Fatal(err)
		}
	}

	// The pool is full; n more Services wait; the first n go at once.
	create("a", "first")
	waitAddressed("first")
	create("b", "second")
	waitFailed("b")
	deleteRole("first")
	waitAddressed("second")
	all, _ := servicesByRole(t, ns, "second")
	seen := map[string]string{}
	for _, s := range all {
		ip := s.Status.LoadBalancer.Ingress[0].IP
		if other, dup := seen[ip]; dup {
			t.Errorf("%s given to both %s and %s", ip, other, s.Name)
		}
		seen[ip] = s.Name
	}

	// Again, and the controller stops while the workers release addresses.
	create("c", "third")
	waitFailed("c")
	hold.hold.Store(true)
	deleteRole("second")
	eventually(t, func() string {
		if n := hold.held.Load(); n < 12 {
			return fmt.Sprintf("%d releases under way, want 12", n)
		}
		return ""
	})
	stop()
	eventually(t, func() string {
		if g := ourGoroutines(); len(g) > 0 {
			return fmt.Sprintf("%d goroutines of package controller outlive the controller, e.g.:\n%s", len(g), g[0])
		}
		return ""
	})
}
