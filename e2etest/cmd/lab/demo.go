package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// demoRun carries the running lab and the current step, so that a failure
// names both the step and the logs.
type demoRun struct {
	l    *lab.Lab
	step string
}

func (d *demoRun) begin(s string) {
	d.step = s
	step(s)
}

func (d *demoRun) fail(err error) error {
	return fmt.Errorf("step %q failed: %w\n(logs of every lab process: %s)", d.step, err, d.l.RunDir)
}

// kubectl runs kubectl against the lab and prints the command and its output.
func (d *demoRun) kubectl(stdin string, args ...string) error {
	fmt.Printf("    $ kubectl %s\n", strings.Join(args, " "))
	return d.show(stdin, "kubectl", append([]string{"--kubeconfig", d.l.Kubeconfig}, args...)...)
}

// inClient runs a command in the client namespace, printing it and its output.
func (d *demoRun) inClient(args ...string) error {
	fmt.Printf("    $ ip netns exec %s %s\n", d.l.ClientNS, strings.Join(args, " "))
	return d.show("", "ip", append([]string{"netns", "exec", d.l.ClientNS}, args...)...)
}

func (d *demoRun) show(stdin, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Printf("      %s\n", line)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

const demoConfig = `apiVersion: portico.dev/v1alpha1
kind: IPAddressPool
metadata:
  name: demo
spec:
  addresses: ["` + lab.PoolV4 + `", "` + lab.PoolV6 + `"]
---
apiVersion: portico.dev/v1alpha1
kind: L2Advertisement
metadata:
  name: demo
spec:
  ipAddressPools: [demo]
`

// demoBGPConfig peers every node with the lab's FRR router and announces a
// second pool over BGP.
var demoBGPConfig = fmt.Sprintf(`apiVersion: portico.dev/v1alpha1
kind: IPAddressPool
metadata:
  name: demo-bgp
spec:
  addresses: ["%s", "%s"]
  autoAssign: false
---
apiVersion: portico.dev/v1alpha1
kind: BGPPeer
metadata:
  name: tor
spec:
  myASN: %d
  peerASN: %d
  peerAddress: 198.51.100.1
  holdTime: 9s
---
apiVersion: portico.dev/v1alpha1
kind: BGPAdvertisement
metadata:
  name: demo-bgp
spec:
  ipAddressPools: [demo-bgp]
  communities: ["64500:100"]
`, lab.BGPPoolV4, lab.BGPPoolV6, lab.NodeASN, lab.RouterASN)

// demo runs the whole story in a lab called name. With keep the lab stays
// up at the end (its agent process serves it) and demo prints how to use it.
func demo(name string, nodes int, keep bool) (err error) {
	step("clean up what an earlier or interrupted run left")
	if err := down(name); err != nil {
		return err
	}
	d := &demoRun{step: "start the lab"}
	step("start the lab: API server, controller and a speaker in each of the node namespaces")
	opts := lab.Opts{Name: name, Nodes: nodes, Progress: func(s string) { fmt.Printf("    - %s\n", s) }}
	if keep {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		opts.Agent = []string{self, "agent"}
	}
	d.l, err = lab.Up(opts)
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			d.begin("bring back the nodes the demo killed")
			hctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if herr := d.heal(hctx); herr != nil && err == nil {
				err = d.fail(herr)
			}
			fmt.Printf("\nThe lab %q stays up (KEEP). Logs: %s\n\n  export KUBECONFIG=%s\n", name, d.l.RunDir, d.l.Kubeconfig)
			howToUse(d.l)
			return
		}
		step("tear the lab down")
		if derr := d.l.Down(); derr != nil && err == nil {
			err = derr
		}
		fmt.Printf("    logs kept in %s\n", d.l.RunDir)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	d.begin("create an IPAddressPool and an L2Advertisement")
	if err := d.kubectl(demoConfig, "apply", "-f", "-"); err != nil {
		return d.fail(err)
	}
	d.begin("create a LoadBalancer Service (and its EndpointSlice: the lab stands in for the kubelet)")
	if _, err := d.l.CreateService(ctx, "web", lab.ServiceOpts{}); err != nil {
		return d.fail(err)
	}
	ip, err := d.l.WaitIngress(ctx, "web")
	if err != nil {
		return d.fail(err)
	}
	d.begin("the Service got " + ip.String())
	if err := d.kubectl("", "get", "service", "web", "-o", "wide"); err != nil {
		return d.fail(err)
	}
	first, err := d.reach(ctx, ip)
	if err != nil {
		return d.fail(err)
	}
	if err := d.kubectl("", "describe", "service", "web"); err != nil {
		return d.fail(err)
	}
	if _, err := d.services(ctx); err != nil {
		return d.fail(err)
	}
	bgpIP, err := d.bgp(ctx)
	if err != nil {
		return d.fail(err)
	}
	if err := d.failover(ctx, ip, first); err != nil {
		return err
	}
	if err := d.bgpAfterFailover(ctx, bgpIP, first); err != nil {
		return err
	}
	return d.ingress(ctx, first)
}

