package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
)

// fullPool returns an allocator with one pool of 100,000 IPv4 addresses of
// which 99,000, chosen at random (fixed seed), are held: 1,000 free holes
// scattered over the pool, the fragmented case.
func fullPool(tb testing.TB) *Allocator {
	a := newAlloc(tb, mkPool(tb, "p", 0, "10.0.0.0-10.1.134.159"))
	if c, _ := a.Counts("p"); c.IPv4.TotalInt64() != 100_000 {
		tb.Fatalf("pool size %v", c.IPv4.Total)
	}
	rng := rand.New(rand.NewPCG(42, 42))
	base := addrToU128(ip("10.0.0.0")).lo
	for i, off := range rng.Perm(100_000)[:99_000] {
		addr := u128ToAddr(u128{0, base + uint64(off)}, IPv4)
		if _, err := a.Assign(Service{Key: fmt.Sprintf("ns/s%d", i)}, addr, ""); err != nil {
			tb.Fatal(err)
		}
	}
	return a
}

// BenchmarkAllocateRelease100kFull: one op = allocate the lowest free
// address in a 100,000-address pool with 99,000 taken, then release it.
func BenchmarkAllocateRelease100kFull(b *testing.B) {
	benchAllocateRelease(b, fullPool(b), IPv4)
}

// BenchmarkAllocateReleaseIPv6Slash64: one op = allocate and release in an
// IPv6 /64 with 10,000 addresses already allocated.
func BenchmarkAllocateReleaseIPv6Slash64(b *testing.B) {
	a := newAlloc(b, mkPool(b, "p", 0, "2001:db8::/64"))
	for i := range 10_000 {
		mustAllocate(b, a, Service{Key: fmt.Sprintf("ns/s%d", i)}, "p", IPv6)
	}
	benchAllocateRelease(b, a, IPv6)
}

func benchAllocateRelease(b *testing.B, a *Allocator, fam Family) {
	svc := Service{Key: "bench/svc"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Allocate(svc, "p", fam); err != nil {
			b.Fatal(err)
		}
		a.Release(svc.Key)
	}
}

// TestFullPoolAllocatesTheHoles checks what the benchmark measures: the
// allocator finds every hole of the fragmented pool in ascending order.
func TestFullPoolAllocatesTheHoles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100,000-address pool")
	}
	a := fullPool(t)
	var prev netip.Addr
	for i := range 1000 {
		got := mustAllocate(t, a, Service{Key: fmt.Sprintf("new/s%d", i)}, "p", IPv4)
		if prev.IsValid() && got.Compare(prev) <= 0 {
			t.Fatalf("allocation %d: %s after %s", i, got, prev)
		}
		prev = got
	}
	_, err := a.Allocate(Service{Key: "new/last"}, "p", IPv4)
	wantErr(t, "full", err, `pool "p" has no free IPv4 address`, ReasonPoolExhausted)
}

// TestSlash64UsesNoPerAddressMemory checks that a /64 pool costs memory in
// proportion to its allocations, not its 2^64 addresses: by the internal
// structure (one segment, at most one run per allocation) and, loosely, by
// the heap.
func TestSlash64UsesNoPerAddressMemory(t *testing.T) {
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	a := newAlloc(t, mkPool(t, "p", 0, "2001:db8::/64"))
	afterPool := heap()
	rng := rand.New(rand.NewPCG(1, 64))
	for i := range 1000 {
		// Scattered addresses: the worst case, one run each.
		addr := u128ToAddr(u128{0x20010db800000000, rng.Uint64()}, IPv6)
		if _, err := a.Assign(Service{Key: fmt.Sprintf("ns/s%d", i)}, addr, ""); err != nil {
			t.Fatal(err)
		}
	}
	afterAlloc := heap()

	ps := a.pools["p"]
	if n := len(ps.segs[1]); n != 1 {
		t.Errorf("%d segments, want 1", n)
	}
	if r := ps.used[1].runs; r != 1000 {
		t.Errorf("%d runs for 1000 scattered allocations", r)
	}
	if c := len(ps.used[1].chunks); c > 1000/(chunkMax/2)+1 {
		t.Errorf("%d chunks for 1000 runs", c)
	}
	if c, _ := a.Counts("p"); c.IPv6.Assigned != 1000 {
		t.Errorf("assigned %d", c.IPv6.Assigned)
	}
	// Loose bounds: the pool itself is a few hundred bytes; an allocation
	// (service entry, IP entry, run) a few hundred bytes.
	poolBytes := int64(afterPool) - int64(before)
	perAlloc := (int64(afterAlloc) - int64(afterPool)) / 1000
	t.Logf("pool: %d bytes; per allocation: %d bytes", poolBytes, perAlloc)
	if poolBytes > 64<<10 {
		t.Errorf("building a /64 pool took %d bytes of heap", poolBytes)
	}
	if perAlloc > 2048 {
		t.Errorf("%d bytes of heap per allocation", perAlloc)
	}
	runtime.KeepAlive(a)
}
