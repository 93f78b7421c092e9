package e2etest

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-lb/portico/e2etest/lab"
)

// ingressSetup is a real Traefik on every node behind a Portico IP, with
// backends web, api and blog, a Service "empty" with no ready endpoint, and
// two Ingresses: app.example (TLS from a Secret issued by the test's CA; "/"
// to web, "/api" to api, "/empty" to empty) and blog.example (plain HTTP, "/"
// to blog).
type ingressSetup struct {
	ic     *lab.IngressController
	ca     *lab.CA
	caFile string
	// bgpIP is the address of the controller's second Service, from a BGP
	// pool.
	bgpIP netip.Addr
}

func TestIngress(t *testing.T) {
	requireTool(t, lab.CheckTraefik(theLab.Opts))
	ctx := testCtx(t, 5*time.Minute)
	s := &ingressSetup{}
	start := time.Now()
	backends, err := theLab.StartBackends()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := backends.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	// The controller first: it creates the namespaces.
	s.ic, err = theLab.StartIngressController(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.ic.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	for _, name := range []string{"web", "api", "blog"} {
		if _, err := backends.Add(ctx, lab.AppsNamespace, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := backends.AddEmpty(ctx, lab.AppsNamespace, "empty"); err != nil {
		t.Fatal(err)
	}
	if s.ca, err = lab.NewCA("Portico e2e test CA"); err != nil {
		t.Fatal(err)
	}
	s.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(s.caFile, s.ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	secret, err := s.ca.TLSSecret(lab.AppsNamespace, "app-tls", "app.example")
	if err != nil {
		t.Fatal(err)
	}
	create(t, ctx, secret)
	create(t, ctx, lab.NewIngress("app", "app.example", "app-tls",
		lab.IngressPath{Prefix: "/", Service: "web"}, lab.IngressPath{Prefix: "/api", Service: "api"},
		lab.IngressPath{Prefix: "/empty", Service: "empty"}))
	create(t, ctx, lab.NewIngress("blog", "blog.example", "", lab.IngressPath{Prefix: "/", Service: "blog"}))
	if _, err := lab.WaitIngressAnswer(ctx, theLab.ClientNS, s.ic.IP, "https://app.example/api", s.ca.Pool, probeEvery,
		func(a lab.Answer) bool { return a.Backend == "api" }); err != nil {
		t.Fatalf("Traefik at %s never routed https://app.example/api: %v (Traefik logs in %s)", s.ic.IP, err, theLab.RunDir)
	}
	t.Logf("Traefik on %d nodes serves app.example at %s, %s after the start", len(theLab.Nodes), s.ic.IP, time.Since(start).Round(time.Millisecond))
	// A second Service for the same Traefik, from a BGP pool; it stays
	// until the end, so that NodeDeath watches its route too.
	bgpSetup(t, ctx, "ingress-bgp", nil, bgpPeer("tor-ingress"))
	if s.bgpIP, err = s.ic.Expose(ctx, "traefik-bgp", map[string]string{"portico.dev/address-pool": "ingress-bgp"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.ic.Unexpose(ctx, "traefik-bgp"); err != nil {
			t.Error(err)
		}
	})

	t.Run("HostsAndPaths", s.hostsAndPaths)
	t.Run("IngressStatus", s.ingressStatus)
	t.Run("NoReadyEndpoint", s.noReadyEndpoint)
	t.Run("BadIngresses", s.badIngresses)
	t.Run("BGP", s.bgp)
	t.Run("NodeDeath", s.nodeDeath)
	// Its role was enough: nothing it asked for was refused.
	if logs := s.ic.Logs(); strings.Contains(logs, "forbidden") {
		t.Errorf("Traefik was refused something by the API server with its role:\n%s", grepLines(logs, "forbidden"))
	}
}

// grepLines returns the lines of s containing word.
func grepLines(s, word string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, word) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// curlCase is one request and the backend and path it must reach.
type curlCase struct {
	url, backend, path string
}

var appCases = []curlCase{
	{"http://app.example/", "web", "/"},
	{"http://app.example/api/items?id=7", "api", "/api/items"},
	{"https://app.example/", "web", "/"},
	{"https://app.example/api", "api", "/api"},
	{"https://app.example/api/items", "api", "/api/items"},
	{"http://blog.example/posts/1", "blog", "/posts/1"},
}

// curlAnswer runs curl from ns with --resolve to ip (and the test's CA) and
// checks the backend's answer.
func (s *ingressSetup) curlAnswer(t *testing.T, ctx context.Context, ns string, ip netip.Addr, c curlCase) lab.Answer {
	t.Helper()
	body, err := lab.Curl(ctx, ns, 5*time.Second, lab.ResolveArgs(c.url, ip, s.caFile)...)
	if err != nil {
		t.Fatal(err)
	}
	a, err := lab.ParseAnswer(body)
	if err != nil {
		t.Fatalf("%s: %v", c.url, err)
	}
	if a.Backend != c.backend || a.Path != c.path {
		t.Errorf("%s reached backend %s with path %s, want %s with %s", c.url, a.Backend, a.Path, c.backend, c.path)
	}
	return a
}

// hostsAndPaths: from the client on the L2 segment, with curl, every host
// and path over HTTP and HTTPS (the certificate checked against the test's
// CA) reaches its backend, which sees the client's own address
// (externalTrafficPolicy Local keeps it).
func (s *ingressSetup) hostsAndPaths(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	for _, c := range appCases {
		a := s.curlAnswer(t, ctx, theLab.ClientNS, s.ic.IP, c)
		if a.Client != lab.ClientIPv4 {
			t.Errorf("%s: the backend saw client %s, want %s", c.url, a.Client, lab.ClientIPv4)
		}
		t.Logf("%s -> %s %s through %s", c.url, a.Backend, a.Path, a.Via)
	}
	r, err := lab.IngressGet(ctx, theLab.ClientNS, s.ic.IP, "https://app.example/", s.ca.Pool, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cert == nil || r.Cert.Issuer.CommonName != s.ca.Cert.Subject.CommonName {
		t.Errorf("app.example presented %v, want a certificate from %q", r.Cert, s.ca.Cert.Subject.CommonName)
	}
	// A host no Ingress names: Traefik's 404, from the same IP.
	r, err = lab.IngressGet(ctx, theLab.ClientNS, s.ic.IP, "http://nobody.example/", nil, 5*time.Second)
	if err != nil || r.Status != 404 {
		t.Errorf("http://nobody.example/: %d %q, %v; want Traefik's 404", r.Status, r.Body, err)
	}
}

// ingressStatus: Traefik writes its Service's Portico IP into the Ingresses'
// status (kubectl get ingress shows it), and one node answers ARP for it.
func (s *ingressSetup) ingressStatus(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	for _, name := range []string{"app", "blog"} {
		var last []networkingv1.IngressLoadBalancerIngress
		for {
			var ing networkingv1.Ingress
			if err := theLab.Client.Get(ctx, client.ObjectKey{Namespace: lab.AppsNamespace, Name: name}, &ing); err == nil {
				last = ing.Status.LoadBalancer.Ingress
				if len(last) == 1 && last[0].IP == s.ic.IP.String() {
					break
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("Ingress %s status %+v, want the IP %s", name, last, s.ic.IP)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	n := waitAnnouncer(t, ctx, s.ic.IP)
	t.Logf("Ingresses show %s, announced by %s", s.ic.IP, n.Name)
}

// waitAnnouncer waits until exactly one node answers ARP/NDP for ip.
func waitAnnouncer(t *testing.T, ctx context.Context, ip netip.Addr) *lab.Node {
	t.Helper()
	for {
		n, err := theLab.Announcer(ip)
		if err == nil {
			return n
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", ip, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// noReadyEndpoint: a path whose Service has no ready endpoint gets Traefik's
// 503 at once, never a hang (the request has 5 s).
func (s *ingressSetup) noReadyEndpoint(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	for _, u := range []string{"http://app.example/empty", "https://app.example/empty/x"} {
		sent := time.Now()
		r, err := lab.IngressGet(ctx, theLab.ClientNS, s.ic.IP, u, s.ca.Pool, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if r.Status != 503 {
			t.Errorf("%s: %d %q, want 503", u, r.Status, r.Body)
		}
		t.Logf("%s: %d %q in %s", u, r.Status, r.Body, time.Since(sent).Round(time.Millisecond))
	}
}

// badIngresses: an Ingress naming a missing TLS Secret and one naming a
// missing Service. Traefik says so in its log, serves the first host with
// its default certificate (which the client refuses) and the second with
// 404; every other route, the IP and its announcer stay.
func (s *ingressSetup) badIngresses(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	before := waitAnnouncer(t, ctx, s.ic.IP)
	create(t, ctx, lab.NewIngress("bad-tls", "broken.example", "no-such-secret", lab.IngressPath{Prefix: "/", Service: "web"}))
	create(t, ctx, lab.NewIngress("bad-backend", "missing.example", "", lab.IngressPath{Prefix: "/", Service: "no-such-service"}))
	for _, word := range []string{"no-such-secret", "no-such-service"} {
		for !strings.Contains(s.ic.Logs(), word) {
			select {
			case <-ctx.Done():
				t.Fatalf("no Traefik log line names %s (logs in %s)", word, theLab.RunDir)
			case <-time.After(100 * time.Millisecond):
			}
		}
		t.Logf("Traefik says:\n%s", lastLine(grepLines(s.ic.Logs(), word)))
	}
	// The host with the missing Secret is still routed over HTTP.
	if _, err := lab.WaitIngressAnswer(ctx, theLab.ClientNS, s.ic.IP, "http://broken.example/", nil, probeEvery,
		func(a lab.Answer) bool { return a.Backend == "web" }); err != nil {
		t.Fatal(err)
	}
	r, err := lab.IngressGet(ctx, theLab.ClientNS, s.ic.IP, "https://broken.example/", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cert == nil || r.Cert.Issuer.CommonName == s.ca.Cert.Subject.CommonName {
		t.Errorf("broken.example presented %v; want Traefik's default certificate", r.Cert)
	} else {
		t.Logf("https://broken.example/ presents %q", r.Cert.Subject.CommonName)
	}
	if _, err := lab.IngressGet(ctx, theLab.ClientNS, s.ic.IP, "https://broken.example/", s.ca.Pool, 5*time.Second); err == nil {
		t.Errorf("https://broken.example/ passed the check against the test's CA without a certificate of its own")
	}
	r, err = lab.IngressGet(ctx, theLab.ClientNS, s.ic.IP, "http://missing.example/", nil, 5*time.Second)
	if err != nil || r.Status != 404 {
		t.Errorf("http://missing.example/: %d %q, %v; want 404", r.Status, r.Body, err)
	}
	for _, c := range appCases {
		s.curlAnswer(t, ctx, theLab.ClientNS, s.ic.IP, c)
	}
	ip, err := theLab.WaitIngressIn(ctx, lab.IngressNamespace, "traefik")
	if err != nil || ip != s.ic.IP {
		t.Errorf("the controller's Service has %s (%v), had %s", ip, err, s.ic.IP)
	}
	if after := waitAnnouncer(t, ctx, s.ic.IP); after != before {
		t.Errorf("%s moved from %s to %s after bad Ingresses", s.ic.IP, before.Name, after.Name)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// bgp: a second Service for the same Traefik takes an IP from a BGP pool;
// the router learns it from every node, and the external client behind the
// router reaches every host and path, over several nodes (ECMP), with its
// own address seen by the backends.
func (s *ingressSetup) bgp(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	ip := s.bgpIP
	waitNextHops(t, ctx, hostPrefix(ip), nodeAddrs(ip))
	if _, err := lab.WaitIngressAnswer(ctx, theLab.ExtNS, ip, "https://app.example/api", s.ca.Pool, probeEvery,
		func(a lab.Answer) bool { return a.Backend == "api" }); err != nil {
		t.Fatal(err)
	}
	for _, c := range appCases {
		if a := s.curlAnswer(t, ctx, theLab.ExtNS, ip, c); a.Client != lab.ExtIPv4 {
			t.Errorf("%s: the backend saw client %s, want %s", c.url, a.Client, lab.ExtIPv4)
		}
	}
	via := map[string]int{}
	for range 24 {
		a := s.curlAnswer(t, ctx, theLab.ExtNS, ip, curlCase{"https://app.example/api", "api", "/api"})
		via[a.Via]++
	}
	t.Logf("24 HTTPS requests from %s to %s went through %v", theLab.ExtNS, ip, via)
	if len(via) < 2 {
		t.Errorf("24 requests over ECMP all went through %v; want more than one node", via)
	}
}

// nodeDeath kills the node announcing the controller's L2 IP (Traefik,
// speaker, data link) and measures how long until the client's HTTPS
// requests are answered through another node; over BGP, how long until the
// router drops the dead node's next hop, after which every request of the
// external client is answered.
func (s *ingressSetup) nodeDeath(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	old := waitAnnouncer(t, ctx, s.ic.IP)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.ic.Restart(ctx, old); err != nil {
			t.Errorf("restarting Traefik on %s: %v", old.Name, err)
		}
	})
	heal(t, old)
	s.ic.Kill(old)
	theLab.KillSpeaker(old)
	if err := theLab.CutDataLink(old); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	p, err := lab.WaitIngressAnswer(ctx, theLab.ClientNS, s.ic.IP, "https://app.example/api", s.ca.Pool, probeEvery,
		func(a lab.Answer) bool { return a.Backend == "api" && a.Via != old.Name })
	if err != nil {
		t.Fatalf("after %s died: %v", old.Name, err)
	}
	t.Logf("L2 failover of the Ingress controller's IP %s: %s died, https://app.example/api answered through %s %s later",
		s.ic.IP, old.Name, p.Node, p.At.Sub(killed).Round(time.Millisecond))
	for _, c := range appCases {
		if a := s.curlAnswer(t, ctx, theLab.ClientNS, s.ic.IP, c); a.Via == old.Name {
			t.Errorf("%s answered through the dead %s", c.url, old.Name)
		}
	}
	var live []string
	for _, n := range theLab.Nodes {
		if n != old {
			live = append(live, n.Name)
		}
	}
	waitNextHops(t, ctx, hostPrefix(s.bgpIP), nodeAddrs(s.bgpIP, live...))
	t.Logf("BGP: the router dropped %s's next hop for %s %s after its death", old.Name, s.bgpIP, time.Since(killed).Round(time.Millisecond))
	for range 8 {
		if a := s.curlAnswer(t, ctx, theLab.ExtNS, s.bgpIP, curlCase{"https://app.example/", "web", "/"}); !slices.Contains(live, a.Via) {
			t.Errorf("the external client was answered through %s", a.Via)
		}
	}
}
