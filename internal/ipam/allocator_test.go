package ipam

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func TestAllocateLowestFreeFirst(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", 0, "192.0.2.0/30", "2001:db8::/126"))
	var got []string
	for i := range 4 {
		got = append(got, mustAllocate(t, a, Service{Key: fmt.Sprintf("ns/s%d", i)}, "p", IPv4).String())
	}
	if want := "[192.0.2.0 192.0.2.1 192.0.2.2 192.0.2.3]"; fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
	_, err := a.Allocate(Service{Key: "ns/s9"}, "p", IPv4)
	wantErr(t, "full pool", err, `pool "p" has no free IPv4 address`, ReasonPoolExhausted)

	a.Release("ns/s1")
	if got := mustAllocate(t, a, Service{Key: "ns/s9"}, "p", IPv4); got != ip("192.0.2.1") {
		t.Errorf("after releasing .1 got %s", got)
	}
	if got := mustAllocate(t, a, Service{Key: "ns/s9"}, "p", IPv6); got != ip("2001:db8::") {
		t.Errorf("IPv6 got %s", got)
	}
	if got := a.Holding("ns/s9"); fmt.Sprint(got) != "[192.0.2.1 2001:db8::]" {
		t.Errorf("Holding = %v", got)
	}
	// Idempotent: a service that holds an IP of the family from the pool keeps it.
	if got := mustAllocate(t, a, Service{Key: "ns/s9"}, "p", IPv4); got != ip("192.0.2.1") {
		t.Errorf("second Allocate got %s", got)
	}
}

func TestAllocateSkipsRangesInOrder(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", 0, "198.51.100.7", "192.0.2.1-192.0.2.2"))
	var got []netip.Addr
	for i := range 3 {
		got = append(got, mustAllocate(t, a, Service{Key: fmt.Sprintf("ns/s%d", i)}, "p", IPv4))
	}
	if fmt.Sprint(got) != "[192.0.2.1 192.0.2.2 198.51.100.7]" {
		t.Errorf("got %v", got)
	}
}

func TestAllocateErrors(t *testing.T) {
	v4only := mkPool(t, "v4", 0, "192.0.2.0/24")
	older := mkPool(t, "older", 0, "198.51.100.0/24")
	shadowed := mkPool(t, "shadowed", 1, "198.51.100.0/25", "2001:db8::/64")
	buggy := mkPool(t, "buggy", 2, "203.0.113.0", "203.0.113.255")
	buggy.AvoidBuggyIPs = true
	pinned := mkPool(t, "pinned", 3, "203.0.113.10")
	pinned.Namespaces = []string{"prod", "stage"}
	a := newAlloc(t, v4only, older, shadowed, buggy, pinned)
	tests := []struct {
		svc    Service
		pool   string
		fam    Family
		want   string
		reason Reason
	}{
		{Service{Key: "ns/a"}, "nope", IPv4, `pool "nope" does not exist`, ReasonNoSuchPool},
		{Service{Key: "ns/a"}, "v4", IPv6, `pool "v4" has no IPv6 addresses`, ReasonNoFamily},
		{Service{Key: "ns/a"}, "shadowed", IPv4, `pool "shadowed" has no IPv4 address it may allocate: its IPv4 ranges overlap older pools or hold only .0/.255 addresses it avoids`, ReasonNotAllowed},
		{Service{Key: "ns/a"}, "buggy", IPv4, `pool "buggy" has no IPv4 address it may allocate: its IPv4 ranges overlap older pools or hold only .0/.255 addresses it avoids`, ReasonNotAllowed},
		{Service{Key: "ns/a"}, "pinned", IPv4, `pool "pinned" is reserved for namespaces "prod", "stage", and namespace "ns" is not one of them`, ReasonNotAllowed},
		{Service{Key: "bad"}, "v4", IPv4, `service key "bad" is not of the form namespace/name`, ReasonInvalid},
		{Service{Key: "ns/a", SharingKey: "cluster:"}, "v4", IPv4, `sharing key "cluster:" of ns/a names no key after "cluster:"`, ReasonInvalid},
		{Service{Key: "ns/a"}, "v4", Family(5), `unknown address family Family(5)`, ReasonInvalid},
		{Service{Key: "prod/a"}, "pinned", IPv4, "", ""},
		{Service{Key: "ns/a"}, "shadowed", IPv6, "", ""},
	}
	for _, tt := range tests {
		_, err := a.Allocate(tt.svc, tt.pool, tt.fam)
		wantErr(t, fmt.Sprintf("Allocate(%s, %s, %v)", tt.svc.Key, tt.pool, tt.fam), err, tt.want, tt.reason)
	}
}

