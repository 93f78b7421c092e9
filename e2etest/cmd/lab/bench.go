package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// probeEvery is the benchmarks' client probe interval.
const probeEvery = 20 * time.Millisecond

// report prints a figure on its own line, as `make bench` expects.
func report(name string, value float64, unit string) {
	fmt.Printf("BENCH %s %.3f %s\n", name, value, unit)
}

func reportDurations(name string, ds []time.Duration) {
	s := slices.Sorted(slices.Values(ds))
	report(name+"_p50", s[len(s)/2].Seconds()*1000, "ms")
	report(name+"_max", s[len(s)-1].Seconds()*1000, "ms")
}

func bench(name string, nodes, trials, services int) error {
	l, err := lab.Up(lab.Opts{Name: name + "-bench", Nodes: nodes, Progress: func(s string) { fmt.Fprintf(os.Stderr, "lab: %s\n", s) }})
	if err != nil {
		return err
	}
	defer l.Down()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	auto := true
	if err := l.Client.Create(ctx, &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: porticov1.IPAddressPoolSpec{AutoAssign: &auto, Addresses: []porticov1.AddressEntry{lab.PoolV4}}}); err != nil {
		return err
	}
	if err := l.Client.Create(ctx, &porticov1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: porticov1.L2AdvertisementSpec{PoolAndNodeSelection: porticov1.PoolAndNodeSelection{IPAddressPools: []string{"bench", "mem"}}}}); err != nil {
		return err
	}
	if err := benchAnnounce(ctx, l, trials); err != nil {
		return fmt.Errorf("announcement benchmark: %w (logs: %s)", err, l.RunDir)
	}
	if err := benchFailover(ctx, l, trials); err != nil {
		return fmt.Errorf("failover benchmark: %w (logs: %s)", err, l.RunDir)
	}
	if services > 0 {
		if err := benchMemory(ctx, l, services); err != nil {
			return fmt.Errorf("memory benchmark: %w (logs: %s)", err, l.RunDir)
		}
	}
	return nil
}

// benchAnnounce: Service created -> the client's first HTTP answer. Every
// trial uses a new IP and the client's neighbour table is flushed first, so
// that the answer needs the speaker's ARP reply.
func benchAnnounce(ctx context.Context, l *lab.Lab, trials int) error {
	var ds []time.Duration
	for i := range trials {
		if _, err := lab.Exec(l.ClientNS, "ip", "neigh", "flush", "all"); err != nil {
			return err
		}
		start := time.Now()
		ip, err := createIP(ctx, l, fmt.Sprintf("announce-%d", i))
		if err != nil {
			return err
		}
		p, err := l.WaitHTTP(ctx, ip, probeEvery, nil)
		if err != nil {
			return err
		}
		d := p.At.Sub(start)
		fmt.Fprintf(os.Stderr, "announce trial %d: %s answered by %s after %s\n", i+1, ip, p.Node, d.Round(time.Millisecond))
		ds = append(ds, d)
	}
	reportDurations("l2_announce_latency", ds)
	for i := range trials {
		if err := l.DeleteService(ctx, fmt.Sprintf("announce-%d", i)); err != nil {
			return err
		}
	}
	return nil
}

// benchFailover: kill the announcing node (speaker SIGKILL and data link
// cut) -> the client's first HTTP answer from another node.
func benchFailover(ctx context.Context, l *lab.Lab, trials int) error {
	var ds []time.Duration
	for i := range trials {
		name := fmt.Sprintf("failover-%d", i)
		ip, err := createIP(ctx, l, name)
		if err != nil {
			return err
		}
		before, err := l.WaitHTTP(ctx, ip, probeEvery, nil)
		if err != nil {
			return err
		}
		old := l.Node(before.Node)
		killed := time.Now()
		l.KillSpeaker(old)
		if err := l.CutDataLink(old); err != nil {
			return err
		}
		p, err := l.WaitHTTP(ctx, ip, probeEvery, func(n string) bool { return n != old.Name })
		if err != nil {
			return err
		}
		d := p.At.Sub(killed)
		fmt.Fprintf(os.Stderr, "failover trial %d: %s moved from %s to %s in %s\n", i+1, ip, old.Name, p.Node, d.Round(time.Millisecond))
		ds = append(ds, d)
		if err := heal(ctx, l, old); err != nil {
			return err
		}
		if err := l.DeleteService(ctx, name); err != nil {
			return err
		}
	}
	reportDurations("l2_failover_node_death", ds)
	return nil
}

// createIP creates an IPv4 Service and waits for its IP.
func createIP(ctx context.Context, l *lab.Lab, name string) (netip.Addr, error) {
	if _, err := l.CreateService(ctx, name, lab.ServiceOpts{}); err != nil {
		return netip.Addr{}, err
	}
	return l.WaitIngress(ctx, name)
}

func heal(ctx context.Context, l *lab.Lab, n *lab.Node) error {
	if err := l.RestoreDataLink(n); err != nil {
		return err
	}
	if err := l.StartSpeaker(n); err != nil {
		return err
	}
	var names []string
	for _, n := range l.Nodes {
		names = append(names, n.Name)
	}
	return l.WaitMembers(ctx, names...)
}

// benchMemory creates count IPv6 L2 Services (IPv4 ClusterIPs are scarce in
// the lab's documentation range), waits until the speakers announce all of
// them, and reports each speaker's peak resident memory (VmHWM).
func benchMemory(ctx context.Context, l *lab.Lab, count int) error {
	auto := false
	if err := l.Client.Create(ctx, &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "mem"},
		Spec: porticov1.IPAddressPoolSpec{AutoAssign: &auto, Addresses: []porticov1.AddressEntry{"2001:db8:1::1:0/112"}}}); err != nil {
		return err
	}
	start := time.Now()
	work := make(chan int)
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				_, err := l.CreateService(ctx, fmt.Sprintf("mem-%d", i), lab.ServiceOpts{IPv6: true,
					Annotations: map[string]string{"portico.dev/address-pool": "mem"}})
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		})
	}
	for i := range count {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	fmt.Fprintf(os.Stderr, "memory: %d Services created in %s\n", count, time.Since(start).Round(time.Millisecond))
	for {
		var list porticov1.SpeakerStatusList
		if err := l.Client.List(ctx, &list); err != nil {
			return err
		}
		total := 0
		for _, s := range list.Items {
			total += int(s.Status.L2IPs)
		}
		if total >= count {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("speakers announce %d of %d IPs", total, count)
		}
		time.Sleep(500 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "memory: all %d IPs announced %s after the first create\n", count, time.Since(start).Round(time.Millisecond))
	probe := netip.MustParseAddr("2001:db8:1::1:0") // the pool's first IP
	if _, err := l.WaitHTTP(ctx, probe, probeEvery, nil); err != nil {
		return err
	}
	var peak int
	for _, n := range l.Nodes {
		kb, err := vmHWM(l.Proc("speaker-" + n.Name).PID)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "memory: speaker on %s VmHWM %d kB\n", n.Name, kb)
		peak = max(peak, kb)
	}
	report(fmt.Sprintf("speaker_vmhwm_%d_l2_services", count), float64(peak)/1024, "MiB")
	return nil
}

func vmHWM(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
