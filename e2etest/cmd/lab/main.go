// Command lab starts and stops the Portico lab (package e2etest/lab): a whole
// cluster on one machine, as root. Subcommands:
//
//	lab up      start a lab that keeps running after the command exits
//	lab down    stop it, and remove leftovers of failed or interrupted runs
//	lab demo    start a lab, show Services over L2 and BGP and a failover, tear
//	            down (-keep or KEEP=1: leave it up)
//	lab bench   run the lab benchmarks (failover, announcement, memory)
//
// Run it from the repository (it finds bin/ and config/crd above the working
// directory), after `make build control-plane`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/portico-lb/portico/e2etest/lab"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet("lab "+cmd, flag.ExitOnError)
	name := fs.String("name", "ptc", "lab name: prefix of its namespaces")
	nodes := fs.Int("nodes", 3, "number of node namespaces")
	var err error
	switch cmd {
	case "up":
		_ = fs.Parse(args)
		err = up(*name, *nodes)
	case "down":
		_ = fs.Parse(args)
		err = down(*name)
	case "demo":
		keep := fs.Bool("keep", os.Getenv("KEEP") != "" && os.Getenv("KEEP") != "0", "leave the lab up at the end and print how to use it (default: $KEEP set, not 0)")
		_ = fs.Parse(args)
		err = demo(*name, *nodes, *keep)
	case "bench":
		trials := fs.Int("trials", 10, "failover and announcement trials")
		services := fs.Int("services", 1000, "Services for the memory benchmark (0 skips it)")
		_ = fs.Parse(args)
		err = bench(*name, *nodes, *trials, *services)
	case "agent": // started by `lab up`; serves the lab after it exits
		_ = fs.Parse(args)
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		err = lab.ServeAgent(ctx, *name)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab %s: %v\n", cmd, err)
		if errors.Is(err, lab.ErrMissing) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: lab up|down|demo|bench [-name ptc] [-nodes 3]")
	os.Exit(2)
}

func step(s string) { fmt.Printf("==> %s\n", s) }

func up(name string, nodes int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	l, err := lab.Up(lab.Opts{Name: name, Nodes: nodes, Agent: []string{self, "agent"}, Progress: step, NoSignalHandler: true})
	if err != nil {
		return err
	}
	fmt.Printf("\nThe lab %q is up. Logs: %s\n\n  export KUBECONFIG=%s\n", name, l.RunDir, l.Kubeconfig)
	fmt.Printf(`  kubectl apply -f - <<EOF
  apiVersion: portico.dev/v1alpha1
  kind: IPAddressPool
  metadata: {name: lab}
  spec: {addresses: ["%s", "%s"]}
  ---
  apiVersion: portico.dev/v1alpha1
  kind: L2Advertisement
  metadata: {name: lab}
  spec: {ipAddressPools: [lab]}
  EOF
  kubectl create service loadbalancer web --tcp=80:80
`, lab.PoolV4, lab.PoolV6)
	howToUse(l)
	return nil
}

// howToUse prints how to use a running lab: its API server, its client
// namespaces, its router, its nodes, and how to stop it.
func howToUse(l *lab.Lab) {
	fmt.Printf(`  kubectl get services           # EXTERNAL-IP
  %s status --kubeconfig $KUBECONFIG
  ip netns exec %s curl http://IP/          # from the client on the nodes' segment: answers with the node's name
  ip netns exec %s arping -c 2 -I eth0 IP   # which node answers ARP (ndisc6 IP eth0 for IPv6)
  ip netns exec %s curl http://IP/          # from the external client behind the router (BGP pools)
  ip netns exec %s vtysh --vty_socket %s -c 'show bgp summary'   # the router (FRR)

Nodes: %s. Stop a node's speaker: kill the PID in %s, or cut its data link:
  ip -n %s link set nodeN down
Tear down: make lab-down (or: go run ./e2etest/cmd/lab down)
`, filepath.Join(l.BinDir, "portico"), l.ClientNS, l.ClientNS, l.ExtNS, l.Router.NS, l.Router.Dir, nodeList(l), lab.StateDir, l.L2NS)
}

func nodeList(l *lab.Lab) string {
	s := ""
	for i, n := range l.Nodes {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s (namespace %s, MAC %s)", n.Name, n.NS, n.MAC)
	}
	return s
}

func down(name string) error {
	var errs []error
	if s, err := lab.LoadState(name); err == nil {
		fmt.Printf("==> tearing down lab %q (logs stay in %s)\n", name, s.RunDir)
		errs = append(errs, lab.Teardown(s))
	} else if !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	removed, err := lab.CleanLeftovers()
	for _, r := range removed {
		fmt.Printf("==> removed leftover %s\n", r)
	}
	errs = append(errs, err)
	return errors.Join(errs...)
}
