package lab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A real Traefik v3 (built by hack/build-traefik.sh into BinDir/traefik/)
// runs in every node namespace as an Ingress controller, the way a
// hostNetwork DaemonSet runs it: its Kubernetes Ingress provider reads
// Ingresses, IngressClasses, Services, EndpointSlices and Secrets from the
// lab's API server as the ServiceAccount traefik/traefik, with a token from
// the TokenRequest API and a role of its own (traefikRules). Its Service is
// type LoadBalancer, ports 80 and 443, externalTrafficPolicy Local, and gets
// its IP from Portico; the EndpointSlice lists every node's data address (a
// hostNetwork pod has its node's address).
//
// Ports: port 80 of every node namespace is taken by the lab's HTTP
// responder (the stand-in for every other Service's pods), so Traefik
// listens where its Helm chart puts its entrypoints, 8000 (web) and 8443
// (websecure, TLS on every router), and the Service maps 80 and 443 to them
// with targetPort. kube-proxy would translate those ports; the lab's
// stand-in does it with an nftables redirect in every node namespace for the
// controller's IPs (mapPorts), to the node's own Traefik, which is what
// externalTrafficPolicy Local means.
const (
	// IngressNamespace holds Traefik's ServiceAccount, role binding and
	// Service; AppsNamespace the applications it routes to.
	IngressNamespace = "traefik"
	AppsNamespace    = "apps"
	// IngressClass is the IngressClass Traefik serves.
	IngressClass     = "traefik"
	traefikName      = "traefik"
	traefikHTTPPort  = 8000
	traefikHTTPSPort = 8443
	traefikPing      = "127.0.0.1:9000"
	nftTable         = "portico-lab-ingress"
)

// traefikRules are what Traefik's Kubernetes Ingress provider needs, in each
// namespace it watches: it lists and watches Ingresses, Services,
// EndpointSlices and Secrets (its informers; it never gets one by name from
// the API server), and writes the Ingresses' status with the IP of its own
// Service (ingressEndpoint.publishedService).
var traefikRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"services", "secrets"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses/status"}, Verbs: []string{"update"}},
}

// traefikClusterRules are the cluster-scoped reads: IngressClasses (which
// Ingresses are Traefik's) and Nodes (its informer for NodePort services
// starts with the IngressClass one).
var traefikClusterRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingressclasses"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch"}},
}

// TraefikBin is the Traefik binary the lab runs.
func (o Opts) TraefikBin() string { return filepath.Join(o.BinDir, "traefik", "traefik") }

// CheckTraefik reports (wrapping ErrMissing) when Traefik is not built.
func CheckTraefik(opts Opts) error {
	if err := opts.defaults(); err != nil {
		return err
	}
	if _, err := os.Stat(opts.TraefikBin()); err != nil {
		return fmt.Errorf("%w: %s (hack/build-traefik.sh, run by make setup)", ErrMissing, opts.TraefikBin())
	}
	return nil
}

// IngressController is Traefik running on every node behind a Portico IP.
type IngressController struct {
	l *Lab
	// IP is the address of its LoadBalancer Service "traefik".
	IP  netip.Addr
	dir string

	mu      sync.Mutex
	exposed map[string]netip.Addr // Service name -> its IP, redirected to Traefik
	objs    []client.Object       // to delete on Stop, in reverse order
}

// StartIngressController sets Traefik up and starts it on every node, then
// creates its LoadBalancer Service "traefik" (with annotations, e.g. a pool
// or a pinned IP) and waits for its IP. Stop undoes it all.
func (l *Lab) StartIngressController(ctx context.Context, annotations map[string]string) (*IngressController, error) {
	if err := CheckTraefik(l.Opts); err != nil {
		return nil, err
	}
	ic := &IngressController{l: l, dir: filepath.Join(l.RunDir, "traefik"), exposed: map[string]netip.Addr{}}
	if err := os.MkdirAll(ic.dir, 0o755); err != nil {
		return nil, err
	}
	fail := func(step string, err error) (*IngressController, error) {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = ic.Stop(sctx)
		return nil, fmt.Errorf("ingress controller: %s: %w", step, err)
	}
	if err := ic.install(ctx); err != nil {
		return fail("installing its namespaces, IngressClass and role", err)
	}
	token, err := ic.token(ctx)
	if err != nil {
		return fail("getting its ServiceAccount token", err)
	}
	conf, err := ic.writeConfig(token)
	if err != nil {
		return fail("writing its configuration", err)
	}
	for _, n := range l.Nodes {
		if _, err := l.start(ic.procName(n), n.NS, []string{"KUBECONFIG=", "KUBERNETES_SERVICE_HOST="},
			l.TraefikBin(), "--configFile="+conf); err != nil {
			return fail("starting Traefik on "+n.Name, err)
		}
	}
	for _, n := range l.Nodes {
		if err := ic.waitReady(ctx, n); err != nil {
			return fail("waiting for Traefik on "+n.Name, err)
		}
	}
	if ic.IP, err = ic.Expose(ctx, traefikName, annotations); err != nil {
		return fail("exposing it", err)
	}
	return ic, nil
}