func TestAssignErrors(t *testing.T) {
	older := mkPool(t, "older", 0, "192.0.2.0/28")
	newer := mkPool(t, "newer", 1, "192.0.2.0/24")
	buggy := mkPool(t, "buggy", 0, "198.51.100.0/24")
	buggy.AvoidBuggyIPs = true
	pinned := mkPool(t, "pinned", 0, "203.0.113.0/24")
	pinned.ServiceSelector = MatchLabels{"tier": "edge"}
	a := newAlloc(t, older, newer, buggy, pinned)
	if _, err := a.Assign(Service{Key: "ns/holder"}, ip("192.0.2.100"), ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		svc    Service
		ip     string
		pool   string
		want   string
		reason Reason
	}{
		{Service{Key: "ns/a"}, "10.0.0.1", "", `10.0.0.1 is not in any pool`, ReasonNotInPool},
		{Service{Key: "ns/a"}, "2001:db8::1", "", `2001:db8::1 is not in any pool`, ReasonNotInPool},
		{Service{Key: "ns/a"}, "198.51.100.1", "older", `198.51.100.1 is not in pool "older"`, ReasonNotInPool},
		{Service{Key: "ns/a"}, "192.0.2.1", "nope", `pool "nope" does not exist`, ReasonNoSuchPool},
		{Service{Key: "ns/a"}, "192.0.2.1", "newer", `192.0.2.1 is in pool "newer", but the older pool "older" overlaps it there and keeps it; request it from pool "older"`, ReasonNotAllowed},
		{Service{Key: "ns/a"}, "198.51.100.255", "", `198.51.100.255 ends in .255 and pool "buggy" avoids buggy IPs (.0 and .255)`, ReasonNotAllowed},
		{Service{Key: "ns/a"}, "198.51.100.0", "buggy", `198.51.100.0 ends in .0 and pool "buggy" avoids buggy IPs (.0 and .255)`, ReasonNotAllowed},
		{Service{Key: "ns/a"}, "203.0.113.5", "", `pool "pinned" is reserved for services matching its service selector, and ns/a does not match`, ReasonNotAllowed},
		{Service{Key: "ns/a"}, "192.0.2.100", "", `192.0.2.100 is already used by ns/holder; to share it, give both services the same sharing key`, ReasonAddressInUse},
		{Service{Key: "ns/holder"}, "192.0.2.101", "", `ns/holder already holds IPv4 address 192.0.2.100; release it before assigning 192.0.2.101`, ReasonFamilyTaken},
		{Service{Key: "ns/a"}, "fe80::1%eth0", "", `fe80::1%eth0 has an IPv6 zone; load-balancer IPs cannot have zones`, ReasonInvalid},
		{Service{Key: "ns/a"}, "::ffff:192.0.2.1", "", `::ffff:192.0.2.1 is an IPv4-mapped IPv6 address; request 192.0.2.1 instead`, ReasonInvalid},
		{Service{Key: "ns/"}, "192.0.2.1", "", `service key "ns/" is not of the form namespace/name`, ReasonInvalid},
		// Allowed: the owning pool by name, or no name; pinning satisfied.
		{Service{Key: "ns/a"}, "192.0.2.1", "older", "", ""},
		{Service{Key: "ns/b"}, "192.0.2.200", "newer", "", ""},
		{Service{Key: "ns/c", Labels: map[string]string{"tier": "edge"}}, "203.0.113.5", "", "", ""},
		{Service{Key: "ns/d"}, "198.51.100.1", "buggy", "", ""},
	}
	for _, tt := range tests {
		_, err := a.Assign(tt.svc, netip.MustParseAddr(tt.ip), tt.pool)
		wantErr(t, fmt.Sprintf("Assign(%s, %s, %q)", tt.svc.Key, tt.ip, tt.pool), err, tt.want, tt.reason)
	}
	_, err := a.Assign(Service{Key: "ns/a"}, netip.Addr{}, "")
	wantErr(t, "zero IP", err, "no IP given for ns/a", ReasonInvalid)
	if p, err := a.Assign(Service{Key: "ns/a"}, ip("192.0.2.1"), ""); err != nil || p != "older" {
		t.Errorf("re-Assign = %q, %v; want older", p, err)
	}
}

