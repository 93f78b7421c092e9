package e2etest

import (
	"testing"
	"time"

	"github.com/portico-lb/portico/e2etest/faults"
)

// TestSoakShort is the short form of the soak `make bench` runs for
// minutes: Services created and deleted continuously while one speaker is
// killed and restarted, a node's data link flaps, the controller is killed
// and restarted and the API server is stopped for 10 s, with the client
// asking who answers every Service IP twice a second. It asserts the
// outcomes (no duplicate IP, never two nodes answering one request, no
// answer from a stranger, every Service with an IP and answered by one node
// in the end, nothing leaked), not the times, which it logs.
func TestSoakShort(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	r, err := faults.Soak(ctx, theLab, faults.SoakOpts{
		Duration: 35 * time.Second, Live: 12, ChurnEvery: 300 * time.Millisecond,
		Down: 3 * time.Second, Gap: 3 * time.Second, APIOutage: 10 * time.Second,
		Grace: 2 * time.Second, Settle: 30 * time.Second, Progress: t.Logf,
	})
	if r != nil {
		for _, f := range faults.SoakFigures(r) {
			t.Log(f)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Duplicates {
		t.Errorf("duplicate IP: %s", d)
	}
	for _, d := range r.DoubleAnswers {
		t.Errorf("double answer: %s", d)
	}
	for _, d := range r.ForeignAnswers {
		t.Errorf("foreign answer: %s", d)
	}
	if len(r.WithoutIP) > 0 {
		t.Errorf("Services without an IP after the churn stopped: %v", r.WithoutIP)
	}
	if !r.AllAnswered {
		t.Errorf("not every Service was answered by exactly one node within %s after the faults stopped", 30*time.Second)
	}
	if !r.Leaks.None() {
		t.Errorf("leaked after the soak: %+v", r.Leaks)
	}
	if !r.LeaksAfterCleanup.None() {
		t.Errorf("leaked after deleting the soak's Services: %+v", r.LeaksAfterCleanup)
	}
}
