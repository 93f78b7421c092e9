package e2etest

import (
	"testing"
	"time"

	"github.com/portico-lb/portico/e2etest/faults"
)

// TestLeaderKilledDuringBurst: two controller replicas elect a leader; the
// leader is killed (SIGKILL, so it keeps its Lease until it expires) while
// 1,000 Services are being created. The other replica takes over, no IP is
// ever held by two Services (watched in etcd's order, and listed at the
// end), and every Service gets an IP. The times are logged, not asserted
// (`make bench` prints them).
func TestLeaderKilledDuringBurst(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	r, err := faults.LeaderBurst(ctx, theLab, 1000, t.Logf)
	if r != nil {
		t.Logf("%+v", *r)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Duplicates {
		t.Errorf("duplicate IP: %s", d)
	}
	if r.Allocated != r.Services {
		t.Errorf("%d of %d Services have an IP", r.Allocated, r.Services)
	}
	if r.NewLeader == r.Killed {
		t.Errorf("the killed replica %s leads again", r.Killed)
	}
	t.Logf("kill -> new leader's Lease %s, -> its first allocation %s, -> all %d allocated %s (%d allocations in flight at the kill)",
		r.Takeover.Round(time.Millisecond), r.FirstAllocation.Round(time.Millisecond), r.Services,
		r.AllAllocated.Round(time.Millisecond), r.InFlight)
}
