package bgpplan

import (
	"fmt"
	"net/netip"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/speaker/facts"
)

// BenchmarkGatherAndCompute10000 is the pure part of one speaker recompute
// with 10,000 BGP Services (a quarter with externalTrafficPolicy Local):
// gathering the facts and computing the node's plan.
func BenchmarkGatherAndCompute10000(b *testing.B) {
	w := base()
	w.pools[0].Spec.Addresses = []v1.AddressEntry{"2001:db8:1::/112"}
	for i := range 10000 {
		ip := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte(i >> 8), 15: byte(i)})
		s := w.service(fmt.Sprintf("s%05d", i), i%4 == 0, ip.String())
		node := fmt.Sprintf("node%d", i%3+1)
		w.slices = append(w.slices, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: s.Name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: s.Name}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: &node}},
		})
	}
	cfg := (&config.Builder{}).Build(config.Inputs{Pools: w.pools, BGPAdvertisements: w.ads, BGPPeers: w.peers})
	objs := facts.Objects{LocalNode: "node1", Config: cfg, Services: facts.Reduce(w.services, facts.ServiceOf), Endpoints: facts.Reduce(w.slices, facts.EndpointsOf), Nodes: w.nodes}
	if p := Compute(Inputs{Facts: facts.Gather(objs), LocalAddresses: w.addrs}); len(p.Paths) < 7500 {
		b.Fatalf("%d paths planned", len(p.Paths))
	}
	b.Run("gather", func(b *testing.B) {
		for b.Loop() {
			_ = facts.Gather(objs)
		}
	})
	f := facts.Gather(objs)
	b.Run("compute", func(b *testing.B) {
		for b.Loop() {
			_ = Compute(Inputs{Facts: f, LocalAddresses: w.addrs})
		}
	})
}
