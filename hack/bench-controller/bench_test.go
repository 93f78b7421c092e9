package benchcontroller

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/testcluster"
)

const (
	writers = 8 // concurrent clients, as in the API server ceiling of LAB-NOTES
	// warmup numbers the Service created before the burst, outside 0..n+1.
	warmup = 99999
)

func count() int {
	if n, err := strconv.Atoi(os.Getenv("PORTICO_BENCH_SERVICES")); err == nil && n > 0 {
		return n
	}
	return 10000
}

func report(name string, value float64, unit string) {
	fmt.Printf("BENCH %s %.3f %s\n", name, value, unit)
}

// BenchmarkControllerEndToEnd runs once whatever b.N is: it is a measurement
// of a whole system, not a loop.
func BenchmarkControllerEndToEnd(b *testing.B) {
	n := count()
	root, _ := testcluster.RepoRoot()
	bin := filepath.Join(root, "bin", "portico-controller")
	if _, err := os.Stat(bin); err != nil {
		b.Fatalf("%s not built: run make build", bin)
	}
	ctx := context.Background()

	// 1. The API server's ceiling for this work, on its own fresh API server
	// (Service creation slows as Services accumulate): a minimal client
	// creating the Services and writing each one's status, then status alone.
	ccl, cs, stopCluster := freshCluster(b, "ceiling")
	// The run below watches Services to time them; the ceiling carries the
	// same watch so that the comparison is of the controller alone.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchIPs(watchCtx, b, cs, "ceiling")
	start := time.Now()
	parallel(n, func(i int) {
		s, err := cs.CoreV1().Services("ceiling").Create(ctx, svc("ceiling", i, "bench/ceiling"), metav1.CreateOptions{})
		if err != nil {
			panic(err)
		}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ipFor(i)}}
		if _, err := cs.CoreV1().Services("ceiling").UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
			panic(err)
		}
	})
	ceilingCreate := float64(n) / time.Since(start).Seconds()
	setAll := func(ip func(i int) string) float64 {
		list, err := cs.CoreV1().Services("ceiling").List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		parallel(len(list.Items), func(i int) {
			s := list.Items[i]
			s.Status.LoadBalancer.Ingress = nil
			if a := ip(i); a != "" {
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: a}}
			}
			if _, err := cs.CoreV1().Services("ceiling").UpdateStatus(ctx, &s, metav1.UpdateOptions{}); err != nil {
				panic(err)
			}
		})
		return float64(len(list.Items)) / time.Since(start).Seconds()
	}
	ceilingStatus := setAll(func(i int) string { return ipFor(i + n) })
	stopWatch()

	// 1b. The controller on a backlog: the same n Services with their status
	// cleared, then the controller started. Services arrive faster than in
	// any burst, so this compares the controller with the status-only
	// ceiling: each allocation is one status write and one event.
	setAll(func(int) string { return "" })
	backlog := watchIPs(ctx, b, cs, "ceiling")
	if err := ccl.Client.Create(ctx, benchPool()); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	bctrl := startController(b, bin, ccl.KubeconfigPath, "bench/ceiling")
	backlogLast := backlog.wait(b, n)
	backlogRate := float64(n) / backlogLast.Sub(start).Seconds()
	if err := bctrl.stop(); err != nil {
		b.Fatalf("controller did not exit cleanly on SIGTERM: %v", err)
	}
	stopCluster()

	// 2. The controller, as a real process, on a burst of n Services, on
	// another fresh API server.
	cl, cs, stopCluster := freshCluster(b, "bench")
	defer stopCluster()
	if err := cl.Client.Create(ctx, benchPool()); err != nil {
		b.Fatal(err)
	}
	ctrl := startController(b, bin, cl.KubeconfigPath, "bench")
	got := watchIPs(ctx, b, cs, "bench")
	// The burst starts once the controller has started and allocated: a
	// first Service, not counted, proves it.
	if _, err := cs.CoreV1().Services("bench").Create(ctx, svc("bench", warmup, "bench"), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	got.wait(b, 1)
	created := make([]time.Time, n)
	start = time.Now()
	parallel(n, func(i int) {
		if _, err := cs.CoreV1().Services("bench").Create(ctx, svc("bench", i, "bench"), metav1.CreateOptions{}); err != nil {
			panic(err)
		}
		created[i] = time.Now()
	})
	createRate := float64(n) / time.Since(start).Seconds()
	last := got.wait(b, n+1)
	rate := float64(n) / last.Sub(start).Seconds()
	lat := make([]float64, n)
	for i := range n {
		lat[i] = got.at(fmt.Sprintf("s%05d", i)).Sub(created[i]).Seconds()
	}
	slices.Sort(lat)
	hwm := ctrl.hwm()

	report("controller_services_per_second", rate, "services/s")
	report("controller_create_to_ip_p50", lat[n/2]*1000, "ms")
	report("controller_create_to_ip_p99", lat[n*99/100]*1000, "ms")
	report("controller_peak_rss", float64(hwm)/1024, "MB")
	report("apiserver_create_rate_during_run", createRate, "services/s")
	report("apiserver_ceiling_create_and_status", ceilingCreate, "services/s")
	report("apiserver_ceiling_status_only", ceilingStatus, "updates/s")
	report("controller_ratio_to_create_and_status_ceiling", 100*rate/ceilingCreate, "percent")
	report("controller_backlog_services_per_second", backlogRate, "services/s")
	report("controller_backlog_ratio_to_status_only_ceiling", 100*backlogRate/ceilingStatus, "percent")

	// 3. Restart with n allocated Services: time from process start until a new
	// Service has its IP, changed IPs, and writes to Services already right.
	before, err := cs.CoreV1().Services("bench").List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	exitStart := time.Now()
	if err := ctrl.stop(); err != nil {
		b.Fatalf("controller did not exit cleanly on SIGTERM: %v", err)
	}
	report("controller_sigterm_exit", time.Since(exitStart).Seconds()*1000, "ms")
	restart := time.Now()
	ctrl = startController(b, bin, cl.KubeconfigPath, "bench")
	defer ctrl.stop()
	if _, err := cs.CoreV1().Services("bench").Create(ctx, svc("bench", n, "bench"), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	got.wait(b, n+2)
	report("restart_to_new_service_ip", time.Since(restart).Seconds()*1000, "ms")
	// Let the restarted controller finish its pass over every Service: wait
	// until its reconcile counter stops growing is not observable from here,
	// so wait for a second new Service, queued after all of them.
	if _, err := cs.CoreV1().Services("bench").Create(ctx, svc("bench", n+1, "bench"), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	got.wait(b, n+3)
	after, err := cs.CoreV1().Services("bench").List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	afterBy := map[string]corev1.Service{}
	for _, s := range after.Items {
		afterBy[s.Name] = s
	}
	changedIPs, writes := 0, 0
	for _, s := range before.Items {
		a := afterBy[s.Name]
		if !slices.Equal(ips(s), ips(a)) {
			changedIPs++
		}
		if s.ResourceVersion != a.ResourceVersion {
			writes++
		}
	}
	report("restart_changed_ips", float64(changedIPs), "services")
	report("restart_writes_to_services_already_right", float64(writes), "services")
	report("restart_duplicate_ips", float64(duplicates(after.Items)), "addresses")

	// Every allocation is told on its Service as an event; none may be lost
	// to the event recorder's queue during the burst.
	evs, err := cs.CoreV1().Events("bench").List(ctx, metav1.ListOptions{FieldSelector: "reason=IPAllocated"})
	if err != nil {
		b.Fatal(err)
	}
	report("ip_allocated_events", float64(len(evs.Items)), "events")
	report("services_with_ips", float64(len(after.Items)), "services")
}

func benchPool() *v1.IPAddressPool {
	return &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"198.18.0.0/15"}}}
}

