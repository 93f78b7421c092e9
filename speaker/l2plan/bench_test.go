package l2plan

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
)

// BenchmarkCompute1000 is the speaker's work after any change with 1,000 L2
// Services (a quarter with externalTrafficPolicy: Local) on 10 nodes.
func BenchmarkCompute1000(b *testing.B) {
	in := base()
	in.Nodes, in.Members = nil, nil
	for i := range 10 {
		name := fmt.Sprintf("node-%d", i)
		in.Nodes = append(in.Nodes, k8sNode(name, nil))
		in.Members = append(in.Members, Member{Name: name, Meta: Meta{Ready: true, Interfaces: eth1(true)}})
	}
	in.LocalNode = "node-0"
	in.Pools[0].Spec.Addresses = []porticov1.AddressEntry{"2001:db8::/112"}
	for i := range 1000 {
		ip := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		s := svc("ns", fmt.Sprintf("s%04d", i), ip.String())
		if i%4 == 0 {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			node := fmt.Sprintf("node-%d", i%10)
			in.EndpointSlices = append(in.EndpointSlices, &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: s.Name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: s.Name}},
				Endpoints:  []discoveryv1.Endpoint{{NodeName: &node}},
			})
		}
		in.Services = append(in.Services, s)
	}
	if p := compute(in); len(p.IPs) != 1000 {
		b.Fatalf("%d IPs planned", len(p.IPs))
	}
	for b.Loop() {
		_ = compute(in)
	}
}
