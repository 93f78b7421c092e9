package ipam

import (
	"net/netip"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// mkPool returns an auto-assign pool created at epoch+age seconds.
func mkPool(t testing.TB, name string, age int, addrs ...string) Pool {
	t.Helper()
	rs, err := ParseRanges(addrs)
	if err != nil {
		t.Fatal(err)
	}
	return Pool{Name: name, Ranges: rs, AutoAssign: true, Created: epoch.Add(time.Duration(age) * time.Second)}
}

func newAlloc(t testing.TB, pools ...Pool) *Allocator {
	t.Helper()
	a := New()
	if _, err := a.SetPools(pools); err != nil {
		t.Fatal(err)
	}
	return a
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func tcp(ports ...uint16) []Port {
	var out []Port
	for _, p := range ports {
		out = append(out, Port{"TCP", p})
	}
	return out
}

func mustAllocate(t testing.TB, a *Allocator, svc Service, pool string, f Family) netip.Addr {
	t.Helper()
	got, err := a.Allocate(svc, pool, f)
	if err != nil {
		t.Fatalf("Allocate(%s, %s, %v): %v", svc.Key, pool, f, err)
	}
	return got
}

// wantErr checks an error's exact message and reason; want "" means no error.
func wantErr(t testing.TB, what string, err error, want string, reason Reason) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case want == "":
	case err == nil:
		t.Errorf("%s: no error, want %q", what, want)
	case err.Error() != want || ReasonOf(err) != reason:
		t.Errorf("%s:\n got %s (%s)\nwant %s (%s)", what, err, ReasonOf(err), want, reason)
	}
}
