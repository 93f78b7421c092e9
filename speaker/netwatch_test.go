package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-lb/portico/internal/netnstest"
)

// TestNetWatcherIgnoresServiceAddresses: host addresses added to a
// loopback link (as kube-proxy's IPVS mode adds every Service IP to its
// dummy link kube-ipvs0; this kernel has no dummy links) are neither read
// nor a reason to read the links again; an address on a real link is
// noticed at once.
func TestNetWatcherIgnoresServiceAddresses(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, "netwatch")
	peer := netnstest.New(t, "netwatchpeer")
	netnstest.Veth(t, ns, "eth1", peer, "eth0")
	ns.Run(t, "ip", "link", "set", "eth1", "up")
	ns.Run(t, "ip", "link", "set", "lo", "up")

	var moves atomic.Int32
	w := &netWatcher{netns: ns.Do, onMove: func() { moves.Add(1) }, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	reads := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.reads
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitUntil("the first read", func() bool { return reads() >= 1 })
	before := reads()

	for i := range 200 {
		ns.Run(t, "ip", "addr", "add", fmt.Sprintf("203.0.113.%d/32", i+1), "dev", "lo")
	}
	ns.Run(t, "ip", "addr", "add", "2001:db8:3::1/128", "dev", "lo")
	// A marker on a real link: once it is read, every notification before
	// it has been handled.
	ns.Run(t, "ip", "addr", "add", "198.51.100.21/24", "dev", "eth1")
	waitUntil("the address on eth1", func() bool {
		st, _ := w.current()
		return slices.Contains(st.prefixes["eth1"], netip.MustParsePrefix("198.51.100.21/24"))
	})
	if got := reads() - before; got > 2 {
		t.Errorf("the links were read %d times for 201 host addresses on lo and one on eth1, want at most 2", got)
	}
	st, _ := w.current()
	if i := slices.IndexFunc(st.prefixes["lo"], func(p netip.Prefix) bool { return p.IsSingleIP() && p.Addr().IsGlobalUnicast() }); i >= 0 {
		t.Errorf("host address %s of lo was read, and %d addresses in all", st.prefixes["lo"][i], len(st.prefixes["lo"]))
	}
	if moves.Load() == 0 {
		t.Error("the new address on eth1 did not trigger a recompute")
	}

	// A subnet on a loopback link is not a Service IP: it is read.
	ns.Run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "lo")
	waitUntil("the subnet on lo", func() bool {
		st, _ := w.current()
		return slices.Contains(st.prefixes["lo"], netip.MustParsePrefix("192.0.2.1/24"))
	})
}
