package speaker_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/netnstest"
)

var memOnce sync.Once

// BenchmarkSpeakerMemory1000Services reports the Go heap one speaker holds
// with 1,000 L2 Services (each with an EndpointSlice) that it announces,
// alone, from a node namespace: informer cache, plan and announcer. Run with
//
//	go test -run '^$' -bench SpeakerMemory -benchtime 1x ./speaker/
//
// The figure is measured once, the first time the benchmark runs.
func BenchmarkSpeakerMemory1000Services(b *testing.B) {
	netnstest.Require(b)
	memOnce.Do(func() { measureMemory(b, 1000) })
}

var memBGPOnce sync.Once

// BenchmarkSpeakerMemoryBGP10000Services is the same with 10,000 BGP
// Services and one (unreachable) peer: informer cache, plan, gobgp's tables
// and status. With PORTICO_HEAP_PROFILE=FILE it writes a heap profile
// there. Run with
//
//	go test -run '^$' -bench SpeakerMemoryBGP -benchtime 1x -timeout 30m ./speaker/
func BenchmarkSpeakerMemoryBGP10000Services(b *testing.B) {
	netnstest.Require(b)
	memBGPOnce.Do(func() { measureBGPMemory(b, 10000) })
}

func measureMemory(b *testing.B, n int) {
	ns := memoryLab(b, "spkmem")
	createMemoryObjects(b, "mem", "mem-node", n, 1)
	poolAndAd(b, "mem", "2001:db8:1::/112")

	before := heapInUse()
	r := startSpeaker(b, "mem-node", ns)
	deadline := time.Now().Add(5 * time.Minute)
	for len(r.sp.Owned()) < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if got := len(r.sp.Owned()); got < n {
		b.Fatalf("the speaker owns %d of %d IPs", got, n)
	}
	time.Sleep(2 * time.Second) // let status writing settle
	after := heapInUse()
	b.ReportMetric(float64(after-before)/(1<<20), "MiB-heap")
	b.Logf("speaker heap with %d L2 Services: %.1f MiB (Go heap in use, after GC)", n, float64(after-before)/(1<<20))
	r.stop(b)
}

func measureBGPMemory(b *testing.B, n int) {
	ns := memoryLab(b, "spkbgpmem")
	ns.Run(b, "ip", "addr", "add", "2001:db8:ff::2/64", "dev", "eth1", "nodad")
	createMemoryObjects(b, "bgpmem", "bgpmem-node", n, 2)
	mustCreate(b,
		&porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgpmem-pool"},
			Spec: porticov1.IPAddressPoolSpec{Addresses: []porticov1.AddressEntry{"2001:db8:2::/112"}}},
		&porticov1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgpmem"},
			Spec: porticov1.BGPAdvertisementSpec{PoolAndNodeSelection: porticov1.PoolAndNodeSelection{IPAddressPools: []string{"bgpmem-pool"}}}},
		// Nothing listens at the peer's address: the session stays down,
		// the routes are planned and kept in gobgp's tables all the same.
		&porticov1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "bgpmem"},
			Spec: porticov1.BGPPeerSpec{MyASN: 64501, PeerASN: 64500, PeerAddress: "2001:db8:ff::1"}},
	)

	before := heapInUse()
	start := time.Now()
	r := startSpeaker(b, "bgpmem-node", ns)
	deadline := time.Now().Add(10 * time.Minute)
	for r.sp.BGPPathCount() < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if got := r.sp.BGPPathCount(); got < n {
		b.Fatalf("the speaker plans %d of %d paths", got, n)
	}
	b.Logf("the speaker planned %d paths %s after it started", n, time.Since(start).Round(time.Millisecond))
	time.Sleep(5 * time.Second) // let status writing settle
	after := heapInUse()
	b.ReportMetric(float64(after-before)/(1<<20), "MiB-heap")
	b.Logf("speaker heap with %d BGP Services: %.1f MiB (Go heap in use, after GC)", n, float64(after-before)/(1<<20))
	if file := os.Getenv("PORTICO_HEAP_PROFILE"); file != "" {
		f, err := os.Create(file)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	r.stop(b)
}

// memoryLab makes the speaker's node namespace, with eth1 up towards a
// peer namespace.
func memoryLab(b *testing.B, name string) *netnstest.NS {
	ensureSecret(b)
	ns := netnstest.New(b, name)
	peer := netnstest.New(b, name+"peer")
	netnstest.Veth(b, ns, "eth1", peer, "eth0")
	ns.Run(b, "ip", "link", "set", "eth1", "up")
	peer.Run(b, "ip", "link", "set", "eth0", "up")
	return ns
}

// createMemoryObjects creates node, namespace and n LoadBalancer Services
// in it, each with an IP from 2001:db8:<net>::/112 in its status (as the
// controller would write it) and an EndpointSlice with one endpoint on
// node.
func createMemoryObjects(b *testing.B, namespace, nodeName string, n int, net byte) {
	ctx := context.Background()
	create := func(o client.Object) {
		if err := cluster.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			b.Errorf("creating %s: %v", o.GetName(), err)
		}
	}
	create(node(nodeName))
	create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}})
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				ip := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, net, 14: byte((i + 1) >> 8), 15: byte(i + 1)})
				name := fmt.Sprintf("svc-%05d", i)
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": name}},
					Spec: corev1.ServiceSpec{
						Type: corev1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: new(false),
						Selector: map[string]string{"app": name},
						Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
					},
				}
				create(svc)
				svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip.String()}}
				if err := cluster.Client.Status().Update(ctx, svc); err != nil && !apierrors.IsConflict(err) {
					b.Errorf("setting %s's IP: %v", name, err)
				}
				create(&discoveryv1.EndpointSlice{
					ObjectMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
					AddressType: discoveryv1.AddressTypeIPv4,
					Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: new(nodeName)}},
				})
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
