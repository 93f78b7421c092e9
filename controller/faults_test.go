package controller_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/controller"
)

// failNamespaceGet fails the controller's reads of namespace ns, and its
// lists of namespaces, while fail is set, and counts them.
type failNamespaceGet struct {
	client.Client
	ns         string
	fail       atomic.Bool
	failed, ok atomic.Int32
	failedList atomic.Int32
}

func (c *failNamespaceGet) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, isNS := list.(*corev1.NamespaceList); isNS && c.fail.Load() {
		c.failedList.Add(1)
		return apierrors.NewServiceUnavailable("injected: listing namespaces fails")
	}
	return c.Client.List(ctx, list, opts...)
}

func (c *failNamespaceGet) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, isNS := obj.(*corev1.Namespace); isNS && key.Name == c.ns {
		if c.fail.Load() {
			c.failed.Add(1)
			return apierrors.NewServiceUnavailable("injected: reading namespaces fails")
		}
		c.ok.Add(1)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// pinnedNamespace creates a namespace labelled team=a, a pool pinned to it
// (192.0.2.0/30, tried first) and an open pool (198.51.100.0/30).
func pinnedNamespace(t *testing.T, prefix string) string {
	t.Helper()
	pool(t, prefix+"-pinned", func(p *v1.IPAddressPool) {
		p.Spec.Allocation = &v1.ServiceAllocation{Priority: 1, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}
	}, "192.0.2.0/30")
	pool(t, prefix+"-open", func(p *v1.IPAddressPool) { p.Spec.Allocation = &v1.ServiceAllocation{Priority: 2} }, "198.51.100.0/30")
	return namespace(t, map[string]string{"team": "a"})
}

// atLeast waits until counter reaches n.
func atLeast(t *testing.T, counter *atomic.Int32, n int32, what string) {
	t.Helper()
	eventually(t, func() string {
		if got := counter.Load(); got < n {
			return fmt.Sprintf("%d %s, want %d", got, what, n)
		}
		return ""
	})
}

// stillAt fails unless Service ns/name has exactly ip and never had an
// IPChanged event.
func stillAt(t *testing.T, ns, name, ip, while string) {
	t.Helper()
	if got := ingress(get(t, ns, name)); len(got) != 1 || got[0] != ip {
		t.Fatalf("%s the Service's ingress became %v, want %s", while, got, ip)
	}
	for _, e := range events(t, ns, name) {
		if e.Reason == controller.EventIPChanged {
			t.Fatalf("%s: unexpected event %s: %s", while, e.Reason, e.Message)
		}
	}
}

// TestNamespaceReadFailureMovesNothing: a Service in a pool pinned to its
// namespace by label keeps its address while the namespace cannot be read,
// and is reconciled again once it can.
func TestNamespaceReadFailureMovesNothing(t *testing.T) {
	ns := pinnedNamespace(t, "ns")
	fc := &failNamespaceGet{ns: ns}
	run(t, controller.Options{WrapClient: func(c client.Client) client.Client { fc.Client = c; return fc }})
	service(t, ns, "s", nil)
	waitIPs(t, ns, "s", "192.0.2.0")

	fc.fail.Store(true)
	update(t, ns, "s", func(s *corev1.Service) { s.Labels = map[string]string{"touched": "yes"} })
	// Tried more than once: the failure is retried, not taken as "no labels".
	atLeast(t, &fc.failed, 2, "failed namespace reads")
	stillAt(t, ns, "s", "192.0.2.0", "while its namespace could not be read")

	fc.fail.Store(false)
	// Retried with nothing else changing.
	atLeast(t, &fc.ok, fc.ok.Load()+1, "namespace reads after it became readable")
	stillAt(t, ns, "s", "192.0.2.0", "after its namespace became readable")
}

// TestNamespaceListFailureAtStartMovesNothing: a restart while namespaces
// cannot be listed keeps a Service in a pool pinned to its namespace by
// label where it is, and allocates once they can.
func TestNamespaceListFailureAtStartMovesNothing(t *testing.T) {
	ns := pinnedNamespace(t, "start")
	stop := run(t, controller.Options{})
	service(t, ns, "s", nil)
	waitIPs(t, ns, "s", "192.0.2.0")
	stop()

	fc := &failNamespaceGet{ns: ns}
	fc.fail.Store(true)
	run(t, controller.Options{WrapClient: func(c client.Client) client.Client { fc.Client = c; return fc }})
	atLeast(t, &fc.failedList, 2, "failed namespace lists (the rebuild retries)")
	stillAt(t, ns, "s", "192.0.2.0", "while namespaces could not be listed at start")
	fc.fail.Store(false)
	service(t, ns, "t", nil)
	waitIPs(t, ns, "t", "192.0.2.1")
	stillAt(t, ns, "s", "192.0.2.0", "once namespaces could be listed")
}
