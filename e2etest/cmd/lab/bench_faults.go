package main

import (
	"fmt"
	"time"

	"github.com/portico-lb/portico/e2etest/faults"
)

// The fault benchmarks (package e2etest/faults) print their figures as
// "BENCH name value unit" lines on stdout.
func printFigures(fs []faults.Figure) {
	for _, f := range fs {
		fmt.Println(f)
	}
}

// benchLeader: two controller replicas, the leader killed during a burst of
// $LEADER_SERVICES (default 1,000) Services: the time from the kill to the
// new leader's Lease, to its first allocation and to the last one.
func benchLeader(name string, nodes int) error {
	n, err := envInt("LEADER_SERVICES", 1000)
	if err != nil {
		return err
	}
	l, ctx, done, err := benchLab(name+"-leader", nodes, 10*time.Minute)
	if err != nil {
		return err
	}
	defer done()
	r, err := faults.LeaderBurst(ctx, l, n, func(f string, a ...any) { progress(f, a...) })
	if r != nil {
		printFigures(faults.BurstFigures(r))
		for _, d := range r.Duplicates {
			progress("duplicate IP: %s", d)
		}
	}
	if err != nil {
		return fmt.Errorf("leader burst: %w (logs: %s)", err, l.RunDir)
	}
	return nil
}

// benchSoak: Service churn for $SOAK_SECONDS (default 240) while speakers
// are killed, data links flap, the controller is restarted and the API
// server is stopped for 20 s (every other cycle).
func benchSoak(name string, nodes int) error {
	secs, err := envInt("SOAK_SECONDS", 240)
	if err != nil {
		return err
	}
	d := time.Duration(secs) * time.Second
	l, ctx, done, err := benchLab(name+"-soak", nodes, d+10*time.Minute)
	if err != nil {
		return err
	}
	defer done()
	r, err := faults.Soak(ctx, l, faults.SoakOpts{
		Duration: d, Live: 24, ChurnEvery: 250 * time.Millisecond,
		Down: 5 * time.Second, Gap: 5 * time.Second, APIOutage: 20 * time.Second,
		Grace: 2 * time.Second, Settle: time.Minute,
		Progress: func(f string, a ...any) { progress(f, a...) },
	})
	if r != nil {
		printFigures(faults.SoakFigures(r))
		for _, list := range [][]string{r.Duplicates, r.DoubleAnswers, r.ForeignAnswers, r.WithoutIP,
			r.OrphanAnnouncements, r.StaleEntries, r.OrphanSpeakerStatuses} {
			for _, s := range list {
				progress("soak: %s", s)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("soak: %w (logs: %s)", err, l.RunDir)
	}
	return nil
}
