package main

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// demoServices are the demo's other Services, applied with kubectl as a user
// would write them: a dual-stack one, two sharing one IP by their sharing key
// (their ports differ), and one with externalTrafficPolicy: Local, whose only
// endpoint the lab puts on the last node.
const demoServices = `apiVersion: v1
kind: Service
metadata:
  name: web-dual
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv4, IPv6]
  allocateLoadBalancerNodePorts: false
  selector: {app: web-dual}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: shared-http
  annotations:
    portico.dev/allow-shared-ip: demo
spec:
  type: LoadBalancer
  allocateLoadBalancerNodePorts: false
  selector: {app: shared}
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata:
  name: shared-dns
  annotations:
    portico.dev/allow-shared-ip: demo
spec:
  type: LoadBalancer
  allocateLoadBalancerNodePorts: false
  selector: {app: shared}
  ports: [{name: dns, port: 53, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-local
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web-local}
  ports: [{name: http, port: 80}]
`

// services applies demoServices, stands in for the endpoint controller,
// waits for every address, shows the client reaching them, and shows them
// with kubectl and portico status once every speaker has reported. It
// returns the IPs of each Service by name.
func (d *demoRun) services(ctx context.Context) (map[string][]netip.Addr, error) {
	d.begin("create more Services: dual-stack (web-dual), two sharing one IP by key (shared-http on 80/TCP, shared-dns on 53/UDP), and one with externalTrafficPolicy: Local (web-local)")
	if err := d.kubectl(demoServices, "apply", "-f", "-"); err != nil {
		return nil, err
	}
	local := d.l.Nodes[len(d.l.Nodes)-1]
	all := make([]string, 0, len(d.l.Nodes))
	for _, n := range d.l.Nodes {
		all = append(all, n.Name)
	}
	endpoints := map[string][]string{"web-dual": all, "shared-http": all, "shared-dns": all, "web-local": {local.Name}}
	fmt.Printf("    (the lab stands in for the kubelet: ready endpoints of web-local only on %s, of the others on every node)\n", local.Name)
	for _, name := range []string{"web-dual", "shared-http", "shared-dns", "web-local"} {
		if err := d.l.SetEndpoints(ctx, name, false, endpoints[name]...); err != nil {
			return nil, err
		}
	}
	want := map[string]int{"web": 1, "web-dual": 2, "shared-http": 1, "shared-dns": 1, "web-local": 1}
	ips := map[string][]netip.Addr{}
	for name, n := range want {
		got, err := d.waitIPs(ctx, name, n)
		if err != nil {
			return nil, err
		}
		ips[name] = got
	}
	if ips["shared-http"][0] != ips["shared-dns"][0] {
		return nil, fmt.Errorf("shared-http got %s and shared-dns %s: the sharing key should have put them on one IP", ips["shared-http"][0], ips["shared-dns"][0])
	}
	if err := d.reachAll(ctx, ips); err != nil {
		return nil, err
	}
	for name, want := range ips {
		if err := d.waitAnnounced(ctx, name, len(want)); err != nil {
			return nil, err
		}
	}
	d.begin("what kubectl shows")
	for _, args := range [][]string{
		{"get", "services", "-o", "wide"},
		{"get", "ipaddresspools,l2advertisements"},
		{"get", "serviceannouncements"},
	} {
		if err := d.kubectl("", args...); err != nil {
			return nil, err
		}
	}
	d.begin("what portico status shows (bin/portico: pools, Services, who announces them, speakers, problems)")
	return ips, d.portico("status")
}

// portico runs the portico CLI against the lab.
func (d *demoRun) portico(args ...string) error {
	fmt.Printf("    $ portico %s\n", strings.Join(args, " "))
	return d.show("", filepath.Join(d.l.BinDir, "portico"), append(args, "--kubeconfig", d.l.Kubeconfig)...)
}

// waitIPs waits until the Service has n ingress IPs and returns them.
func (d *demoRun) waitIPs(ctx context.Context, name string, n int) ([]netip.Addr, error) {
	for {
		var svc corev1.Service
		err := d.l.Client.Get(ctx, client.ObjectKey{Namespace: lab.Namespace, Name: name}, &svc)
		var ips []netip.Addr
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if ip, perr := netip.ParseAddr(in.IP); perr == nil {
				ips = append(ips, ip)
			}
		}
		if err == nil && len(ips) == n {
			return ips, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("service %s has %v, want %d addresses (err %v): kubectl describe service %s", name, ips, n, err, name)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitAnnounced waits until the Service's ServiceAnnouncement names an L2
// node for each of its n IPs, so that kubectl and portico status show who
// announces them rather than a moment before.
func (d *demoRun) waitAnnounced(ctx context.Context, name string, n int) error {
	for {
		var sa porticov1.ServiceAnnouncement
		err := d.l.Client.Get(ctx, client.ObjectKey{Namespace: lab.Namespace, Name: name}, &sa)
		announced := 0
		for _, e := range sa.Status.L2 {
			if e.Node != "" {
				announced++
			}
		}
		if err == nil && announced == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the ServiceAnnouncement of %s names a node for %d of its %d IPs (err %v)", name, announced, n, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// heal brings back every node the demo killed (data link, speaker), so a
// lab kept up (KEEP) has all its nodes.
func (d *demoRun) heal(ctx context.Context) error {
	var names []string
	for _, n := range d.l.Nodes {
		names = append(names, n.Name)
		if err := d.l.RestoreDataLink(n); err != nil {
			return err
		}
		if done, _ := d.l.Proc("speaker-" + n.Name).Exited(); done {
			fmt.Printf("    %s: data link up, speaker started again\n", n.Name)
			if err := d.l.StartSpeaker(n); err != nil {
				return err
			}
		}
	}
	return d.l.WaitMembers(ctx, names...)
}

// reachAll shows the client reaching every address of the other Services;
// web-local must be answered by the node with its endpoint.
func (d *demoRun) reachAll(ctx context.Context, ips map[string][]netip.Addr) error {
	for _, name := range []string{"web-dual", "shared-http", "web-local"} {
		for _, ip := range ips[name] {
			n, err := d.reach(ctx, ip)
			if err != nil {
				return err
			}
			if local := d.l.Nodes[len(d.l.Nodes)-1]; name == "web-local" && n != local {
				return fmt.Errorf("web-local (%s) is announced by %s, but its only endpoint is on %s", ip, n.Name, local.Name)
			}
		}
	}
	fmt.Printf("    web-local is answered by %s, the only node with its endpoint (externalTrafficPolicy: Local)\n", d.l.Nodes[len(d.l.Nodes)-1].Name)
	return nil
}
