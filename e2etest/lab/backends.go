package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Backend pods for an Ingress controller. They live in their own namespace,
// NAME-pods, plugged into the data segment like a node, with one address per
// pod (198.51.100.51, .52, ...): an Ingress controller on any node reaches
// them at their EndpointSlice addresses, and a node's death leaves them
// running, as pods on other nodes would. Each pod is an HTTP server of this
// process that answers every request with one line (see Answer).
const (
	podPrefix4 = "198.51.100."
	firstPod   = 51
	lastPod    = 59
	podMAC     = "02:70:74:63:00:05"
	// BackendPort is the port every backend pod serves and its Service
	// exposes.
	BackendPort = 80
)

// Backends are the backend pods of one lab.
type Backends struct {
	l    *Lab
	NS   string // the network namespace of every pod
	mu   sync.Mutex
	next int
	srvs []*http.Server
	objs []client.Object
}

// Backend is one backend: a Service with one pod behind it.
type Backend struct {
	Namespace, Name string
	IP              netip.Addr // the pod's address ({} for a Service with no ready endpoint)
}

// StartBackends creates the pods namespace. Close stops every pod and
// deletes the Services it created.
func (l *Lab) StartBackends() (*Backends, error) {
	b := &Backends{l: l, NS: l.Name + "-pods", next: firstPod}
	if err := l.newNS(b.NS); err != nil {
		return nil, err
	}
	if err := plug(b.NS, "eth0", podMAC, l.L2NS, "br0", "pods"); err != nil {
		return nil, err
	}
	return b, nil
}

// Add starts a pod answering as name and creates the Service name in
// namespace ns with an EndpointSlice naming the pod, ready.
func (b *Backends) Add(ctx context.Context, ns, name string) (Backend, error) {
	b.mu.Lock()
	if b.next > lastPod {
		b.mu.Unlock()
		return Backend{}, fmt.Errorf("backend %s/%s: the lab has room for %d pods", ns, name, lastPod-firstPod+1)
	}
	ip := netip.MustParseAddr(fmt.Sprintf("%s%d", podPrefix4, b.next))
	b.next++
	b.mu.Unlock()
	if _, err := sh("ip", "-n", b.NS, "addr", "add", ip.String()+"/24", "dev", "eth0"); err != nil {
		return Backend{}, err
	}
	ln, err := listenIn(b.NS, netip.AddrPortFrom(ip, BackendPort).String())
	if err != nil {
		return Backend{}, fmt.Errorf("pod %s of %s/%s: %w", ip, ns, name, err)
	}
	srv := &http.Server{Handler: b.answer(name), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.mu.Lock()
	b.srvs = append(b.srvs, srv)
	b.mu.Unlock()
	be := Backend{Namespace: ns, Name: name, IP: ip}
	return be, b.service(ctx, be, true)
}

// AddEmpty creates the Service name in namespace ns whose only endpoint is
// not ready (a pod failing its readiness probe); nothing listens there.
func (b *Backends) AddEmpty(ctx context.Context, ns, name string) (Backend, error) {
	be := Backend{Namespace: ns, Name: name, IP: netip.MustParseAddr(fmt.Sprintf("%s%d", podPrefix4, lastPod+1))}
	if err := b.service(ctx, be, false); err != nil {
		return Backend{}, err
	}
	be.IP = netip.Addr{}
	return be, nil
}

// service creates the ClusterIP Service of a backend and its EndpointSlice
// (the lab stands in for the endpoint controller).
func (b *Backends) service(ctx context.Context, be Backend, ready bool) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: be.Namespace, Name: be.Name},
		Spec: corev1.ServiceSpec{
			Ports:    []corev1.ServicePort{{Name: "http", Port: BackendPort, TargetPort: intstr.FromInt32(BackendPort), Protocol: corev1.ProtocolTCP}},
			Selector: map[string]string{"app": be.Name},
		},
	}
	slice := endpointSlice(be.Namespace, be.Name, []discoveryv1.EndpointPort{
		{Name: ptr.To("http"), Port: ptr.To[int32](BackendPort), Protocol: ptr.To(corev1.ProtocolTCP)},
	})
	slice.Endpoints = []discoveryv1.Endpoint{{
		Addresses:  []string{be.IP.String()},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)},
	}}
	for _, o := range []client.Object{svc, slice} {
		if err := b.l.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("backend %s/%s: %w", be.Namespace, be.Name, err)
		}
		b.mu.Lock()
		b.objs = append(b.objs, o)
		b.mu.Unlock()
	}
	return nil
}

// endpointSlice is an empty EndpointSlice of Service svc managed by the lab.
func endpointSlice(ns, svc string, ports []discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-lab", Labels: map[string]string{
			discoveryv1.LabelServiceName: svc,
			discoveryv1.LabelManagedBy:   "lab.portico.dev",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
	}
}

// answer is a pod's handler: one line naming the backend, the path it saw,
// the node the request came through (the Ingress controller's source
// address, a node's data address) and the client the controller says it
// served (X-Real-Ip).
func (b *Backends) answer(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		via := r.RemoteAddr
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			via = host
			for _, n := range b.l.Nodes {
				if n.IPv4 == host || n.IPv6 == host {
					via = n.Name
				}
			}
		}
		client := r.Header.Get("X-Real-Ip")
		if client == "" {
			client = "-"
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "backend=%s path=%s via=%s client=%s\n", name, r.URL.EscapedPath(), via, client)
	})
}

// Close stops every pod and deletes the Services and EndpointSlices made
// for them (the namespace goes with the lab).
func (b *Backends) Close(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.srvs {
		_ = s.Close()
	}
	b.srvs = nil
	var errs []string
	for _, o := range b.objs {
		if err := b.l.Client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err.Error())
		}
	}
	b.objs = nil
	if len(errs) > 0 {
		return fmt.Errorf("deleting backends: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Answer is a backend pod's answer, parsed.
type Answer struct {
	Backend, Path, Via, Client string
}

// ParseAnswer reads a backend pod's line ("backend=web path=/ via=node2
// client=198.51.100.2").
func ParseAnswer(body string) (Answer, error) {
	var a Answer
	fields := map[string]*string{"backend": &a.Backend, "path": &a.Path, "via": &a.Via, "client": &a.Client}
	for _, f := range strings.Fields(body) {
		k, v, ok := strings.Cut(f, "=")
		if p := fields[k]; ok && p != nil {
			*p = v
		}
	}
	if a.Backend == "" || a.Path == "" {
		return a, fmt.Errorf("not a backend pod's answer: %q", body)
	}
	return a, nil
}