func (ic *IngressController) procName(n *Node) string { return "traefik-" + n.Name }

// Log is the path of Traefik's log on node n.
func (ic *IngressController) Log(n *Node) string { return ic.l.logOf(ic.procName(n)) }

// Logs returns every node's Traefik log, one after the other.
func (ic *IngressController) Logs() string {
	var b strings.Builder
	for _, n := range ic.l.Nodes {
		data, _ := os.ReadFile(ic.Log(n))
		b.Write(data)
	}
	return b.String()
}

// create creates obj (left as it is when it exists: namespaces are never
// deleted, since the lab has no namespace controller to finish that) and
// records it for Stop.
func (ic *IngressController) create(ctx context.Context, obj client.Object, keep bool) error {
	err := ic.l.Client.Create(ctx, obj)
	if keep && apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
	}
	if !keep {
		ic.mu.Lock()
		ic.objs = append(ic.objs, obj)
		ic.mu.Unlock()
	}
	return nil
}

// install creates the namespaces, the IngressClass, the ServiceAccount and
// its roles.
func (ic *IngressController) install(ctx context.Context) error {
	for _, ns := range []string{IngressNamespace, AppsNamespace} {
		if err := ic.create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, true); err != nil {
			return err
		}
	}
	objs := []client.Object{
		&networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: IngressClass},
			Spec: networkingv1.IngressClassSpec{Controller: "traefik.io/ingress-controller"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: IngressNamespace, Name: traefikName}},
	}
	sa := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: IngressNamespace, Name: traefikName}}
	name := "portico-lab-traefik"
	objs = append(objs,
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: traefikClusterRules},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: sa,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}})
	for _, ns := range []string{IngressNamespace, AppsNamespace} {
		objs = append(objs,
			&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: traefikName}, Rules: traefikRules},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: traefikName}, Subjects: sa,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: traefikName}})
	}
	for _, o := range objs {
		if err := ic.create(ctx, o, false); err != nil {
			return err
		}
	}
	return nil
}

// token asks the TokenRequest API for a token of Traefik's ServiceAccount
// (what the kubelet mounts into a pod) and waits until its role lets it
// list Ingresses: the authorizer learns new bindings through a watch.
func (ic *IngressController) token(ctx context.Context) (string, error) {
	tr, err := ic.l.Kube.CoreV1().ServiceAccounts(IngressNamespace).CreateToken(ctx, traefikName,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](24 * 3600)}},
		metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	path := filepath.Join(ic.dir, "token")
	if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
		return "", err
	}
	cfg := *ic.l.REST
	cfg.BearerToken, cfg.BearerTokenFile = tr.Status.Token, ""
	c, err := client.New(&cfg, client.Options{Scheme: Scheme})
	if err != nil {
		return "", err
	}
	for {
		err := c.List(ctx, &networkingv1.IngressList{}, client.InNamespace(AppsNamespace))
		if err == nil {
			return path, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("ServiceAccount %s/%s still cannot list Ingresses in %s: %w", IngressNamespace, traefikName, AppsNamespace, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeConfig writes Traefik's static configuration, shared by every node.
func (ic *IngressController) writeConfig(token string) (string, error) {
	conf := fmt.Sprintf(`# Traefik as the lab runs it on every node (see e2etest/lab/traefik.go).
global:
  checkNewVersion: false
  sendAnonymousUsage: false
log:
  level: INFO
  noColor: true
entryPoints:
  web:
    address: ":%d"
  websecure:
    address: ":%d"
    http:
      tls: {}
  traefik:
    address: "%s"
ping:
  entryPoint: traefik
providers:
  kubernetesIngress:
    endpoint: "%s"
    token: "%s"
    certAuthFilePath: "%s"
    namespaces: [%s, %s]
    # A Service with no ready endpoint answers 503 instead of 404.
    allowEmptyServices: true
    # Ingress status shows the Portico IP of this Service.
    ingressEndpoint:
      publishedService: %s/%s
`, traefikHTTPPort, traefikHTTPSPort, traefikPing, ic.l.APIServer, token, ic.l.caFile,
		AppsNamespace, IngressNamespace, IngressNamespace, traefikName)
	path := filepath.Join(ic.dir, "traefik.yml")
	return path, os.WriteFile(path, []byte(conf), 0o644)
}

// waitReady waits until Traefik on n answers its ping endpoint.
func (ic *IngressController) waitReady(ctx context.Context, n *Node) error {
	p := ic.l.Proc(ic.procName(n))
	tr := &http.Transport{DialContext: DialIn(n.NS), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: time.Second}
	for {
		if err := p.running(); err != nil {
			return err
		}
		resp, err := hc.Get("http://" + traefikPing + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the Traefik on %s does not answer /ping (last error %v; log %s)", n.Name, err, p.Log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Expose creates a LoadBalancer Service called name for Traefik (ports 80
// and 443, externalTrafficPolicy Local, endpoints on every node), waits for
// its IP and redirects it to Traefik on every node. The controller's own
// Service is one; a second one can take an IP from another pool (a BGP one).
func (ic *IngressController) Expose(ctx context.Context, name string, annotations map[string]string) (netip.Addr, error) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: IngressNamespace, Name: name, Annotations: annotations},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{
				{Name: "web", Port: 80, TargetPort: intstr.FromInt32(traefikHTTPPort), Protocol: corev1.ProtocolTCP},
				{Name: "websecure", Port: 443, TargetPort: intstr.FromInt32(traefikHTTPSPort), Protocol: corev1.ProtocolTCP},
			},
			Selector:              map[string]string{"app.kubernetes.io/name": traefikName},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		},
	}
	slice := endpointSlice(IngressNamespace, name, []discoveryv1.EndpointPort{
		{Name: ptr.To("web"), Port: ptr.To[int32](traefikHTTPPort), Protocol: ptr.To(corev1.ProtocolTCP)},
		{Name: ptr.To("websecure"), Port: ptr.To[int32](traefikHTTPSPort), Protocol: ptr.To(corev1.ProtocolTCP)},
	})
	for _, n := range ic.l.Nodes {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{n.IPv4},
			NodeName:   ptr.To(n.Name),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		})
	}
	for _, o := range []client.Object{slice, svc} {
		if err := ic.create(ctx, o, false); err != nil {
			return netip.Addr{}, err
		}
	}
	ip, err := ic.l.WaitIngressIn(ctx, IngressNamespace, name)
	if err != nil {
		return ip, err
	}
	ic.mu.Lock()
	ic.exposed[name] = ip
	ic.mu.Unlock()
	return ip, ic.mapPorts()
}