func TestSharingRules(t *testing.T) {
	const addr = "192.0.2.7"
	tests := []struct {
		name   string
		holder Service
		svc    Service
		want   string
		reason Reason
	}{
		{"no keys", Service{Key: "ns/svc"}, Service{Key: "ns/new"},
			`192.0.2.7 is already used by ns/svc; to share it, give both services the same sharing key`, ReasonAddressInUse},
		{"requester has no key", Service{Key: "ns/svc", SharingKey: "a"}, Service{Key: "ns/new"},
			`192.0.2.7 is used by ns/svc, which shares it only with sharing key "a", and this service has no sharing key`, ReasonAddressInUse},
		{"holder has no key", Service{Key: "ns/svc"}, Service{Key: "ns/new", SharingKey: "a"},
			`192.0.2.7 is used by ns/svc, which has no sharing key, so it cannot be shared`, ReasonAddressInUse},
		{"keys differ", Service{Key: "ns/svc", SharingKey: "a"}, Service{Key: "ns/new", SharingKey: "b"},
			`192.0.2.7 is used by ns/svc and the sharing keys differ ("a" vs "b")`, ReasonAddressInUse},
		{"same key, other namespace", Service{Key: "other/svc", SharingKey: "a"}, Service{Key: "ns/new", SharingKey: "a"},
			`192.0.2.7 is used by other/svc in another namespace; sharing key "a" applies within one namespace, use "cluster:a" on both services to share across namespaces`, ReasonAddressInUse},
		{"cluster key vs plain key", Service{Key: "ns/svc", SharingKey: "cluster:a"}, Service{Key: "ns/new", SharingKey: "a"},
			`192.0.2.7 is used by ns/svc and the sharing keys differ ("cluster:a" vs "a")`, ReasonAddressInUse},
		{"cluster key across namespaces", Service{Key: "other/svc", SharingKey: "cluster:a", Ports: tcp(80)}, Service{Key: "ns/new", SharingKey: "cluster:a", Ports: tcp(443)}, "", ""},
		{"same key, same namespace, disjoint ports", Service{Key: "ns/svc", SharingKey: "a", Ports: tcp(80)}, Service{Key: "ns/new", SharingKey: "a", Ports: []Port{{"UDP", 80}}}, "", ""},
		{"port clash", Service{Key: "ns/other", SharingKey: "a", Ports: tcp(80, 443)}, Service{Key: "ns/new", SharingKey: "a", Ports: tcp(80, 8080)},
			`port TCP/80 on 192.0.2.7 is already used by ns/other`, ReasonPortConflict},
		{"ports clash", Service{Key: "ns/other", SharingKey: "a", Ports: []Port{{"UDP", 53}, {"TCP", 80}}}, Service{Key: "ns/new", SharingKey: "a", Ports: []Port{{"TCP", 80}, {"UDP", 53}}},
			`ports TCP/80, UDP/53 on 192.0.2.7 are already used by ns/other`, ReasonPortConflict},
		{"local vs cluster", Service{Key: "ns/svc", SharingKey: "a", Local: true, BackendKey: "app=web"}, Service{Key: "ns/new", SharingKey: "a"},
			`192.0.2.7 is used by ns/svc with externalTrafficPolicy Local and this service uses Cluster; services sharing an IP must both use Cluster, or both use Local and select the same pods`, ReasonAddressInUse},
		{"local, different pods", Service{Key: "ns/svc", SharingKey: "a", Local: true, BackendKey: "app=web"}, Service{Key: "ns/new", SharingKey: "a", Local: true, BackendKey: "app=api"},
			`192.0.2.7 is used by ns/svc, which selects different pods (backend keys "app=web" vs "app=api"); services sharing an IP with externalTrafficPolicy Local must select the same pods`, ReasonAddressInUse},
		{"local, same pods", Service{Key: "ns/svc", SharingKey: "a", Local: true, BackendKey: "app=web", Ports: tcp(80)}, Service{Key: "ns/new", SharingKey: "a", Local: true, BackendKey: "app=web", Ports: tcp(443)}, "", ""},
		{"cluster, backend keys ignored", Service{Key: "ns/svc", SharingKey: "a", BackendKey: "x"}, Service{Key: "ns/new", SharingKey: "a", BackendKey: "y"}, "", ""},
	}
	for _, tt := range tests {
		a := newAlloc(t, mkPool(t, "p", 0, "192.0.2.0/24"))
		if _, err := a.Assign(tt.holder, ip(addr), ""); err != nil {
			t.Fatal(err)
		}
		_, err := a.Assign(tt.svc, ip(addr), "")
		wantErr(t, tt.name, err, tt.want, tt.reason)
		c, _ := a.Counts("p")
		if c.IPv4.Assigned != 1 {
			t.Errorf("%s: a shared IP must count once, Assigned = %d", tt.name, c.IPv4.Assigned)
		}
	}
}

