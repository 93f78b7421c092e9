package e2etest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// theLab is shared by every test of the package; tests undo what they break.
var theLab *lab.Lab

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		fmt.Println("SKIP: end-to-end lab tests (-short)")
		return 0
	}
	opts := lab.Opts{Name: fmt.Sprintf("ptc-t%d", os.Getpid()), Progress: func(s string) {
		fmt.Fprintf(os.Stderr, "lab: %s\n", s)
	}}
	if err := lab.Check(opts); errors.Is(err, lab.ErrMissing) {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
			return 1
		}
		fmt.Printf("SKIP: %v\n", err)
		return 0
	}
	rootRoutes = routes()
	l, err := lab.Up(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	theLab = l
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = createPool(ctx, "lab", true, lab.PoolV4, lab.PoolV6)
	if err == nil {
		err = createL2Adv(ctx, "lab", []string{"lab"}, nil, nil)
	}
	cancel()
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: creating the lab's pool: %v\n", err)
	} else {
		code = m.Run()
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "lab logs: %s\n", l.RunDir)
	}
	if err := l.Down(); err != nil {
		fmt.Fprintf(os.Stderr, "lab down: %v\n", err)
	}
	return code
}

// rootRoutes is the root namespace's routes for the documentation ranges
// before the lab started.
var rootRoutes string

// routes returns the root namespace's IPv4 and IPv6 routes, every table,
// that mention a documentation range (other packages' tests may add and
// remove links meanwhile; only these routes are the lab's concern).
func routes() string {
	var out strings.Builder
	for _, fam := range []string{"-4", "-6"} {
		b, err := exec.Command("ip", fam, "route", "show", "table", "all").CombinedOutput()
		if err != nil {
			fmt.Fprintf(&out, "ip %s route: %v\n", fam, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, r := range []string{"192.0.2.", "198.51.100.", "203.0.113.", "2001:db8:"} {
				if strings.Contains(line, r) {
					out.WriteString(line + "\n")
					break
				}
			}
		}
	}
	return out.String()
}

func createPool(ctx context.Context, name string, autoAssign bool, addrs ...string) error {
	p := &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: porticov1.IPAddressPoolSpec{AutoAssign: &autoAssign}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, porticov1.AddressEntry(a))
	}
	return theLab.Client.Create(ctx, p)
}

func createL2Adv(ctx context.Context, name string, pools, interfaces []string, nodeLabels map[string]string) error {
	a := &porticov1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	a.Spec.IPAddressPools, a.Spec.Interfaces = pools, interfaces
	if nodeLabels != nil {
		a.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: nodeLabels}}
	}
	return theLab.Client.Create(ctx, a)
}

// testCtx is a context for one test, ended with it.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// cleanupDelete deletes obj when the test ends.
func cleanupDelete(t *testing.T, obj client.Object) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := theLab.Client.Delete(ctx, obj); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Errorf("deleting %s: %v", obj.GetName(), err)
		}
	})
}

// pool creates a pool and an L2Advertisement of the same name for it, both
// deleted when the test ends.
func pool(t *testing.T, ctx context.Context, name string, nodeLabels map[string]string, addrs ...string) {
	t.Helper()
	if err := createPool(ctx, name, false, addrs...); err != nil {
		t.Fatal(err)
	}
	cleanupDelete(t, &porticov1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err := createL2Adv(ctx, name, []string{name}, nil, nodeLabels); err != nil {
		t.Fatal(err)
	}
	cleanupDelete(t, &porticov1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

// service creates a LoadBalancer Service (deleted when the test ends) and
// returns its IP.
func service(t *testing.T, ctx context.Context, name string, o lab.ServiceOpts) netip.Addr {
	t.Helper()
	start := time.Now()
	if _, err := theLab.CreateService(ctx, name, o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := theLab.DeleteService(ctx, name); err != nil {
			t.Errorf("deleting service %s: %v", name, err)
		}
	})
	ip, err := theLab.WaitIngress(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("service %s got %s in %s", name, ip, time.Since(start).Round(time.Millisecond))
	return ip
}

// announcer waits until exactly one node answers ARP/NDP for ip and the
// client's HTTP request reaches that same node, and returns the node. accept,
// when set, must hold for the node.
func announcer(t *testing.T, ctx context.Context, ip netip.Addr, accept func(*lab.Node) bool) *lab.Node {
	t.Helper()
	var last string
	for {
		n, err := theLab.Announcer(ip)
		if err == nil && (accept == nil || accept(n)) {
			got, herr := theLab.HTTPGet(ctx, ip, 2*time.Second)
			if herr == nil && got == n.Name {
				return n
			}
			last = fmt.Sprintf("%s answers ARP/NDP but HTTP gave %q (%v)", n.Name, got, herr)
		} else if err == nil {
			last = fmt.Sprintf("%s answers ARP/NDP (not an acceptable node)", n.Name)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no single announcer: %s (speaker logs in %s)", ip, last, theLab.RunDir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func not(n *lab.Node) func(*lab.Node) bool {
	return func(o *lab.Node) bool { return o != n }
}

// heal restarts n's speaker and restores its data link when the test ends,
// then waits for all speakers to see each other again.
func heal(t *testing.T, n *lab.Node) {
	t.Cleanup(func() {
		if err := theLab.RestoreDataLink(n); err != nil {
			t.Errorf("restoring %s's data link: %v", n.Name, err)
		}
		if done, _ := theLab.Proc("speaker-" + n.Name).Exited(); done {
			if err := theLab.StartSpeaker(n); err != nil {
				t.Errorf("restarting the speaker on %s: %v", n.Name, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := theLab.WaitMembers(ctx, nodeNames()...); err != nil {
			t.Errorf("after healing %s: %v", n.Name, err)
		}
	})
}

func nodeNames() []string {
	var out []string
	for _, n := range theLab.Nodes {
		out = append(out, n.Name)
	}
	return out
}

// others returns the node names other than n's.
func others(n *lab.Node) []string {
	return slices.DeleteFunc(nodeNames(), func(s string) bool { return s == n.Name })
}

// mentioned reports whether a False condition of the L2Advertisement, or an
// event about it, contains every one of words; it returns what it saw.
func mentioned(ctx context.Context, adv string, words ...string) (bool, string) {
	var seen []string
	var a porticov1.L2Advertisement
	if err := theLab.Client.Get(ctx, client.ObjectKey{Name: adv}, &a); err == nil {
		for _, c := range a.Status.Conditions {
			if c.Status == metav1.ConditionFalse {
				seen = append(seen, "condition "+c.Type+": "+c.Message)
			}
		}
	}
	var evs corev1.EventList
	if err := theLab.Client.List(ctx, &evs); err == nil {
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == adv || strings.Contains(e.Message, adv) {
				seen = append(seen, "event "+e.Reason+": "+e.Message)
			}
		}
	}
	for _, s := range seen {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return true, s
		}
	}
	return false, strings.Join(seen, "; ")
}
