package facts

import (
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/config"
)

func svc(name string, local bool, annotations map[string]string, ips ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: annotations}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	if local {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func TestGather(t *testing.T) {
	older := v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "z-older", CreationTimestamp: metav1.Unix(100, 0)}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"198.51.100.0/24"}}}
	newer := v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "a-newer", CreationTimestamp: metav1.Unix(200, 0)}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"198.51.100.128/25"}}}
	cfg := (&config.Builder{}).Build(config.Inputs{Pools: []v1.IPAddressPool{older, newer}})
	node2 := "node2"
	notReady := false
	classed := svc("classed", false, nil, "198.51.100.7")
	classed.Spec.LoadBalancerClass = new("example.com/other")
	o := Objects{
		LocalNode: "node1", Config: cfg,
		Services: Reduce([]*corev1.Service{
			svc("shared-b", false, nil, "198.51.100.200"),
			svc("shared-a", true, nil, "198.51.100.200"),
			svc("pinned", true, map[string]string{"portico.dev/ip-allocated-from-pool": "a-newer"}, "198.51.100.201"),
			svc("nowhere", false, nil, "203.0.113.9", "bogus"),
			classed,
		}, ServiceOf),
		Endpoints: Reduce([]*discoveryv1.EndpointSlice{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pinned-1", Labels: map[string]string{discoveryv1.LabelServiceName: "pinned"}},
			Endpoints:  []discoveryv1.Endpoint{{NodeName: &node2}, {NodeName: new("node3"), Conditions: discoveryv1.EndpointConditions{Ready: &notReady}}},
		}}, EndpointsOf),
		Nodes: []*corev1.Node{
			{ObjectMeta: metav1.ObjectMeta{Name: "node2", Labels: map[string]string{ExcludeLabel: ""}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "node3"}},
		},
	}
	f := Gather(o)
	if len(f.IPs) != 3 {
		t.Fatalf("IPs %+v", f.IPs)
	}
	shared, pinned, nowhere := f.IPs[0], f.IPs[1], f.IPs[2]
	if shared.Addr.String() != "198.51.100.200" || shared.Pool != "z-older" || shared.Local ||
		!slices.Equal(shared.Services, []types.NamespacedName{{Namespace: "ns", Name: "shared-a"}, {Namespace: "ns", Name: "shared-b"}}) {
		t.Errorf("shared IP: the older pool keeps the overlap, Local only when every sharer is: %+v", shared)
	}
	if pinned.Pool != "a-newer" || !pinned.Local || !slices.Equal(pinned.EndpointNodes, []string{"node2"}) {
		t.Errorf("pinned IP: the recorded pool wins, only ready endpoints count: %+v", pinned)
	}
	if nowhere.Addr.String() != "203.0.113.9" || nowhere.Pool != "" {
		t.Errorf("IP outside every pool: %+v", nowhere)
	}
	if n, ok := f.Node("node1"); !ok || !n.NetworkUnavailable || n.Eligible() {
		t.Errorf("node1 %+v", n)
	}
	if n, _ := f.Node("node2"); !n.Excluded || n.Eligible() {
		t.Errorf("node2 %+v", n)
	}
	if n, _ := f.Node("node3"); !n.Eligible() {
		t.Errorf("node3 %+v", n)
	}
	// The same objects in another order give the same facts.
	slices.Reverse(o.Services)
	slices.Reverse(o.Nodes)
	if g := Gather(o); !slices.EqualFunc(g.IPs, f.IPs, func(a, b IP) bool {
		return a.Addr == b.Addr && a.Pool == b.Pool && slices.Equal(a.Services, b.Services)
	}) {
		t.Error("input order changed the facts")
	}
}

func TestEndpointsOf(t *testing.T) {
	yes, no := true, false
	ep := func(node string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	}
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	tests := []struct {
		name      string
		label     string
		endpoints []discoveryv1.Endpoint
		want      SliceEndpoints
	}{
		{"one per ready node", "web", []discoveryv1.Endpoint{ep("a", &yes), ep("b", nil), ep("a", &yes), ep("b", &yes)}, SliceEndpoints{web, []string{"a", "b"}}},
		{"not ready left out", "web", []discoveryv1.Endpoint{ep("a", &no), ep("b", &yes)}, SliceEndpoints{web, []string{"b"}}},
		{"no node left out", "web", []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}, ep("", &yes), ep("c", &yes)}, SliceEndpoints{web, []string{"c"}}},
		{"none ready: nothing", "web", []discoveryv1.Endpoint{ep("a", &no)}, SliceEndpoints{}},
		{"no service: nothing to attribute", "", []discoveryv1.Endpoint{ep("a", &yes)}, SliceEndpoints{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-abcde"}, Endpoints: tt.endpoints}
			if tt.label != "" {
				es.Labels = map[string]string{discoveryv1.LabelServiceName: tt.label}
			}
			got := EndpointsOf(es, func(s string) string { return s })
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestServiceServes(t *testing.T) {
	now := metav1.Now()
	classed := svc("classed", false, nil)
	classed.Spec.LoadBalancerClass = new("example.com/other")
	deleting := svc("deleting", false, nil)
	deleting.DeletionTimestamp = &now
	nodePort := svc("nodeport", false, nil)
	nodePort.Spec.Type = corev1.ServiceTypeNodePort
	tests := []struct {
		svc   *corev1.Service
		class string
		want  bool
	}{
		{svc("plain", false, nil), "", true},
		{svc("plain", false, nil), "example.com/other", false},
		{classed, "example.com/other", true},
		{classed, "", false},
		{deleting, "", false},
		{nodePort, "", false},
	}
	for _, tt := range tests {
		s := ServiceOf(tt.svc, func(s string) string { return s })
		if got := s.Serves(tt.class); got != tt.want {
			t.Errorf("%s served by class %q: %v, want %v", tt.svc.Name, tt.class, got, tt.want)
		}
	}
}