func TestAllocateJoinsSharedIP(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", 0, "192.0.2.0/24"))
	mustAllocate(t, a, Service{Key: "ns/first"}, "p", IPv4)
	web := mustAllocate(t, a, Service{Key: "ns/web", SharingKey: "k", Ports: tcp(80)}, "p", IPv4)
	dns := mustAllocate(t, a, Service{Key: "ns/dns", SharingKey: "k", Ports: []Port{{"UDP", 53}}}, "p", IPv4)
	clash := mustAllocate(t, a, Service{Key: "ns/web2", SharingKey: "k", Ports: tcp(80)}, "p", IPv4)
	other := mustAllocate(t, a, Service{Key: "other/web", SharingKey: "k", Ports: tcp(443)}, "p", IPv4)
	if web != ip("192.0.2.1") || dns != web || clash != ip("192.0.2.2") || other != ip("192.0.2.3") {
		t.Errorf("web %s dns %s clash %s other-namespace %s", web, dns, clash, other)
	}
	// A later service with the key joins the lowest compatible shared IP.
	if got := mustAllocate(t, a, Service{Key: "ns/ssh", SharingKey: "k", Ports: tcp(22)}, "p", IPv4); got != web {
		t.Errorf("ssh got %s, want %s", got, web)
	}
	if h := a.Holders(web); fmt.Sprint(h) != "[ns/dns ns/ssh ns/web]" {
		t.Errorf("Holders = %v", h)
	}
	c, _ := a.Counts("p")
	if c.IPv4.Assigned != 4 || c.IPv4.Available.Int64() != 252 {
		t.Errorf("counts %+v", c.IPv4)
	}
	// Releasing one sharer keeps the IP for the others.
	a.Release("ns/web")
	a.Release("ns/dns")
	if h := a.Holders(web); fmt.Sprint(h) != "[ns/ssh]" {
		t.Errorf("Holders after release = %v", h)
	}
	a.Release("ns/ssh")
	if h := a.Holders(web); h != nil {
		t.Errorf("Holders after last release = %v", h)
	}
	if got := mustAllocate(t, a, Service{Key: "ns/x"}, "p", IPv4); got != web {
		t.Errorf("freed shared IP not reused: %s", got)
	}
}

func TestReassignUpdatesSharingRules(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", 0, "192.0.2.0/24", "2001:db8::/64"))
	web := Service{Key: "ns/web", SharingKey: "k", Ports: tcp(80)}
	api := Service{Key: "ns/api", SharingKey: "k", Ports: tcp(443)}
	for _, s := range []Service{web, api} {
		if _, err := a.Assign(s, ip("192.0.2.7"), ""); err != nil {
			t.Fatal(err)
		}
	}
	mustAllocate(t, a, web, "p", IPv6)
	// web now wants 443 too: refused, on either of its IPs, and nothing changes.
	web.Ports = tcp(80, 443)
	_, err := a.Allocate(web, "p", IPv6)
	wantErr(t, "port edit", err, `port TCP/443 on 192.0.2.7 is already used by ns/api`, ReasonPortConflict)
	_, err = a.Assign(web, ip("192.0.2.7"), "")
	wantErr(t, "port edit", err, `port TCP/443 on 192.0.2.7 is already used by ns/api`, ReasonPortConflict)
	// Dropping the key is refused while sharing, accepted once alone.
	web.Ports, web.SharingKey = tcp(80), ""
	_, err = a.Assign(web, ip("192.0.2.7"), "")
	wantErr(t, "key removed", err, `192.0.2.7 is used by ns/api, which shares it only with sharing key "k", and this service has no sharing key`, ReasonAddressInUse)
	a.Release("ns/api")
	if _, err := a.Assign(web, ip("192.0.2.7"), ""); err != nil {
		t.Fatal(err)
	}
	// With the key gone, a new "k" service no longer joins web's IP.
	if got := mustAllocate(t, a, Service{Key: "ns/new", SharingKey: "k"}, "p", IPv4); got == ip("192.0.2.7") {
		t.Errorf("joined an IP whose holder dropped its key")
	}
}

