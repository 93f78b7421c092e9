package controller_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/controller"
	"github.com/portico-lb/portico/internal/testcluster"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, &cluster)) }

// wait is how long a test waits for the controller to reach a state. It is a
// bound on a poll, not an assertion about speed.
const wait = 30 * time.Second

var ctxBG = context.Background()

// run starts a controller manager in-process and stops it when the test ends.
// It returns a stop function for tests that restart it.
func run(t *testing.T, o controller.Options) (stop func()) {
	t.Helper()
	return runWith(t, cluster.Config, o)
}

// runWith is run with the client configuration cfg.
func runWith(t *testing.T, cfg *rest.Config, o controller.Options) (stop func()) {
	t.Helper()
	mgr, err := newManager(t, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return start(t, mgr)
}

// newManager is controller.NewManager with the tests' defaults: namespace
// default and the test's own loadBalancerClass.
func newManager(t *testing.T, cfg *rest.Config, o controller.Options) (manager.Manager, error) {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	switch o.LBClass {
	case "":
		o.LBClass = class(t)
	case defaultClass:
		o.LBClass = ""
	}
	return controller.NewManager(cfg, o)
}

// start starts mgr and stops it when the test ends; stop stops it sooner.
func start(t *testing.T, mgr manager.Manager) (stop func()) {
	ctx, cancel := context.WithCancel(ctxBG)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager stopped with an error: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// defaultClass asks run for a controller handling Services without a class.
const defaultClass = "<none>"

// class is the loadBalancerClass of the test's controller (see run).
func class(t *testing.T) string {
	return "portico.dev/" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
}

func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-", Labels: labels}}
	if err := cluster.Client.Create(ctxBG, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// pool creates a pool that the test deletes when it ends.
func pool(t *testing.T, name string, mutate func(*v1.IPAddressPool), addrs ...string) *v1.IPAddressPool {
	t.Helper()
	p := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1.AddressEntry(a))
	}
	if mutate != nil {
		mutate(p)
	}
	if err := cluster.Client.Create(ctxBG, p); err != nil {
		t.Fatalf("creating pool %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}) })
	return p
}

// service creates a LoadBalancer Service of the test's class.
func service(t *testing.T, ns, name string, mutate func(*corev1.Service)) *corev1.Service {
	t.Helper()
	no := false
	cls := class(t)
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass:             &cls,
			AllocateLoadBalancerNodePorts: &no,
			Selector:                      map[string]string{"app": name},
			Ports:                         []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
	if mutate != nil {
		mutate(s)
	}
	if err := cluster.Client.Create(ctxBG, s); err != nil {
		t.Fatalf("creating service %s/%s: %v", ns, name, err)
	}
	return s
}

func get(t *testing.T, ns, name string) *corev1.Service {
	t.Helper()
	s := &corev1.Service{}
	if err := cluster.Client.Get(ctxBG, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func ingress(s *corev1.Service) []string {
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// eventually polls cond until it returns "" or the wait runs out, then fails
// with the last message.
func eventually(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitIPs waits until the Service's ingress is exactly want.
func waitIPs(t *testing.T, ns, name string, want ...string) *corev1.Service {
	t.Helper()
	var s *corev1.Service
	eventually(t, func() string {
		s = get(t, ns, name)
		if got := ingress(s); !slices.Equal(got, want) {
			return fmt.Sprintf("%s/%s ingress = %v, want %v", ns, name, got, want)
		}
		return ""
	})
	return s
}

// anyIPs waits until the Service has n addresses and returns them.
func anyIPs(t *testing.T, ns, name string, n int) []string {
	t.Helper()
	var got []string
	eventually(t, func() string {
		got = ingress(get(t, ns, name))
		if len(got) != n {
			return fmt.Sprintf("%s/%s ingress = %v, want %d addresses", ns, name, got, n)
		}
		return ""
	})
	return got
}

func events(t *testing.T, ns, name string) []corev1.Event {
	t.Helper()
	var list corev1.EventList
	if err := cluster.Client.List(ctxBG, &list, client.InNamespace(ns), client.MatchingFields{"involvedObject.name": name}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b corev1.Event) int { return strings.Compare(a.Name, b.Name) })
	return list.Items
}

// waitEvent waits for an event with reason whose message contains every
// fragment, and returns its message.
func waitEvent(t *testing.T, ns, name, reason string, fragments ...string) string {
	t.Helper()
	var found string
	eventually(t, func() string {
		var seen []string
		for _, e := range events(t, ns, name) {
			seen = append(seen, e.Reason+": "+e.Message)
			if e.Reason != reason {
				continue
			}
			ok := true
			for _, f := range fragments {
				ok = ok && strings.Contains(e.Message, f)
			}
			if ok {
				found = e.Message
				return ""
			}
		}
		return fmt.Sprintf("no %s event on %s/%s containing %q; events: %q", reason, ns, name, fragments, seen)
	})
	return found
}

func update(t *testing.T, ns, name string, mutate func(*corev1.Service)) {
	t.Helper()
	eventually(t, func() string {
		s := get(t, ns, name)
		mutate(s)
		if err := cluster.Client.Update(ctxBG, s); err != nil {
			if apierrors.IsConflict(err) {
				return err.Error()
			}
			t.Fatal(err)
		}
		return ""
	})
}

func poolCondition(t *testing.T, name string) (metav1.Condition, v1.IPAddressPoolStatus) {
	t.Helper()
	p := &v1.IPAddressPool{}
	if err := cluster.Client.Get(ctxBG, types.NamespacedName{Name: name}, p); err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c, p.Status
		}
	}
	return metav1.Condition{}, p.Status
}

func ptr[T any](v T) *T { return &v }
