package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-lb/portico/e2etest/lab"
)

// ingress is the demo's Ingress story: a real Traefik on every node as the
// Ingress controller, its Service type LoadBalancer with a Portico IP,
// https://app.example/ and /api reaching two backends, then the death of the
// node announcing that IP, timed. dead is the node an earlier step killed:
// it comes back first.
func (d *demoRun) ingress(ctx context.Context, dead *lab.Node) error {
	d.begin(fmt.Sprintf("bring %s back: its data link and its speaker", dead.Name))
	if err := heal(ctx, d.l, dead); err != nil {
		return d.fail(err)
	}

	d.begin("start Traefik (a real Ingress controller) on every node, as a hostNetwork DaemonSet; its Service is type LoadBalancer, ports 80 and 443")
	ic, err := d.l.StartIngressController(ctx, nil)
	if err != nil {
		return d.fail(err)
	}
	if err := d.kubectl("", "get", "service", "traefik", "-n", lab.IngressNamespace, "-o", "wide"); err != nil {
		return d.fail(err)
	}

	d.begin("two backends (web, api), a TLS Secret for app.example from a demo CA, and an Ingress: / to web, /api to api")
	backends, err := d.l.StartBackends()
	if err != nil {
		return d.fail(err)
	}
	defer backends.Close(context.Background())
	for _, name := range []string{"web", "api"} {
		if _, err := backends.Add(ctx, lab.AppsNamespace, name); err != nil {
			return d.fail(err)
		}
	}
	ca, err := lab.NewCA("Portico demo CA")
	if err != nil {
		return d.fail(err)
	}
	caFile := filepath.Join(d.l.RunDir, "demo-ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		return d.fail(err)
	}
	secret, err := ca.TLSSecret(lab.AppsNamespace, "app-tls", "app.example")
	if err != nil {
		return d.fail(err)
	}
	if err := d.l.Client.Create(ctx, secret); err != nil {
		return d.fail(err)
	}
	if err := d.l.Client.Create(ctx, lab.NewIngress("app", "app.example", "app-tls",
		lab.IngressPath{Prefix: "/", Service: "web"}, lab.IngressPath{Prefix: "/api", Service: "api"})); err != nil {
		return d.fail(err)
	}
	if _, err := lab.WaitIngressAnswer(ctx, d.l.ClientNS, ic.IP, "https://app.example/api", ca.Pool, 50*time.Millisecond,
		func(a lab.Answer) bool { return a.Backend == "api" }); err != nil {
		return d.fail(err)
	}
	// Traefik writes its Service's IP into the Ingress's status.
	for ctx.Err() == nil {
		var ing networkingv1.Ingress
		err := d.l.Client.Get(ctx, client.ObjectKey{Namespace: lab.AppsNamespace, Name: "app"}, &ing)
		if in := ing.Status.LoadBalancer.Ingress; err == nil && len(in) == 1 && in[0].IP == ic.IP.String() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := d.kubectl("", "get", "ingress", "-n", lab.AppsNamespace); err != nil {
		return d.fail(err)
	}

	d.begin("the client reaches https://app.example/ and /api at " + ic.IP.String() + " (certificate checked against the demo CA)")
	first, err := d.l.Announcer(ic.IP)
	if err != nil {
		return d.fail(err)
	}
	for _, u := range []string{"https://app.example/", "https://app.example/api"} {
		if err := d.inClient(append([]string{"curl", "-sS", "-m", "5"}, lab.ResolveArgs(u, ic.IP, caFile)...)...); err != nil {
			return d.fail(err)
		}
	}
	fmt.Printf("    %s answers ARP for %s; its Traefik routed both requests\n", first.Name, ic.IP)

	d.begin(fmt.Sprintf("kill %s, the node announcing %s: Traefik, speaker (SIGKILL) and data link", first.Name, ic.IP))
	ic.Kill(first)
	d.l.KillSpeaker(first)
	if err := d.l.CutDataLink(first); err != nil {
		return d.fail(err)
	}
	killed := time.Now()
	d.begin("ask https://app.example/api from the client every 50 ms until another node's Traefik answers")
	p, err := lab.WaitIngressAnswer(ctx, d.l.ClientNS, ic.IP, "https://app.example/api", ca.Pool, 50*time.Millisecond,
		func(a lab.Answer) bool { return a.Backend == "api" && a.Via != first.Name })
	if err != nil {
		return d.fail(err)
	}
	took := p.At.Sub(killed).Round(time.Millisecond)
	for _, u := range []string{"https://app.example/", "https://app.example/api"} {
		if err := d.inClient(append([]string{"curl", "-sS", "-m", "5"}, lab.ResolveArgs(u, ic.IP, caFile)...)...); err != nil {
			return d.fail(err)
		}
	}
	fmt.Printf("\nIngress failover from %s to %s: %s from the kill to the first HTTPS answer.\n", first.Name, p.Node, took)
	return nil
}