// freshCluster starts an API server with namespace ns.
func freshCluster(b *testing.B, ns string) (*testcluster.Cluster, kubernetes.Interface, func()) {
	cl, err := testcluster.Start()
	if err != nil {
		b.Fatal(err)
	}
	cfg := rest.CopyConfig(cl.Config)
	cfg.QPS, cfg.Burst = -1, 0
	cs := kubernetes.NewForConfigOrDie(cfg)
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	return cl, cs, func() { once.Do(func() { _ = cl.Stop() }) }
}

func ips(s corev1.Service) []string {
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

func duplicates(items []corev1.Service) int {
	seen := map[string]int{}
	for _, s := range items {
		for _, ip := range ips(s) {
			seen[ip]++
		}
	}
	d := 0
	for _, c := range seen {
		if c > 1 {
			d++
		}
	}
	return d
}

func svc(ns string, i int, class string) *corev1.Service {
	no := false
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("s%05d", i)},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &class, AllocateLoadBalancerNodePorts: &no,
			Selector: map[string]string{"app": "x"},
			Ports:    []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

func ipFor(i int) string {
	a := netip.MustParseAddr("198.18.0.0").As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) + uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

// parallel runs f(0..n-1) on writers goroutines.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// ipWatch records when each Service first has an ingress IP.
type ipWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
	cond *sync.Cond
}

