package e2etest

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-lb/portico/e2etest/lab"
)

// probeEvery is how often failover tests ask the Service from the client.
const probeEvery = 50 * time.Millisecond

func TestL2IPv4(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	ip := service(t, ctx, "v4", lab.ServiceOpts{})
	n := announcer(t, ctx, ip, nil)
	t.Logf("%s is announced by %s (%s)", ip, n.Name, n.MAC)
}

func TestL2IPv6(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	ip := service(t, ctx, "v6", lab.ServiceOpts{IPv6: true})
	if !ip.Is6() {
		t.Fatalf("IPv6 Service got %s", ip)
	}
	n := announcer(t, ctx, ip, nil)
	t.Logf("%s is announced by %s (%s)", ip, n.Name, n.MAC)
}

func TestL2SpreadOverNodes(t *testing.T) {
	ctx := testCtx(t, 120*time.Second)
	pool(t, ctx, "spread", nil, "198.51.100.200-198.51.100.211")
	var ips []string
	for i := range 12 {
		ip := service(t, ctx, "spread-"+string(rune('a'+i)), lab.ServiceOpts{
			Annotations: map[string]string{"portico.dev/address-pool": "spread"},
		})
		ips = append(ips, ip.String())
	}
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	for _, s := range ips {
		wg.Go(func() {
			n := announcer(t, ctx, mustAddr(s), nil)
			mu.Lock()
			count[n.Name]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("IPs per node: %v", count)
	for _, n := range theLab.Nodes {
		if count[n.Name] == 0 {
			t.Errorf("%s announces none of the 12 IPs: %v", n.Name, count)
		}
	}
}

func TestL2TrafficPolicyLocal(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	n1, n2 := theLab.Nodes[1], theLab.Nodes[2]
	ip := service(t, ctx, "local", lab.ServiceOpts{Local: true, EndpointNodes: []string{n1.Name}})
	if got := announcer(t, ctx, ip, nil); got != n1 {
		t.Fatalf("externalTrafficPolicy Local with the only endpoint on %s is announced by %s", n1.Name, got.Name)
	}
	if err := theLab.SetEndpoints(ctx, "local", false, n2.Name); err != nil {
		t.Fatal(err)
	}
	announcer(t, ctx, ip, func(n *lab.Node) bool { return n == n2 })
}

func TestL2NodeSelector(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	chosen := theLab.Nodes[0]
	setNodeLabel(t, ctx, chosen, "lab.portico.dev/l2", "yes")
	pool(t, ctx, "selected", map[string]string{"lab.portico.dev/l2": "yes"}, "198.51.100.220-198.51.100.227")
	// Several IPs, so that hashing alone would put some elsewhere.
	for _, name := range []string{"sel-a", "sel-b", "sel-c", "sel-d"} {
		ip := service(t, ctx, name, lab.ServiceOpts{Annotations: map[string]string{"portico.dev/address-pool": "selected"}})
		if got := announcer(t, ctx, ip, nil); got != chosen {
			t.Errorf("%s (%s) is announced by %s; only %s matches the node selector", name, ip, got.Name, chosen.Name)
		}
	}
}

func setNodeLabel(t *testing.T, ctx context.Context, n *lab.Node, key, value string) {
	t.Helper()
	patch := func(v *string) error {
		var node corev1.Node
		if err := theLab.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &node); err != nil {
			return err
		}
		orig := node.DeepCopy()
		if v == nil {
			delete(node.Labels, key)
		} else {
			node.Labels[key] = *v
		}
		return theLab.Client.Patch(ctx, &node, client.MergeFrom(orig))
	}
	if err := patch(&value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := patch(nil); err != nil {
			t.Errorf("removing label %s from %s: %v", key, n.Name, err)
		}
	})
}

// failover makes the announcer of a fresh Service fail with breakNode and
// checks that another node answers ARP and HTTP afterwards.
func failover(t *testing.T, name string, breakNode func(*lab.Node)) {
	ctx := testCtx(t, 120*time.Second)
	ip := service(t, ctx, name, lab.ServiceOpts{})
	old := announcer(t, ctx, ip, nil)
	heal(t, old)
	breakNode(old)
	p, err := theLab.WaitHTTP(ctx, ip, probeEvery, func(node string) bool { return node != old.Name })
	if err != nil {
		t.Fatalf("after %s failed: %v", old.Name, err)
	}
	now := announcer(t, ctx, ip, not(old))
	t.Logf("%s moved from %s to %s (first answer from %s)", ip, old.Name, now.Name, p.Node)
}

func TestFailoverSpeakerKilled(t *testing.T) {
	failover(t, "killed", theLab.KillSpeaker)
}

func TestFailoverNodeDeath(t *testing.T) {
	failover(t, "death", func(n *lab.Node) {
		theLab.KillSpeaker(n)
		if err := theLab.CutDataLink(n); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFailoverCarrierLoss(t *testing.T) {
	failover(t, "carrier", func(n *lab.Node) {
		if err := theLab.CutDataLink(n); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAPIServerOutage stops the API server for 30 s: the client keeps
// reaching the Service, and a speaker killed during the outage still fails
// over.
func TestAPIServerOutage(t *testing.T) {
	ctx := testCtx(t, 240*time.Second)
	ip := service(t, ctx, "outage", lab.ServiceOpts{})
	old := announcer(t, ctx, ip, nil)
	heal(t, old)
	theLab.StopAPIServer()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := theLab.StartAPIServer(context.Background()); err != nil {
				t.Errorf("restarting the API server: %v", err)
			}
		}
	})
	start := time.Now()
	outage := 30 * time.Second
	// First third: the announcer keeps serving.
	for time.Since(start) < outage/3 {
		if got, err := theLab.HTTPGet(ctx, ip, time.Second); err != nil || got != old.Name {
			t.Fatalf("%s into the API server outage: HTTP answer %q, %v; want %s", time.Since(start).Round(time.Millisecond), got, err, old.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	theLab.KillSpeaker(old)
	p, err := theLab.WaitHTTP(ctx, ip, probeEvery, func(node string) bool { return node != old.Name })
	if err != nil {
		t.Fatalf("failover during the API server outage: %v", err)
	}
	t.Logf("failed over to %s during the outage", p.Node)
	for time.Since(start) < outage {
		if got, err := theLab.HTTPGet(ctx, ip, time.Second); err != nil || got != p.Node {
			t.Fatalf("%s into the outage, after failover: HTTP answer %q, %v; want %s", time.Since(start).Round(time.Millisecond), got, err, p.Node)
		}
		time.Sleep(200 * time.Millisecond)
	}
	restarted = true
	if err := theLab.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// The controller and the speakers must be back at once: a Service
	// created right after the outage gets its IP and is answered on the wire
	// (client-go's own backoff would leave them blind for up to a minute).
	newIP := service(t, ctx, "after-outage", lab.ServiceOpts{})
	// On the wire means ARP: the lab's kube-proxy stand-in that answers
	// HTTP waits out client-go's own backoff and may take longer.
	for {
		if _, err := theLab.Announcer(newIP); err == nil {
			break
		}
		if time.Since(back) > 15*time.Second {
			t.Fatalf("%s not answered on the wire 15 s after the API server was back", newIP)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a Service created after the outage was answered on the wire %s after the API server was back", time.Since(back).Round(time.Millisecond))
	announcer(t, ctx, ip, not(old))
}

func TestServiceDeletedStopsAnswers(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	for _, v6 := range []bool{false, true} {
		name := map[bool]string{false: "gone4", true: "gone6"}[v6]
		ip := service(t, ctx, name, lab.ServiceOpts{IPv6: v6})
		announcer(t, ctx, ip, nil)
		if err := theLab.DeleteService(ctx, name); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		for {
			macs, err := theLab.Replies(ip)
			if err != nil {
				t.Fatal(err)
			}
			if len(macs) == 0 {
				t.Logf("%s: no answer %s after deletion", ip, time.Since(deleted).Round(time.Millisecond))
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s still answered by %v after its Service was deleted", ip, macs)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// TestBadL2Advertisement: advertisements naming a missing pool or interface
// are reported, and the Service already announced keeps its announcer.
func TestBadL2Advertisement(t *testing.T) {
	ctx := testCtx(t, 90*time.Second)
	ip := service(t, ctx, "steady", lab.ServiceOpts{})
	before := announcer(t, ctx, ip, nil)
	bad := map[string][]string{
		"bad-pool":  {"no-such-pool"},
		"bad-iface": {"nosuch0"},
	}
	if err := createL2Adv(ctx, "bad-pool", []string{"no-such-pool"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	cleanupDelete(t, l2adv("bad-pool"))
	if err := createL2Adv(ctx, "bad-iface", []string{"lab"}, []string{"nosuch0"}, nil); err != nil {
		t.Fatal(err)
	}
	cleanupDelete(t, l2adv("bad-iface"))
	for _, name := range mapsKeys(bad) {
		for {
			ok, seen := mentioned(ctx, name, bad[name]...)
			if ok {
				t.Logf("%s: %s", name, seen)
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("L2Advertisement %s: no False condition or event naming %v; saw: %s", name, bad[name], seen)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if after := announcer(t, ctx, ip, nil); after != before {
		t.Errorf("announcer of %s moved from %s to %s after bad advertisements", ip, before.Name, after.Name)
	}
	ip2 := service(t, ctx, "steady-new", lab.ServiceOpts{})
	announcer(t, ctx, ip2, nil)
}