func TestReleaseIP(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", 0, "192.0.2.0/24", "2001:db8::/64"))
	s := Service{Key: "ns/s"}
	v4, v6 := mustAllocate(t, a, s, "p", IPv4), mustAllocate(t, a, s, "p", IPv6)
	if !a.ReleaseIP("ns/s", v6) || a.ReleaseIP("ns/s", v6) || a.ReleaseIP("ns/none", v4) {
		t.Error("ReleaseIP results wrong")
	}
	if got := a.Holding("ns/s"); fmt.Sprint(got) != "[192.0.2.0]" {
		t.Errorf("Holding = %v", got)
	}
	if got := a.Release("ns/s"); fmt.Sprint(got) != "[192.0.2.0]" {
		t.Errorf("Release = %v", got)
	}
	if a.Release("ns/s") != nil || a.Holding("ns/s") != nil {
		t.Error("service still known after Release")
	}
}

func TestCounts(t *testing.T) {
	buggy := mkPool(t, "buggy", 0, "192.0.2.0/23", "2001:db8::/64")
	buggy.AvoidBuggyIPs = true
	a := newAlloc(t, buggy, mkPool(t, "huge", 1, "2001:db8:1::/48"))
	for i := range 3 {
		mustAllocate(t, a, Service{Key: fmt.Sprintf("ns/s%d", i)}, "buggy", IPv4)
		mustAllocate(t, a, Service{Key: fmt.Sprintf("ns/s%d", i)}, "buggy", IPv6)
	}
	c, ok := a.Counts("buggy")
	if !ok {
		t.Fatal("no counts")
	}
	if c.IPv4.Total.Int64() != 508 || c.IPv4.Assigned != 3 || c.IPv4.AvailableInt64() != 505 {
		t.Errorf("IPv4 %v %d %v", c.IPv4.Total, c.IPv4.Assigned, c.IPv4.Available)
	}
	if c.IPv6.Total.String() != "18446744073709551616" || c.IPv6.TotalInt64() != math.MaxInt64 ||
		c.IPv6.Available.String() != "18446744073709551613" || c.IPv6.AvailableInt64() != math.MaxInt64 {
		t.Errorf("IPv6 %v %d %v", c.IPv6.Total, c.IPv6.Assigned, c.IPv6.Available)
	}
	if c.Family(IPv6).Assigned != 3 {
		t.Errorf("Family(IPv6) = %+v", c.Family(IPv6))
	}
	h, _ := a.Counts("huge")
	if h.IPv6.Total.String() != "1208925819614629174706176" || h.IPv4.TotalInt64() != 0 || h.IPv4.Available.Sign() != 0 {
		t.Errorf("huge: %+v", h)
	}
	if _, ok := a.Counts("nope"); ok {
		t.Error("counts for a missing pool")
	}
}