// inRouter runs vtysh at the lab's router, printing the command and output.
func (d *demoRun) inRouter(cmd string) error {
	r := d.l.Router
	fmt.Printf("    $ vtysh -c '%s'   (in %s)\n", cmd, r.NS)
	return d.show("", "ip", "netns", "exec", r.NS, "vtysh", "--vty_socket", r.Dir, "-c", cmd)
}

// bgp peers the nodes with the router, gives a Service an IP from the BGP
// pool and shows the route at the router, with one next hop per node, and
// the external client behind the router reaching it.
func (d *demoRun) bgp(ctx context.Context) (netip.Addr, error) {
	d.begin("peer every node with the lab's FRR router (AS 64500) and announce a pool over BGP")
	if err := d.kubectl(demoBGPConfig, "apply", "-f", "-"); err != nil {
		return netip.Addr{}, err
	}
	d.begin("create a LoadBalancer Service with an IP from the BGP pool")
	if _, err := d.l.CreateService(ctx, "web-bgp", lab.ServiceOpts{Annotations: map[string]string{"portico.dev/address-pool": "demo-bgp"}}); err != nil {
		return netip.Addr{}, err
	}
	ip, err := d.l.WaitIngress(ctx, "web-bgp")
	if err != nil {
		return ip, err
	}
	d.begin(fmt.Sprintf("the router learns %s from every node (ECMP)", ip))
	prefix := netip.PrefixFrom(ip, ip.BitLen())
	for {
		fib, err := d.l.Router.FIB(prefix)
		if err == nil && fib != nil && len(fib.NextHops) == len(d.l.Nodes) {
			break
		}
		select {
		case <-ctx.Done():
			return ip, fmt.Errorf("the router has no route with %d next hops for %s (last error: %v)", len(d.l.Nodes), prefix, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := d.inRouter("show bgp summary"); err != nil {
		return ip, err
	}
	if err := d.inRouter("show ip route " + prefix.String()); err != nil {
		return ip, err
	}
	d.begin("the external client (" + d.l.ExtNS + ", behind the router) reaches " + ip.String())
	seen := map[string]bool{}
	for i := 0; i < 12 && len(seen) < 2; i++ {
		body, err := d.l.ExtHTTPGet(ctx, ip, 2*time.Second)
		if err != nil {
			return ip, err
		}
		seen[body] = true
	}
	fmt.Printf("    12 requests from %s reached %d nodes through the router\n", d.l.ExtNS, len(seen))
	d.begin("each node records its route in the Service's ServiceAnnouncement")
	for {
		var sa porticov1.ServiceAnnouncement
		err := d.l.Client.Get(ctx, client.ObjectKey{Namespace: lab.Namespace, Name: "web-bgp"}, &sa)
		if err == nil && len(sa.Status.BGP) == len(d.l.Nodes) {
			break
		}
		select {
		case <-ctx.Done():
			return ip, fmt.Errorf("the ServiceAnnouncement of web-bgp does not list %d nodes: %+v", len(d.l.Nodes), sa.Status.BGP)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return ip, d.kubectl("", "get", "serviceannouncements", "web-bgp", "-o", "jsonpath={range .status.bgp[*]}{.ip}{\" from \"}{.node}{\" to \"}{.peers}{\"\\n\"}{end}")
}

// bgpAfterFailover shows the dead node's next hop gone from the router and
// the external client still served.
func (d *demoRun) bgpAfterFailover(ctx context.Context, ip netip.Addr, dead *lab.Node) error {
	d.begin(fmt.Sprintf("the router dropped %s's next hop for %s; the external client is still served", dead.Name, ip))
	prefix := netip.PrefixFrom(ip, ip.BitLen())
	for {
		fib, err := d.l.Router.FIB(prefix)
		if err == nil && fib != nil && len(fib.NextHops) == len(d.l.Nodes)-1 {
			break
		}
		select {
		case <-ctx.Done():
			return d.fail(fmt.Errorf("the router still routes %s to %s", prefix, dead.Name))
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := d.inRouter("show ip route " + prefix.String()); err != nil {
		return d.fail(err)
	}
	body, err := d.l.ExtHTTPGet(ctx, ip, 2*time.Second)
	if err != nil {
		return d.fail(err)
	}
	fmt.Printf("    %s answered the external client\n", body)
	return nil
}

// reach shows that the client reaches ip: the ARP reply's MAC and the HTTP
// answer name the same node, which it returns.
func (d *demoRun) reach(ctx context.Context, ip netip.Addr) (*lab.Node, error) {
	d.begin("the client reaches " + ip.String() + " on the data segment")
	n := (*lab.Node)(nil)
	var err error
	for n == nil && ctx.Err() == nil {
		if n, err = d.l.Announcer(ip); err != nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if n == nil {
		return nil, err
	}
	probe, proto := []string{"arping", "-c", "1", "-w", "2", "-I", "eth0", ip.String()}, "ARP"
	if ip.Is6() {
		probe, proto = []string{"ndisc6", "-n", "-r", "1", "-w", "500", ip.String(), "eth0"}, "NDP"
	}
	if err := d.inClient(probe...); err != nil {
		return nil, err
	}
	if err := d.inClient("curl", "-sS", "-g", "-m", "2", "http://"+net.JoinHostPort(ip.String(), "80")+"/"); err != nil {
		return nil, err
	}
	fmt.Printf("    %s (MAC %s) answers %s for %s, and HTTP reaches %s\n", n.Name, n.MAC, proto, ip, n.Name)
	return n, nil
}

func (d *demoRun) failover(ctx context.Context, ip netip.Addr, old *lab.Node) error {
	d.begin(fmt.Sprintf("kill %s: its speaker (SIGKILL, PID %d) and its data link", old.Name, d.l.Proc("speaker-"+old.Name).PID))
	d.l.KillSpeaker(old)
	if err := d.l.CutDataLink(old); err != nil {
		return d.fail(err)
	}
	killed := time.Now()
	d.begin("probe http://" + ip.String() + "/ from the client every 50 ms until another node answers")
	p, err := d.l.WaitHTTP(ctx, ip, 50*time.Millisecond, func(n string) bool { return n != old.Name })
	if err != nil {
		return d.fail(err)
	}
	fmt.Printf("    %s answered %s after the kill\n", p.Node, p.At.Sub(killed).Round(time.Millisecond))
	if _, err := d.reach(ctx, ip); err != nil {
		return d.fail(err)
	}
	d.begin("what the cluster says now")
	if err := d.kubectl("", "get", "speakerstatuses"); err != nil {
		return d.fail(err)
	}
	if err := d.kubectl("", "describe", "service", "web"); err != nil {
		return d.fail(err)
	}
	fmt.Fprintf(os.Stdout, "\nFailover from %s to %s: %s from the kill to the client's first answer.\n",
		old.Name, p.Node, p.At.Sub(killed).Round(time.Millisecond))
	return nil
}
