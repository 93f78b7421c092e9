package speaker

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/speaker/facts"
)

// fresh returns a copy of s in memory of its own, as a decoder would
// produce for each object.
func fresh(s string) string { return strings.Clone(s) }

func sameMemory(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// TestTrimEndpointSlice: the informer can key the cached form, it holds
// what facts reads (see facts' TestEndpointsOf for the rules) and shares
// node names between slices.
func TestTrimEndpointSlice(t *testing.T) {
	trim := trimmer{in: newInterner()}
	mk := func(name, svc string) *discoveryv1.EndpointSlice {
		node := fresh("node1")
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: "42",
				Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: &node}},
		}
	}
	a, err := trim.endpointSlice(mk("web-abcde", "web"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := trim.endpointSlice(mk("api-fghij", "api"))
	key, err := toolscache.MetaNamespaceKeyFunc(a)
	if err != nil || key != "ns/web-abcde" {
		t.Errorf("key %q, %v; want ns/web-abcde", key, err)
	}
	acc, err := meta.Accessor(a)
	if err != nil || acc.GetResourceVersion() != "42" {
		t.Errorf("resourceVersion of %v: %v", acc, err)
	}
	ca, cb := a.(*cachedEndpoints), b.(*cachedEndpoints)
	want := facts.SliceEndpoints{Service: types.NamespacedName{Namespace: "ns", Name: "web"}, Nodes: []string{"node1"}}
	if !reflect.DeepEqual(ca.SliceEndpoints, want) {
		t.Errorf("cached %+v, want %+v", ca.SliceEndpoints, want)
	}
	if !sameMemory(ca.Nodes[0], cb.Nodes[0]) {
		t.Error("node names are not shared")
	}
	if cp := ca.DeepCopyObject().(*cachedEndpoints); !reflect.DeepEqual(cp, ca) || &cp.Nodes[0] == &ca.Nodes[0] {
		t.Error("DeepCopyObject is not a deep copy")
	}
}

// TestTrimService: the informer can key the cached form, it holds what
// facts reads, namespaces and pool names are shared, and events get a
// reference naming the Service.
func TestTrimService(t *testing.T) {
	trim := trimmer{in: newInterner()}
	mk := func(name string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: fresh("ns"), Name: name, UID: "uid-" + types.UID(name), ResourceVersion: "7", Annotations: map[string]string{
				"portico.dev/address-pool":           "blue",
				"portico.dev/ip-allocated-from-pool": fresh(" blue "),
				"kubectl.kubernetes.io/last-applied": "{...}",
			}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "2001:db8::2"}, {IP: "192.0.2.1"}}}},
		}
	}
	a, err := trim.service(mk("web"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := trim.service(mk("api"))
	if key, err := toolscache.MetaNamespaceKeyFunc(a); err != nil || key != "ns/web" {
		t.Errorf("key %q, %v; want ns/web", key, err)
	}
	if acc, err := meta.Accessor(a); err != nil || acc.GetResourceVersion() != "7" || acc.GetUID() != "uid-web" {
		t.Errorf("meta of %v: %v", acc, err)
	}
	ca, cb := a.(*cachedService), b.(*cachedService)
	want := facts.Service{
		NamespacedName: types.NamespacedName{Namespace: "ns", Name: "web"}, UID: "uid-web",
		LoadBalancer: true, Local: true, PoolHint: "blue",
		IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::2")},
	}
	if !reflect.DeepEqual(ca.Service, want) {
		t.Errorf("cached %+v, want %+v", ca.Service, want)
	}
	if !sameMemory(ca.Namespace, cb.Namespace) || !sameMemory(ca.PoolHint, cb.PoolHint) {
		t.Error("namespaces or pool names are not shared")
	}
	if ref := ca.reference(); ref.Name != "web" || ref.Namespace != "ns" || ref.UID != "uid-web" || ref.ResourceVersion != "7" {
		t.Errorf("reference %+v", ref.ObjectMeta)
	}
	if cp := ca.DeepCopyObject().(*cachedService); !reflect.DeepEqual(cp, ca) || &cp.IPs[0] == &ca.IPs[0] {
		t.Error("DeepCopyObject is not a deep copy")
	}
}

func TestTrimServiceAnnouncementSharesNames(t *testing.T) {
	trim := trimmer{in: newInterner()}
	mk := func(i int) *porticov1.ServiceAnnouncement {
		ip := fmt.Sprintf("2001:db8::%x", i)
		sa := &porticov1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: fresh("ns"), Name: fmt.Sprint("svc", i),
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "x"}}}}
		for _, n := range []string{"node1", "node2"} {
			sa.Status.BGP = append(sa.Status.BGP, porticov1.BGPAnnouncement{IP: fresh(ip), Node: fresh(n), Peers: []string{fresh("tor-a"), fresh("tor-b")}})
		}
		sa.Status.L2 = []porticov1.L2Announcement{{IP: fresh(ip), Node: fresh("node1"), Interfaces: []string{fresh("eth0")}}}
		return sa
	}
	a, b := mk(1), mk(2)
	want := a.DeepCopy()
	want.ManagedFields = nil
	oa, _ := trim.serviceAnnouncement(a)
	ob, _ := trim.serviceAnnouncement(b)
	ta, tb := oa.(*porticov1.ServiceAnnouncement), ob.(*porticov1.ServiceAnnouncement)
	if !reflect.DeepEqual(ta, want) {
		t.Errorf("trimming changed the object:\n%+v\nwant\n%+v", ta, want)
	}
	if !sameMemory(ta.Status.BGP[0].Node, tb.Status.BGP[0].Node) || !sameMemory(ta.Status.L2[0].Node, tb.Status.BGP[0].Node) {
		t.Error("node names are not shared")
	}
	if &ta.Status.BGP[0].Peers[0] != &tb.Status.BGP[1].Peers[0] {
		t.Error("peer lists are not shared")
	}
	if !sameMemory(ta.Status.BGP[0].IP, ta.Status.BGP[1].IP) {
		t.Error("the entries of one IP do not share it")
	}
	if !sameMemory(ta.Namespace, tb.Namespace) {
		t.Error("namespaces are not shared")
	}
}

func TestInternerLimit(t *testing.T) {
	in := newInterner()
	for i := range internLimit + 10 {
		in.str(fmt.Sprint("name-", i))
	}
	if len(in.strs) != internLimit {
		t.Errorf("%d strings kept, limit %d", len(in.strs), internLimit)
	}
	if got := in.str("past-the-limit"); got != "past-the-limit" {
		t.Errorf("got %q", got)
	}
	if in.list(nil) != nil || in.str("") != "" {
		t.Error("empty values are not returned as empty")
	}
}
