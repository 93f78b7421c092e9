package controller_test

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/controller"
)

// versions returns the resourceVersion of each named Service.
func versions(t *testing.T, ns string, names []string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		out[n] = get(t, ns, n).ResourceVersion
	}
	return out
}

func TestRestartChangesNothing(t *testing.T) {
	pool(t, "restart", nil, "192.0.2.0/27")
	stop := run(t, controller.Options{})
	ns := namespace(t, nil)
	var names []string
	want := map[string]string{}
	for i := range 20 {
		n := fmt.Sprintf("s%02d", i)
		names = append(names, n)
		service(t, ns, n, nil)
	}
	for _, n := range names {
		want[n] = anyIPs(t, ns, n, 1)[0]
	}
	before := versions(t, ns, names)
	stop()
	run(t, controller.Options{})
	service(t, ns, "new", nil)
	waitIPs(t, ns, "new", "192.0.2.20") // the next free address: nothing handed out twice
	after := versions(t, ns, names)
	for _, n := range names {
		if got := ingress(get(t, ns, n)); len(got) != 1 || got[0] != want[n] {
			t.Errorf("%s: ingress %v after restart, want %s", n, got, want[n])
		}
		if before[n] != after[n] {
			t.Errorf("%s was written after the restart (resourceVersion %s -> %s)", n, before[n], after[n])
		}
	}
}

func TestRestartAfterPoolRemovedMovesWithReason(t *testing.T) {
	pool(t, "gone", nil, "192.0.2.0/30")
	stop := run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "a", nil)
	waitIPs(t, ns, "a", "192.0.2.0")
	stop()
	if err := cluster.Client.Delete(ctxBG, &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "gone"}}); err != nil {
		t.Fatal(err)
	}
	pool(t, "replacement", nil, "198.51.100.0/30")
	run(t, controller.Options{})
	waitIPs(t, ns, "a", "198.51.100.0")
	waitEvent(t, ns, "a", controller.EventIPChanged, "changed 192.0.2.0 to 198.51.100.0", "192.0.2.0 is not in any pool")
}

func TestLeaderHandoverChangesNothing(t *testing.T) {
	pool(t, "leader", nil, "192.0.2.0/28")
	lease := controller.Options{LeaderElect: true, LeaderElectionID: "handover-test"}
	stopA := run(t, lease)
	ns := namespace(t, nil)
	names := []string{"a", "b", "c"}
	for _, n := range names {
		service(t, ns, n, nil)
	}
	want := map[string][]string{}
	for _, n := range names {
		want[n] = anyIPs(t, ns, n, 1)
	}
	before := versions(t, ns, names)
	run(t, lease) // standby
	stopA()       // releases the Lease
	service(t, ns, "d", nil)
	waitIPs(t, ns, "d", "192.0.2.3")
	after := versions(t, ns, names)
	for _, n := range names {
		if got := ingress(get(t, ns, n)); got[0] != want[n][0] || before[n] != after[n] {
			t.Errorf("%s changed over the handover: %v -> %v, rv %s -> %s", n, want[n], got, before[n], after[n])
		}
	}
}

func TestSharingRules(t *testing.T) {
	pool(t, "share", nil, "192.0.2.0/29")
	run(t, controller.Options{})
	ns1, ns2 := namespace(t, nil), namespace(t, nil)
	port := func(p int32, key string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.Ports[0].Port = p; s.Annotations[controller.AnnAllowSharedIP] = key }
	}
	service(t, ns1, "http", port(80, "web"))
	waitIPs(t, ns1, "http", "192.0.2.0")
	service(t, ns1, "https", port(443, "web"))
	waitIPs(t, ns1, "https", "192.0.2.0") // same key, same namespace, other port: shared
	service(t, ns2, "other", port(8080, "web"))
	waitIPs(t, ns2, "other", "192.0.2.1") // plain keys do not cross namespaces
	service(t, ns1, "c1", port(81, "cluster:edge"))
	waitIPs(t, ns1, "c1", "192.0.2.2")
	service(t, ns2, "c2", port(82, "cluster:edge"))
	waitIPs(t, ns2, "c2", "192.0.2.2") // cluster: keys do
	service(t, ns2, "mlb", func(s *corev1.Service) {
		s.Spec.Ports[0].Port = 83
		s.Annotations["metallb.io/allow-shared-ip"] = "edge"
	})
	waitIPs(t, ns2, "mlb", "192.0.2.2") // MetalLB keys are cluster-wide, as in MetalLB
	_, st := poolCondition(t, "share")
	eventually(t, func() string {
		if _, st = poolCondition(t, "share"); st.AssignedIPv4 != 3 {
			return fmt.Sprintf("assigned %d, want 3 (a shared IP counts once)", st.AssignedIPv4)
		}
		return ""
	})
}

func TestPinningAndPriority(t *testing.T) {
	pool(t, "prod-a", func(p *v1.IPAddressPool) {
		p.Spec.Allocation = &v1.ServiceAllocation{Priority: 2, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}
	}, "192.0.2.0/30")
	pool(t, "prod-b", func(p *v1.IPAddressPool) {
		p.Spec.Allocation = &v1.ServiceAllocation{Priority: 1, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}
	}, "192.0.2.4/30")
	pool(t, "db", func(p *v1.IPAddressPool) {
		p.Spec.Allocation = &v1.ServiceAllocation{ServiceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}}}
	}, "192.0.2.8/30")
	pool(t, "general", nil, "198.51.100.0/30")
	run(t, controller.Options{})
	prod, dev := namespace(t, map[string]string{"env": "prod"}), namespace(t, nil)
	service(t, prod, "p", nil)
	waitIPs(t, prod, "p", "192.0.2.4") // priority 1 before 2
	service(t, dev, "d", nil)
	waitIPs(t, dev, "d", "198.51.100.0") // not pinned here: falls back to the unpinned pool
	service(t, dev, "db", func(s *corev1.Service) { s.Labels = map[string]string{"tier": "db"} })
	waitIPs(t, dev, "db", "192.0.2.8")
}

