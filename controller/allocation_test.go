package controller_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/controller"
)

func TestAllocatesIPWithStatusAnnotationAndEvent(t *testing.T) {
	pool(t, "alloc", nil, "192.0.2.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "web", nil)
	s := waitIPs(t, ns, "web", "192.0.2.0")
	if m := s.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", m)
	}
	if got := s.Annotations[controller.AnnAllocatedFromPool]; got != "alloc" {
		t.Errorf("pool annotation = %q", got)
	}
	waitEvent(t, ns, "web", controller.EventIPAllocated, "192.0.2.0", `pool "alloc"`)
	eventually(t, func() string {
		c, st := poolCondition(t, "alloc")
		if c.Status != metav1.ConditionTrue || st.AssignedIPv4 != 1 || st.AvailableIPv4 != 3 {
			return fmt.Sprintf("pool status %+v", st)
		}
		return ""
	})
}

func TestRequestedIPOutsideEveryPool(t *testing.T) {
	pool(t, "outside", nil, "192.0.2.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "ok", nil)
	waitIPs(t, ns, "ok", "192.0.2.0")
	service(t, ns, "bad", func(s *corev1.Service) { s.Annotations[controller.AnnLoadBalancerIPs] = "203.0.113.99" })
	waitEvent(t, ns, "bad", controller.EventAllocationFailed, "203.0.113.99 is not in any pool")
	waitIPs(t, ns, "ok", "192.0.2.0")
	service(t, ns, "after", nil) // the controller keeps working
	waitIPs(t, ns, "after", "192.0.2.1")
}

func TestRequestedIPUsedWithAnotherSharingKey(t *testing.T) {
	pool(t, "keys", nil, "192.0.2.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "a", func(s *corev1.Service) { s.Annotations[controller.AnnAllowSharedIP] = "red" })
	waitIPs(t, ns, "a", "192.0.2.0")
	service(t, ns, "b", func(s *corev1.Service) {
		s.Annotations[controller.AnnAllowSharedIP] = "blue"
		s.Annotations[controller.AnnLoadBalancerIPs] = "192.0.2.0"
		s.Spec.Ports[0].Port = 443
	})
	waitEvent(t, ns, "b", controller.EventAllocationFailed, "192.0.2.0 is used by "+ns+"/a and the sharing keys differ")
	waitIPs(t, ns, "a", "192.0.2.0")
}

func TestRequestedIPv6ForIPv4OnlyService(t *testing.T) {
	pool(t, "v6req", nil, "192.0.2.0/30", "2001:db8::/126")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "v4", func(s *corev1.Service) {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		s.Annotations[controller.AnnLoadBalancerIPs] = "2001:db8::1"
	})
	waitEvent(t, ns, "v4", controller.EventAllocationFailed, "2001:db8::1 is IPv6, but the Service's ipFamilies are IPv4")
	if got := ingress(get(t, ns, "v4")); len(got) != 0 {
		t.Fatalf("ingress = %v, want none", got)
	}
}

func TestThreeIPsInLoadBalancerIPs(t *testing.T) {
	pool(t, "three", nil, "192.0.2.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "three", func(s *corev1.Service) {
		s.Annotations[controller.AnnLoadBalancerIPs] = "192.0.2.1,192.0.2.2,192.0.2.3"
	})
	waitEvent(t, ns, "three", controller.EventAllocationFailed, controller.AnnLoadBalancerIPs, "lists 3 addresses", "at most two")
}

func TestMalformedAnnotationKeepsCurrentIP(t *testing.T) {
	pool(t, "malformed", nil, "192.0.2.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "m", nil)
	waitIPs(t, ns, "m", "192.0.2.0")
	update(t, ns, "m", func(s *corev1.Service) { s.Annotations[controller.AnnLoadBalancerIPs] = "192.0.2.x" })
	waitEvent(t, ns, "m", controller.EventAllocationFailed, `"192.0.2.x" is not an IP address`, "keeps its current addresses")
	waitIPs(t, ns, "m", "192.0.2.0")
	// Fixing it moves the Service to the requested address.
	update(t, ns, "m", func(s *corev1.Service) { s.Annotations[controller.AnnLoadBalancerIPs] = "192.0.2.3" })
	waitIPs(t, ns, "m", "192.0.2.3")
	waitEvent(t, ns, "m", controller.EventIPChanged, "changed 192.0.2.0 to 192.0.2.3", "the Service requests 192.0.2.3")
}

func TestAddressPoolMissingOrPinnedElsewhere(t *testing.T) {
	pool(t, "open", nil, "192.0.2.0/30")
	pool(t, "pinned", func(p *v1.IPAddressPool) {
		p.Spec.Allocation = &v1.ServiceAllocation{Namespaces: []string{"somewhere-else"}}
	}, "198.51.100.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "ghost", func(s *corev1.Service) { s.Annotations[controller.AnnAddressPool] = "ghost" })
	waitEvent(t, ns, "ghost", controller.EventAllocationFailed, `pool "ghost" does not exist`)
	service(t, ns, "pinned", func(s *corev1.Service) { s.Annotations[controller.AnnAddressPool] = "pinned" })
	waitEvent(t, ns, "pinned", controller.EventAllocationFailed, `pool "pinned" is reserved for namespaces "somewhere-else"`, ns)
	service(t, ns, "fine", nil)
	waitIPs(t, ns, "fine", "192.0.2.0")
}

func TestExhaustedPoolRetriedWhenAnIPIsFreed(t *testing.T) {
	pool(t, "small", nil, "192.0.2.0/31")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "a", nil)
	waitIPs(t, ns, "a", "192.0.2.0")
	service(t, ns, "b", nil)
	waitIPs(t, ns, "b", "192.0.2.1")
	service(t, ns, "c", nil)
	waitEvent(t, ns, "c", controller.EventAllocationFailed, `pool "small" has no free IPv4 address`)
	if err := cluster.Client.Delete(ctxBG, get(t, ns, "a")); err != nil {
		t.Fatal(err)
	}
	waitIPs(t, ns, "c", "192.0.2.0")
	waitIPs(t, ns, "b", "192.0.2.1")
}

func TestOverlappingPoolsReportedAndNothingDropped(t *testing.T) {
	pool(t, "first", nil, "192.0.2.0/29")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "a", nil)
	waitIPs(t, ns, "a", "192.0.2.0")
	pool(t, "second", nil, "192.0.2.4/30", "198.51.100.0/30")
	eventually(t, func() string {
		c1, _ := poolCondition(t, "first")
		c2, _ := poolCondition(t, "second")
		if c1.Reason != "Overlap" || c2.Reason != "Overlap" || !strings.Contains(c2.Message, `overlaps pool "first" on 192.0.2.4/30`) {
			return fmt.Sprintf("conditions first=%+v second=%+v", c1, c2)
		}
		return ""
	})
	waitIPs(t, ns, "a", "192.0.2.0")
	service(t, ns, "b", func(s *corev1.Service) { s.Annotations[controller.AnnAddressPool] = "second" })
	waitIPs(t, ns, "b", "198.51.100.0") // not from the overlapping part
}