func TestBuggyIPsSkippedAcrossBlocks(t *testing.T) {
	p := mkPool(t, "p", 0, "192.0.2.253-192.0.3.2", "0.0.0.0-0.0.0.1", "255.255.255.254-255.255.255.255")
	p.AvoidBuggyIPs = true
	a := newAlloc(t, p)
	var got []string
	for i := 0; ; i++ {
		x, err := a.Allocate(Service{Key: fmt.Sprintf("ns/s%d", i)}, "p", IPv4)
		if err != nil {
			wantErr(t, "end", err, `pool "p" has no free IPv4 address`, ReasonPoolExhausted)
			break
		}
		got = append(got, x.String())
	}
	if want := "[0.0.0.1 192.0.2.253 192.0.2.254 192.0.3.1 192.0.3.2 255.255.255.254]"; fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

func TestOverlappingPools(t *testing.T) {
	// "b" is older than "a" by timestamp; "c" ties with "b" and loses on name.
	a := newAlloc(t,
		mkPool(t, "a", 5, "192.0.2.0/24"),
		mkPool(t, "b", 1, "192.0.2.0/28"),
		mkPool(t, "c", 1, "192.0.2.8-192.0.2.20"))
	want := []Overlap{
		{"b", "a", Range{ip("192.0.2.0"), ip("192.0.2.15")}},
		{"b", "c", Range{ip("192.0.2.8"), ip("192.0.2.15")}},
		{"c", "a", Range{ip("192.0.2.8"), ip("192.0.2.20")}},
	}
	res, err := a.SetPools([]Pool{mkPool(t, "a", 5, "192.0.2.0/24"), mkPool(t, "b", 1, "192.0.2.0/28"), mkPool(t, "c", 1, "192.0.2.8-192.0.2.20")})
	if err != nil || !slices.Equal(res.Overlaps, want) {
		t.Fatalf("overlaps = %v, %v; want %v", res.Overlaps, err, want)
	}
	if got := a.Overlaps("c"); len(got) != 2 {
		t.Errorf("c overlaps = %v", got)
	}
	if got := want[0].Describe("a"); got != `overlaps pool "b" on 192.0.2.0/28; "b" is older and keeps those addresses, so this pool does not allocate them` {
		t.Errorf("Describe(newer) = %s", got)
	}
	if got := want[0].Describe("b"); got != `overlaps pool "a" on 192.0.2.0/28; this pool is older and keeps those addresses` {
		t.Errorf("Describe(older) = %s", got)
	}
	if got := want[2].String(); got != `pools "c" and "a" overlap on 192.0.2.8-192.0.2.20; the older pool "c" keeps those addresses` {
		t.Errorf("String = %s", got)
	}
	if got := mustAllocate(t, a, Service{Key: "ns/x"}, "a", IPv4); got != ip("192.0.2.21") {
		t.Errorf("newest pool allocated %s from the overlap", got)
	}
	if got := mustAllocate(t, a, Service{Key: "ns/y"}, "c", IPv4); got != ip("192.0.2.16") {
		t.Errorf("c allocated %s", got)
	}
	for addr, pool := range map[string]string{"192.0.2.3": "b", "192.0.2.15": "b", "192.0.2.16": "c", "192.0.2.21": "a", "192.0.3.0": ""} {
		if got, _ := a.PoolOf(ip(addr)); got != pool {
			t.Errorf("PoolOf(%s) = %q, want %q", addr, got, pool)
		}
	}
	for pool, total := range map[string]int64{"a": 256 - 21, "b": 16, "c": 5} {
		if c, _ := a.Counts(pool); c.IPv4.TotalInt64() != total {
			t.Errorf("%s total %d, want %d", pool, c.IPv4.TotalInt64(), total)
		}
	}
}

func TestSetPoolsKeepsAssignments(t *testing.T) {
	a := newAlloc(t, mkPool(t, "a", 0, "192.0.2.0/24"), mkPool(t, "gone", 0, "198.51.100.0/24"))
	for _, x := range []struct{ svc, ip string }{{"ns/one", "192.0.2.10"}, {"ns/two", "192.0.2.200"}, {"ns/three", "198.51.100.1"}, {"ns/four", "192.0.2.255"}} {
		if _, err := a.Assign(Service{Key: x.svc, SharingKey: "k"}, ip(x.ip), ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Assign(Service{Key: "ns/two-b", SharingKey: "k"}, ip("192.0.2.200"), ""); err != nil {
		t.Fatal(err)
	}

	// Shrink "a" to a /25 with avoidBuggyIPs, drop "gone", add an older pool over .10.
	shrunk := mkPool(t, "a", 0, "192.0.2.0/25", "192.0.2.255")
	shrunk.AvoidBuggyIPs = true
	res, err := a.SetPools([]Pool{shrunk, mkPool(t, "early", -1, "192.0.2.8/29")})
	if err != nil {
		t.Fatal(err)
	}
	wantStranded := []Stranded{
		{"ns/four", ip("192.0.2.255"), `192.0.2.255 ends in .255 and pool "a" avoids buggy IPs (.0 and .255)`},
		{"ns/three", ip("198.51.100.1"), `198.51.100.1 is no longer in any pool: pool "gone" was removed`},
		{"ns/two", ip("192.0.2.200"), `192.0.2.200 is no longer in any pool: pool "a" no longer contains it`},
		{"ns/two-b", ip("192.0.2.200"), `192.0.2.200 is no longer in any pool: pool "a" no longer contains it`},
	}
	if !slices.Equal(res.Stranded, wantStranded) {
		t.Errorf("Stranded:\n got %v\nwant %v", res.Stranded, wantStranded)
	}
	if want := []Moved{{"ns/one", ip("192.0.2.10"), "a", "early"}}; !slices.Equal(res.Moved, want) {
		t.Errorf("Moved = %v", res.Moved)
	}
	// Stranded IPs are still held: nobody else gets them, the services still list them.
	if got := a.Holding("ns/three"); fmt.Sprint(got) != "[198.51.100.1]" {
		t.Errorf("stranded assignment dropped: %v", got)
	}
	if got := a.Stranded(); len(got) != 4 || got[1].Reason != `198.51.100.1 is not in any pool` {
		t.Errorf("Stranded() = %v", got)
	}
	// The controller moves ns/three: release, then allocate elsewhere.
	a.Release("ns/three")
	if got := a.Stranded(); len(got) != 3 {
		t.Errorf("Stranded() after release = %v", got)
	}
	// Restoring the pool heals the rest.
	res, err = a.SetPools([]Pool{mkPool(t, "a", 0, "192.0.2.0/24"), mkPool(t, "early", -1, "192.0.2.8/29")})
	if err != nil || len(res.Stranded) != 0 || len(a.Stranded()) != 0 {
		t.Errorf("after restore: %v %v %v", res.Stranded, err, a.Stranded())
	}
	if c, _ := a.Counts("a"); c.IPv4.Assigned != 2 { // .200 (shared, once) and .255
		t.Errorf("a assigned %d", c.IPv4.Assigned)
	}
}

func TestSetPoolsRefusesBadInputAndKeepsState(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", 0, "192.0.2.0/24"))
	mustAllocate(t, a, Service{Key: "ns/s"}, "p", IPv4)
	bad := [][]Pool{
		{mkPool(t, "p", 0, "192.0.2.0/24"), mkPool(t, "p", 1, "198.51.100.0/24")},
		{{Name: ""}},
		{{Name: "r", Ranges: []Range{{ip("192.0.2.9"), ip("192.0.2.1")}}}},
		{{Name: "r", Ranges: []Range{{ip("192.0.2.1"), ip("2001:db8::1")}}}},
		{{Name: "r", Ranges: []Range{{}}}},
	}
	wantMsg := []string{`two pools are named "p"`, `a pool has no name`, `pool "r" has a malformed range 192.0.2.9-192.0.2.1`,
		`pool "r" has a malformed range 192.0.2.1-2001:db8::1`, `pool "r" has a malformed range invalid IP-invalid IP`}
	for i, ps := range bad {
		_, err := a.SetPools(ps)
		wantErr(t, "SetPools", err, wantMsg[i], ReasonInvalid)
	}
	if got := a.Pools(); fmt.Sprint(got) != "[p]" {
		t.Errorf("pools changed: %v", got)
	}
	if c, _ := a.Counts("p"); c.IPv4.Assigned != 1 {
		t.Errorf("assignment lost: %+v", c.IPv4)
	}
}

func TestPoolsSortedByName(t *testing.T) {
	a := newAlloc(t, mkPool(t, "zeta", 0), mkPool(t, "alpha", 2), mkPool(t, "mid", 1))
	if got := a.Pools(); fmt.Sprint(got) != "[alpha mid zeta]" {
		t.Errorf("Pools = %v", got)
	}
}

// TestRandomOperationsKeepInvariants runs random assign/allocate/release
// operations and pool edits, and checks after each that the counts match a
// recount from the assignments and that no IP is held by incompatible
// services.
func TestRandomOperationsKeepInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	poolSets := [][]Pool{
		{mkPool(t, "a", 0, "192.0.2.0/26", "2001:db8::/120"), mkPool(t, "b", 1, "192.0.2.32/27", "198.51.100.250-198.51.101.5")},
		{mkPool(t, "a", 0, "192.0.2.0/27"), mkPool(t, "b", 1, "198.51.100.0/23", "2001:db8::80/121")},
	}
	poolSets[1][1].AvoidBuggyIPs = true
	a := newAlloc(t, poolSets[0]...)
	keys := []string{"", "k", "cluster:k"}
	for i := range 3000 {
		svc := Service{
			Key:        fmt.Sprintf("ns%d/s%d", rng.IntN(2), rng.IntN(60)),
			SharingKey: keys[rng.IntN(3)],
			Ports:      tcp(uint16(rng.IntN(4))),
		}
		switch op := rng.IntN(10); {
		case op < 5:
			_, _ = a.Allocate(svc, []string{"a", "b"}[rng.IntN(2)], []Family{IPv4, IPv6}[rng.IntN(2)])
		case op < 7:
			_, _ = a.Assign(svc, u128ToAddr(u128{0, 0xc0000200 + uint64(rng.IntN(64))}, IPv4), "")
		case op < 9:
			a.Release(svc.Key)
		default:
			if _, err := a.SetPools(poolSets[rng.IntN(2)]); err != nil {
				t.Fatal(err)
			}
		}
		checkInvariants(t, a, i)
	}
}

func checkInvariants(t *testing.T, a *Allocator, step int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	perPool := map[string][2]int64{}
	for addr, e := range a.ips {
		if len(e.holders) == 0 {
			t.Fatalf("step %d: %s has no holders", step, addr)
		}
		for i, h := range e.holders {
			if !slices.Contains(h.ips, addr) || a.svcs[h.svc.Key] != h {
				t.Fatalf("step %d: %s holder %s inconsistent", step, addr, h.svc.Key)
			}
			for _, o := range e.holders[i+1:] {
				if canShare(addr, &h.svc, &o.svc) != nil {
					t.Fatalf("step %d: %s shared by incompatible %s and %s", step, addr, h.svc.Key, o.svc.Key)
				}
			}
		}
		g, slot, ok := a.locate(addr)
		if ok != (e.seg != nil) || (ok && g != e.seg) {
			t.Fatalf("step %d: %s attributed to wrong segment", step, addr)
		}
		if ok {
			if !g.pool.used[fi(FamilyOf(addr))].has(slot) {
				t.Fatalf("step %d: %s missing from run set", step, addr)
			}
			c := perPool[g.pool.Name]
			c[fi(FamilyOf(addr))]++
			perPool[g.pool.Name] = c
		}
	}
	for _, ps := range a.sorted {
		c := ps.counts()
		if c.IPv4.Assigned != perPool[ps.Name][0] || c.IPv6.Assigned != perPool[ps.Name][1] {
			t.Fatalf("step %d: pool %s counts %d/%d, recount %v", step, ps.Name, c.IPv4.Assigned, c.IPv6.Assigned, perPool[ps.Name])
		}
	}
	for k, se := range a.svcs {
		if len(se.ips) == 0 || se.svc.Key != k {
			t.Fatalf("step %d: service entry %s holds nothing", step, k)
		}
		for _, addr := range se.ips {
			if a.ips[addr] == nil {
				t.Fatalf("step %d: %s holds unknown %s", step, k, addr)
			}
		}
	}
}

func TestAllocateAny(t *testing.T) {
	a := newAlloc(t, mkPool(t, "full", 0, "192.0.2.1"), mkPool(t, "v6", 0, "2001:db8::/64"), mkPool(t, "free", 0, "198.51.100.0/24"))
	mustAllocate(t, a, Service{Key: "ns/first"}, "full", IPv4)
	got, pool, err := a.AllocateAny(Service{Key: "ns/s"}, []string{"full", "v6", "free"}, IPv4)
	if err != nil || got != ip("198.51.100.0") || pool != "free" {
		t.Errorf("AllocateAny = %s, %s, %v", got, pool, err)
	}
	_, _, err = a.AllocateAny(Service{Key: "ns/t"}, []string{"full", "v6"}, IPv4)
	wantErr(t, "none free", err, `no pool has a free IPv4 address for ns/t: pool "full" has no free IPv4 address; pool "v6" has no IPv4 addresses`, ReasonPoolExhausted)
	_, _, err = a.AllocateAny(Service{Key: "ns/t"}, []string{"v6"}, IPv4)
	wantErr(t, "one pool", err, `pool "v6" has no IPv4 addresses`, ReasonNoFamily)
	_, _, err = a.AllocateAny(Service{Key: "ns/t"}, nil, IPv4)
	wantErr(t, "no pools", err, `no address pool is available to ns/t`, ReasonNotAllowed)
}