func TestNamespaceRelabelled(t *testing.T) {
	pool(t, "team", func(p *v1.IPAddressPool) {
		p.Spec.Allocation = &v1.ServiceAllocation{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}
	}, "192.0.2.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "s", nil)
	waitEvent(t, ns, "s", controller.EventAllocationFailed)
	relabel := func(labels map[string]string) {
		t.Helper()
		n := &corev1.Namespace{}
		if err := cluster.Client.Get(ctxBG, types.NamespacedName{Name: ns}, n); err != nil {
			t.Fatal(err)
		}
		n.Labels = labels
		if err := cluster.Client.Update(ctxBG, n); err != nil {
			t.Fatal(err)
		}
	}
	relabel(map[string]string{"team": "a"}) // now the pinned pool serves it
	waitIPs(t, ns, "s", "192.0.2.0")
	pool(t, "everyone", nil, "198.51.100.0/30")
	relabel(map[string]string{"team": "b"}) // and now it may not keep that address
	waitIPs(t, ns, "s", "198.51.100.0")
	waitEvent(t, ns, "s", controller.EventIPChanged, "192.0.2.0", "198.51.100.0")
}

func TestAutoAssignFalse(t *testing.T) {
	pool(t, "manual", func(p *v1.IPAddressPool) { p.Spec.AutoAssign = ptr(false) }, "192.0.2.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "auto", nil)
	waitEvent(t, ns, "auto", controller.EventAllocationFailed, "autoAssign disabled")
	service(t, ns, "named", func(s *corev1.Service) { s.Annotations[controller.AnnAddressPool] = "manual" })
	waitIPs(t, ns, "named", "192.0.2.0")
	service(t, ns, "requested", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "192.0.2.2" })
	waitIPs(t, ns, "requested", "192.0.2.2")
}

func TestAvoidBuggyIPs(t *testing.T) {
	pool(t, "buggy", func(p *v1.IPAddressPool) { p.Spec.AvoidBuggyIPs = true }, "192.0.2.255-192.0.3.1")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "a", nil)
	waitIPs(t, ns, "a", "192.0.3.1")
	service(t, ns, "b", func(s *corev1.Service) { s.Annotations[controller.AnnLoadBalancerIPs] = "192.0.3.0" })
	waitEvent(t, ns, "b", controller.EventAllocationFailed, "192.0.3.0 ends in .0", "avoids buggy IPs")
}

func TestDualStack(t *testing.T) {
	pool(t, "dual", nil, "192.0.2.0/30", "2001:db8::/126")
	p := pool(t, "v4later6", func(p *v1.IPAddressPool) { p.Spec.AutoAssign = ptr(false) }, "198.51.100.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	dual := func(policy corev1.IPFamilyPolicy, pool string) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Spec.IPFamilyPolicy = ptr(policy)
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
			if pool != "" {
				s.Annotations[controller.AnnAddressPool] = pool
			}
		}
	}
	service(t, ns, "req", dual(corev1.IPFamilyPolicyRequireDualStack, ""))
	waitIPs(t, ns, "req", "2001:db8::", "192.0.2.0") // primary family first
	service(t, ns, "pref", dual(corev1.IPFamilyPolicyPreferDualStack, "v4later6"))
	waitIPs(t, ns, "pref", "198.51.100.0")
	// The pool gains IPv6: the Service gets its second family, keeping the first.
	eventually(t, func() string {
		cur := &v1.IPAddressPool{}
		if err := cluster.Client.Get(ctxBG, client.ObjectKeyFromObject(p), cur); err != nil {
			return err.Error()
		}
		cur.Spec.Addresses = append(cur.Spec.Addresses, "2001:db8:1::/126")
		if err := cluster.Client.Update(ctxBG, cur); err != nil {
			return err.Error()
		}
		return ""
	})
	waitIPs(t, ns, "pref", "2001:db8:1::", "198.51.100.0")
}

func TestLoadBalancerClass(t *testing.T) {
	pool(t, "classes", nil, "192.0.2.0/30")
	run(t, controller.Options{LBClass: defaultClass})
	ns := namespace(t, nil)
	service(t, ns, "none", func(s *corev1.Service) { s.Spec.LoadBalancerClass = nil })
	waitIPs(t, ns, "none", "192.0.2.0")
	service(t, ns, "other", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr("example.com/other") })
	service(t, ns, "marker", func(s *corev1.Service) { s.Spec.LoadBalancerClass = nil })
	waitIPs(t, ns, "marker", "192.0.2.1")
	if got := ingress(get(t, ns, "other")); len(got) != 0 {
		t.Fatalf("a Service of another class got %v", got)
	}
}

func TestMetalLBAnnotationsAndWarning(t *testing.T) {
	pool(t, "mlb-a", nil, "192.0.2.0/30")
	pool(t, "mlb-b", nil, "198.51.100.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "alias", func(s *corev1.Service) { s.Annotations["metallb.universe.tf/loadBalancerIPs"] = "198.51.100.2" })
	waitIPs(t, ns, "alias", "198.51.100.2")
	service(t, ns, "both", func(s *corev1.Service) {
		s.Annotations[controller.AnnAddressPool] = "mlb-a"
		s.Annotations["metallb.io/address-pool"] = "mlb-b"
	})
	waitIPs(t, ns, "both", "192.0.2.0")
	waitEvent(t, ns, "both", controller.EventAnnotationWarning, "portico.dev/address-pool", "metallb.io/address-pool", "ignoring the MetalLB annotation")
}