// watchIPs uses an informer rather than a bare watch: under a burst of
// writes the API server closes watchers that fall behind, and an informer
// resumes where it stopped. A Service first seen after such a gap is timed
// when it is seen, so latencies can only be overstated, never understated.
func watchIPs(ctx context.Context, b *testing.B, cs kubernetes.Interface, ns string) *ipWatch {
	w := &ipWatch{seen: map[string]time.Time{}}
	w.cond = sync.NewCond(&w.mu)
	note := func(obj any) {
		s, ok := obj.(*corev1.Service)
		if !ok || len(s.Status.LoadBalancer.Ingress) == 0 {
			return
		}
		now := time.Now()
		w.mu.Lock()
		if _, ok := w.seen[s.Name]; !ok {
			w.seen[s.Name] = now
			w.cond.Broadcast()
		}
		w.mu.Unlock()
	}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Services().Informer()
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    note,
		UpdateFunc: func(_, obj any) { note(obj) },
	}); err != nil {
		b.Fatal(err)
	}
	f.Start(ctx.Done())
	if !toolscache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		b.Fatal("Service informer did not sync")
	}
	return w
}

// wait waits until n Services have IPs and returns when the last one got its.
func (w *ipWatch) wait(b *testing.B, n int) time.Time {
	deadline := time.AfterFunc(10*time.Minute, func() { w.mu.Lock(); w.cond.Broadcast(); w.mu.Unlock() })
	defer deadline.Stop()
	start := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.seen) < n {
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("only %d of %d Services got an IP", len(w.seen), n)
		}
		w.cond.Wait()
	}
	var last time.Time
	for _, t := range w.seen {
		if t.After(last) {
			last = t
		}
	}
	return last
}

func (w *ipWatch) at(name string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[name]
}

type proc struct {
	cmd  *exec.Cmd
	done chan error
}

func startController(b *testing.B, bin, kubeconfig, class string) *proc {
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--lb-class", class, "--namespace", "default", "--leader-elect=false",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "-v", "0")
	if addr := os.Getenv("PORTICO_BENCH_PPROF"); addr != "" {
		// For finding where the controller spends its time during a run.
		cmd.Args = append(cmd.Args, "--pprof-bind-address", addr)
	}
	logf, err := os.CreateTemp("", "portico-controller-bench-*.log")
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	return p
}

// hwm reads the process's peak resident memory (VmHWM) in kB.
func (p *proc) hwm() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return -1
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("still running 30s after SIGTERM")
	}
}