// Unexpose deletes a Service made by Expose and its redirect.
func (ic *IngressController) Unexpose(ctx context.Context, name string) error {
	ic.mu.Lock()
	delete(ic.exposed, name)
	var mine, rest []client.Object
	for _, o := range ic.objs {
		if o.GetNamespace() == IngressNamespace && (o.GetName() == name || o.GetName() == name+"-lab") {
			mine = append(mine, o)
		} else {
			rest = append(rest, o)
		}
	}
	ic.objs = rest
	ic.mu.Unlock()
	var errs []error
	for _, o := range mine {
		if err := ic.l.Client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, ic.mapPorts())...)
}

// mapPorts makes every node namespace redirect ports 80 and 443 of every
// exposed IP to Traefik's entrypoints (kube-proxy's port translation; see
// the comment at the top of this file). The table is rewritten whole.
func (ic *IngressController) mapPorts() error {
	ic.mu.Lock()
	ips := make([]netip.Addr, 0, len(ic.exposed))
	for _, ip := range ic.exposed {
		ips = append(ips, ip)
	}
	ic.mu.Unlock()
	slices.SortFunc(ips, netip.Addr.Compare)
	var rules strings.Builder
	for _, ip := range ips {
		fam := "ip"
		if ip.Is6() {
			fam = "ip6"
		}
		for port, target := range map[int]int{80: traefikHTTPPort, 443: traefikHTTPSPort} {
			fmt.Fprintf(&rules, "    %s daddr %s tcp dport %d redirect to :%d\n", fam, ip, port, target)
		}
	}
	script := fmt.Sprintf(`table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
%[2]s  }
}
`, nftTable, rules.String())
	var errs []error
	for _, n := range ic.l.Nodes {
		cmd := []string{"ip", "netns", "exec", n.NS, "nft", "-f", "-"}
		if err := shIn(script, cmd...); err != nil {
			errs = append(errs, fmt.Errorf("nftables in %s: %w", n.NS, err))
		}
	}
	return errors.Join(errs...)
}

// Kill kills Traefik on node n with SIGKILL, as the node's death would.
func (ic *IngressController) Kill(n *Node) { ic.l.Proc(ic.procName(n)).kill() }

// Restart starts Traefik on node n again after Kill and waits until it is
// ready.
func (ic *IngressController) Restart(ctx context.Context, n *Node) error {
	p := ic.l.Proc(ic.procName(n))
	if done, _ := p.Exited(); !done {
		return fmt.Errorf("the Traefik on %s is running (PID %d)", n.Name, p.PID)
	}
	if err := ic.l.launch(p); err != nil {
		return err
	}
	return ic.waitReady(ctx, n)
}

// Stop stops Traefik everywhere and deletes what StartIngressController and
// Expose created, but the two namespaces (the lab has no namespace
// controller to finish deleting them).
func (ic *IngressController) Stop(ctx context.Context) error {
	for _, n := range ic.l.Nodes {
		if p := ic.l.Proc(ic.procName(n)); p != nil {
			p.stop(3 * time.Second)
		}
	}
	ic.mu.Lock()
	objs := ic.objs
	ic.objs, ic.exposed = nil, map[string]netip.Addr{}
	ic.mu.Unlock()
	var errs []error
	for _, o := range slices.Backward(objs) {
		if err := ic.l.Client.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting %T %s: %w", o, o.GetName(), err))
		}
	}
	for _, n := range ic.l.Nodes {
		_, _ = sh("ip", "netns", "exec", n.NS, "nft", "delete", "table", "inet", nftTable)
	}
	return errors.Join(errs...)
}

// shIn runs a command with stdin; the error quotes its output.
func shIn(stdin string, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
