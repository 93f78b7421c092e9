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

// reportDurations prints the median and the maximum of ds in ms.
func reportDurations(name string, ds []time.Duration) { reportQuantiles(name, ds, 50) }

// reportQuantiles prints the given percentiles (nearest rank above: p50 of
// an even count is the upper median) and the maximum of ds in ms.
func reportQuantiles(name string, ds []time.Duration, percents ...int) {
	s := slices.Sorted(slices.Values(ds))
	for _, p := range percents {
		report(fmt.Sprintf("%s_p%d", name, p), s[min(len(s)*p/100, len(s)-1)].Seconds()*1000, "ms")
	}
	report(name+"_max", s[len(s)-1].Seconds()*1000, "ms")
}

// progress prints a line on stderr, where the benchmarks' progress goes.
func progress(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// bench runs the lab benchmark suites named in $LAB_BENCH (comma-separated;
// default "l2,bgp"), each in a lab of its own: l2 takes the -trials and
// -services flags, bgp its $BGP_* variables (bench_bgp.go), leader and soak
// theirs (bench_faults.go).
func bench(name string, nodes, trials, services int) error {
	suites := os.Getenv("LAB_BENCH")
	if suites == "" {
		suites = "l2,bgp"
	}
	for _, s := range strings.Split(suites, ",") {
		var err error
		switch strings.TrimSpace(s) {
		case "l2":
			err = benchL2(name, nodes, trials, services)
		case "bgp":
			err = benchBGP(name, nodes)
		case "leader":
			err = benchLeader(name, nodes)
		case "soak":
			err = benchSoak(name, nodes)
		default:
			err = fmt.Errorf("LAB_BENCH=%q: unknown suite %q (want l2, bgp, leader or soak, comma-separated)", suites, s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// benchLab starts the lab of one suite and returns it with a context that
// bounds the suite; done ends the context and tears the lab down.
// speakerFlags are added to the speakers' command lines.
func benchLab(name string, nodes int, timeout time.Duration, speakerFlags ...string) (l *lab.Lab, ctx context.Context, done func(), err error) {
	opts := lab.Opts{Name: name, Nodes: nodes, Progress: func(s string) { progress("lab: %s", s) }}
	if len(speakerFlags) > 0 {
		opts.SpeakerArgs = func(n *lab.Node, kubeconfig string) []string {
			return append([]string{"--node-name=" + n.Name, "--kubeconfig=" + kubeconfig}, speakerFlags...)
		}
	}
	l, err = lab.Up(opts)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	return l, ctx, func() { cancel(); _ = l.Down() }, nil
}

func benchL2(name string, nodes, trials, services int) error {
	l, ctx, done, err := benchLab(name+"-bench", nodes, 20*time.Minute)
	if err != nil {
		return err
	}
	defer done()
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
	if _, err := createServices(ctx, l, count, time.Time{}, "mem-%d", lab.ServiceOpts{IPv6: true,
		Annotations: map[string]string{"portico.dev/address-pool": "mem"}}); err != nil {
		return err
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

func vmHWM(pid int) (int, error) { return procStatusKB(pid, "VmHWM") }

// procStatusKB reads a kB field ("VmRSS", "VmHWM") of /proc/PID/status.
func procStatusKB(pid int, field string) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// createServices creates Services 0, 1, ... count-1 named by format (with
// %d) and o, eight at a time (the API server's ceiling on this machine). It
// starts no new one after until (zero: no limit) and returns how many it
// created, or the first error.
func createServices(ctx context.Context, l *lab.Lab, count int, until time.Time, format string, o lab.ServiceOpts) (int, error) {
	work := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if _, err := l.CreateService(ctx, fmt.Sprintf(format, i), o); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		})
	}
	fed := 0
	for ; fed < count && (until.IsZero() || time.Now().Before(until)); fed++ {
		work <- fed
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return 0, err
	default:
		return fed, nil
	}
}