func TestPoolDeletedWhileInUse(t *testing.T) {
	pool(t, "doomed", func(p *v1.IPAddressPool) {
		p.Spec.Allocation = &v1.ServiceAllocation{Priority: 1}
	}, "192.0.2.0/30")
	pool(t, "spare", func(p *v1.IPAddressPool) {
		p.Spec.Allocation = &v1.ServiceAllocation{Priority: 2}
	}, "198.51.100.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "a", nil)
	waitIPs(t, ns, "a", "192.0.2.0")
	if err := cluster.Client.Delete(ctxBG, &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}); err != nil {
		t.Fatal(err)
	}
	s := waitIPs(t, ns, "a", "198.51.100.0")
	if s.Annotations[controller.AnnAllocatedFromPool] != "spare" {
		t.Errorf("pool annotation %q", s.Annotations[controller.AnnAllocatedFromPool])
	}
	waitEvent(t, ns, "a", controller.EventIPChanged, "changed 192.0.2.0 to 198.51.100.0", `pool "doomed" was removed`)
}

func TestRequireDualStackWithSingleFamilyPool(t *testing.T) {
	pool(t, "v4only", nil, "192.0.2.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "dual", func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyRequireDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	waitEvent(t, ns, "dual", controller.EventAllocationFailed, "needs IPv4 and IPv6 addresses from one pool", `pool "v4only" has no IPv6 addresses`)
	if got := ingress(get(t, ns, "dual")); len(got) != 0 {
		t.Fatalf("ingress = %v: RequireDualStack must get both or nothing", got)
	}
	// The address it briefly took is back in the pool.
	service(t, ns, "single", nil)
	waitIPs(t, ns, "single", "192.0.2.0")
}

func TestConflictingPortsOnSharedIP(t *testing.T) {
	pool(t, "ports", nil, "192.0.2.0/30")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "a", func(s *corev1.Service) { s.Annotations[controller.AnnAllowSharedIP] = "k" })
	waitIPs(t, ns, "a", "192.0.2.0")
	service(t, ns, "b", func(s *corev1.Service) {
		s.Annotations[controller.AnnAllowSharedIP] = "k"
		s.Annotations[controller.AnnLoadBalancerIPs] = "192.0.2.0"
	})
	waitEvent(t, ns, "b", controller.EventAllocationFailed, "port TCP/80 on 192.0.2.0 is already used by "+ns+"/a")
	update(t, ns, "b", func(s *corev1.Service) { s.Spec.Ports[0].Port = 8443 })
	waitIPs(t, ns, "b", "192.0.2.0")
	waitIPs(t, ns, "a", "192.0.2.0")
}

func TestFlippingBetweenLoadBalancerAndClusterIP(t *testing.T) {
	pool(t, "flip", nil, "192.0.2.0/29")
	run(t, controller.Options{})
	ns := namespace(t, nil)
	service(t, ns, "steady", nil)
	waitIPs(t, ns, "steady", "192.0.2.0")
	service(t, ns, "flip", nil)
	waitIPs(t, ns, "flip", "192.0.2.1")
	cls := class(t)
	for i := range 6 {
		update(t, ns, "flip", func(s *corev1.Service) {
			if i%2 == 0 {
				s.Spec.Type = corev1.ServiceTypeClusterIP
				s.Spec.LoadBalancerClass, s.Spec.AllocateLoadBalancerNodePorts = nil, nil
			} else {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.LoadBalancerClass, s.Spec.AllocateLoadBalancerNodePorts = &cls, ptr(false)
			}
		})
	}
	waitIPs(t, ns, "flip", "192.0.2.1")
	waitIPs(t, ns, "steady", "192.0.2.0")
	update(t, ns, "flip", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.LoadBalancerClass, s.Spec.AllocateLoadBalancerNodePorts = nil, nil
	})
	eventually(t, func() string {
		s := get(t, ns, "flip")
		if _, ok := s.Annotations[controller.AnnAllocatedFromPool]; ok || len(ingress(s)) > 0 {
			return fmt.Sprintf("ClusterIP Service still has ingress %v / annotations %v", ingress(s), s.Annotations)
		}
		return ""
	})
	waitEvent(t, ns, "flip", controller.EventIPReleased, "192.0.2.1", "no longer of type LoadBalancer")
	service(t, ns, "next", nil)
	waitIPs(t, ns, "next", "192.0.2.1")
}
