package ipam

import (
	"net/netip"
	"slices"
	"testing"
)

func TestReplaceIPKeepsOldOnFailure(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", 0, "192.0.2.0/29"))
	svcA := Service{Key: "ns/a"}
	svcB := Service{Key: "ns/b"}
	ipA, err := a.Allocate(svcA, "p", IPv4)
	if err != nil {
		t.Fatal(err)
	}
	ipB, err := a.Allocate(svcB, "p", IPv4)
	if err != nil {
		t.Fatal(err)
	}
	// b asks for a's IP without a sharing key: refused, and b keeps its own.
	if _, err := a.ReplaceIP(svcB, ipB, ipA, ""); ReasonOf(err) != ReasonAddressInUse {
		t.Fatalf("ReplaceIP onto a's IP: got %v, want AddressInUse", err)
	}
	if got := a.Holding("ns/b"); !slices.Equal(got, []netip.Addr{ipB}) {
		t.Fatalf("b holds %v after a failed replace, want [%v]", got, ipB)
	}
	// The old IP is still taken: a third service does not get it.
	ipC, err := a.Allocate(Service{Key: "ns/c"}, "p", IPv4)
	if err != nil || ipC == ipB || ipC == ipA {
		t.Fatalf("c got %v (%v), must differ from %v and %v", ipC, err, ipA, ipB)
	}
	// A good replace moves b and frees the old IP.
	want := netip.MustParseAddr("192.0.2.6")
	if _, err := a.ReplaceIP(svcB, ipB, want, "p"); err != nil {
		t.Fatal(err)
	}
	if got := a.Holders(ipB); len(got) != 0 {
		t.Fatalf("old IP %v still held by %v", ipB, got)
	}
	c, _ := a.Counts("p")
	if c.IPv4.Assigned != 3 {
		t.Fatalf("assigned = %d, want 3", c.IPv4.Assigned)
	}
}

func TestReallocateIPStranded(t *testing.T) {
	a := newAlloc(t, mkPool(t, "old", 0, "192.0.2.0/30"))
	svc := Service{Key: "ns/a"}
	ip, err := a.Allocate(svc, "old", IPv4)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.SetPools([]Pool{mkPool(t, "new", 0, "198.51.100.0/32")})
	if err != nil || len(res.Stranded) != 1 {
		t.Fatalf("SetPools: %v, stranded %v", err, res.Stranded)
	}
	// Fill the new pool so reallocation fails: the stranded IP stays held.
	if _, err := a.Allocate(Service{Key: "ns/other"}, "new", IPv4); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.ReallocateIP(svc, ip, []string{"new"}); ReasonOf(err) != ReasonPoolExhausted {
		t.Fatalf("ReallocateIP into a full pool: got %v, want PoolExhausted", err)
	}
	if got := a.Stranded(); len(got) != 1 || got[0].IP != ip {
		t.Fatalf("stranded after failed reallocation = %v, want %v kept", got, ip)
	}
	a.Release("ns/other")
	got, pool, err := a.ReallocateIP(svc, ip, []string{"new"})
	if err != nil || pool != "new" || got != netip.MustParseAddr("198.51.100.0") {
		t.Fatalf("ReallocateIP = %v %q %v", got, pool, err)
	}
	if len(a.Stranded()) != 0 {
		t.Fatalf("still stranded: %v", a.Stranded())
	}
}

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"192.0.2.0/24", []string{"192.0.2.0/24"}},
		{"192.0.2.7", []string{"192.0.2.7/32"}},
		{"192.0.2.10-192.0.2.20", []string{"192.0.2.10/31", "192.0.2.12/30", "192.0.2.16/30", "192.0.2.20/32"}},
		{"0.0.0.0-255.255.255.255", []string{"0.0.0.0/0"}},
		{"2001:db8::-2001:db8::2", []string{"2001:db8::/127", "2001:db8::2/128"}},
	} {
		r, err := ParseRange(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range r.Prefixes() {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.in, got, tc.want)
		}
	}
}
