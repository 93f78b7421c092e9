package e2etest

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/portico-lb/portico/e2etest/lab"
)

// TestRouterReachesNodes: the external client reaches every node's data
// addresses through the FRR router (and the nodes answer through it, their
// default gateway), in both families, with curl and with the lab's own HTTP
// client.
func TestRouterReachesNodes(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	for _, n := range theLab.Nodes {
		for _, ip := range []string{n.IPv4, n.IPv6} {
			addr := mustAddr(ip)
			got, err := theLab.ExtCurl(ctx, lab.URL(addr), 5*time.Second)
			if err != nil || got != n.Name {
				t.Errorf("curl %s from %s: %q, %v (want %q)", lab.URL(addr), theLab.ExtNS, got, err, n.Name)
			}
			got, err = theLab.ExtHTTPGet(ctx, addr, 5*time.Second)
			if err != nil || got != n.Name {
				t.Errorf("GET %s from %s: %q, %v (want %q)", addr, theLab.ExtNS, got, err, n.Name)
			}
		}
	}
	// zebra reads the kernel's routes: the data segment is connected.
	fib, err := theLab.Router.FIB(netip.MustParsePrefix("198.51.100.0/24"))
	if err != nil || fib == nil || fib.Protocol != "connected" || !fib.Installed {
		t.Errorf("router's route to the data segment: %+v, %v", fib, err)
	}
}

// TestRouterNeighbours: FRR has a neighbour for each node address (no BGPPeer
// exists outside the BGP tests, so none is Established once their sessions
// have closed), the BFD profile exists, and a test can attach BFD and a
// password to one neighbour and take them off.
func TestRouterNeighbours(t *testing.T) {
	r := theLab.Router
	err := eventually(10*time.Second, func() error {
		nbrs, err := r.Neighbors()
		if err != nil {
			return err
		}
		if len(nbrs) != 2*len(theLab.Nodes) {
			return fmt.Errorf("%d neighbours, want %d (an IPv4 and an IPv6 one per node): %v", len(nbrs), 2*len(theLab.Nodes), nbrs)
		}
		for _, n := range theLab.Nodes {
			for _, ip := range []string{n.IPv4, n.IPv6} {
				nb := nbrs[mustAddr(ip)]
				switch {
				case nb == nil:
					return fmt.Errorf("no neighbour %s (%s)", ip, n.Name)
				case nb.State == "Established" || nb.State == "":
					return fmt.Errorf("neighbour %s is %q, want a state short of Established: no speaker peers", ip, nb.State)
				case nb.Uptime != 0 || nb.Password || nb.BFDStatus != "":
					return fmt.Errorf("neighbour %s: %+v", ip, nb)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	profiles, err := r.BFDProfiles()
	if err != nil {
		t.Fatal(err)
	}
	want := lab.BFDProfileConfig{ReceiveInterval: lab.BFDInterval, TransmitInterval: lab.BFDInterval, DetectMultiplier: lab.BFDMultiplier}
	if profiles[lab.BFDProfile] != want {
		t.Errorf("BFD profiles %+v, want %q: %+v", profiles, lab.BFDProfile, want)
	}
	noBFD := func(ps []lab.BFDPeer) error {
		if len(ps) != 0 {
			return fmt.Errorf("BFD sessions with no profile attached: %+v", ps)
		}
		return nil
	}
	if _, err := waitBFDPeers(r, noBFD); err != nil {
		t.Error(err)
	}

	n := theLab.Nodes[0]
	t.Cleanup(func() {
		if err := r.Neighbor(n.IPv4, "no bfd", "no password"); err != nil {
			t.Errorf("undoing BFD and password on %s: %v", n.IPv4, err)
		}
	})
	if err := r.Neighbor(n.IPv4, "bfd profile "+lab.BFDProfile, "password lab-secret"); err != nil {
		t.Fatal(err)
	}
	peer, err := waitBFDPeers(r, func(ps []lab.BFDPeer) error {
		if len(ps) != 1 || ps[0].Peer != mustAddr(n.IPv4) {
			return fmt.Errorf("BFD sessions %+v, want one with %s", ps, n.IPv4)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if peer[0].ReceiveInterval != lab.BFDInterval || peer[0].TransmitInterval != lab.BFDInterval ||
		peer[0].DetectMultiplier != lab.BFDMultiplier || peer[0].Status == "up" {
		t.Errorf("BFD session with %s: %+v (want the profile's timers, not up: the node runs no BFD)", n.IPv4, peer[0])
	}
	nbrs, err := r.Neighbors()
	if err != nil {
		t.Fatal(err)
	}
	if nb := nbrs[mustAddr(n.IPv4)]; nb == nil || !nb.Password || nb.BFDStatus == "" {
		t.Errorf("neighbour %s after setting BFD and a password: %+v", n.IPv4, nb)
	}

	if err := r.Neighbor(n.IPv4, "no bfd", "no password"); err != nil {
		t.Fatal(err)
	}
	if _, err := waitBFDPeers(r, noBFD); err != nil {
		t.Errorf("after taking BFD off %s: %v", n.IPv4, err)
	}
	if _, err := r.VTY("write memory"); err == nil {
		t.Error("VTY let a test save the router's configuration")
	}
}

// eventually calls f until it returns nil or timeout has passed, and returns
// its last error.
func eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitBFDPeers polls bfdd's sessions until ok accepts them (3 s at most).
func waitBFDPeers(r *lab.Router, ok func([]lab.BFDPeer) error) ([]lab.BFDPeer, error) {
	var ps []lab.BFDPeer
	err := eventually(3*time.Second, func() error {
		var err error
		if ps, err = r.BFDPeers(); err != nil {
			return err
		}
		return ok(ps)
	})
	return ps, err
}

// The lab leaves the host alone: while it runs, the root namespace's routes
// are what they were before it started (no route for the documentation
// ranges, where on these machines even the Go module proxy lives).
func TestLabLeavesHostRoutingAlone(t *testing.T) {
	if got := routes(); got != rootRoutes {
		t.Errorf("the root namespace's routes changed while the lab runs:\nbefore:\n%s\nnow:\n%s", rootRoutes, got)
	}
}
