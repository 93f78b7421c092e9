package faults

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// Leaks are status objects that outlived what they describe.
type Leaks struct {
	// OrphanAnnouncements are ServiceAnnouncements whose Service is gone
	// (or is another object of the same name: its owner reference's UID
	// differs).
	OrphanAnnouncements []string
	// StaleEntries are ServiceAnnouncement entries for IPs their Service
	// no longer holds.
	StaleEntries []string
	// OrphanSpeakerStatuses are SpeakerStatuses whose Node is gone.
	OrphanSpeakerStatuses []string
	// EventsIdleGrowth is how many events (Event objects and repeats
	// counted in them) were written in a stretch with nothing changing,
	// after the first such stretches (see idleEvents): events piling up.
	// Events is the total before.
	EventsIdleGrowth, Events int
}

// None reports whether nothing leaked.
func (k Leaks) None() bool {
	return len(k.OrphanAnnouncements)+len(k.StaleEntries)+len(k.OrphanSpeakerStatuses)+k.EventsIdleGrowth == 0
}

// findLeaks lists ServiceAnnouncements, Services, SpeakerStatuses and Nodes
// and returns the orphans (not the events).
func findLeaks(ctx context.Context, l *lab.Lab) (Leaks, error) {
	var k Leaks
	var anns porticov1.ServiceAnnouncementList
	if err := l.Client.List(ctx, &anns); err != nil {
		return k, err
	}
	for _, a := range anns.Items {
		key := a.Namespace + "/" + a.Name
		var svc corev1.Service
		err := l.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Name}, &svc)
		if apierrors.IsNotFound(err) {
			k.OrphanAnnouncements = append(k.OrphanAnnouncements, key+": no such Service")
			continue
		}
		if err != nil {
			return k, err
		}
		for _, ref := range a.OwnerReferences {
			if ref.Kind == "Service" && ref.UID != svc.UID {
				k.OrphanAnnouncements = append(k.OrphanAnnouncements, fmt.Sprintf("%s: owner UID %s, the Service's is %s", key, ref.UID, svc.UID))
			}
		}
		holds := ingressIPs(&svc)
		var ips []string
		for _, e := range a.Status.L2 {
			ips = append(ips, e.IP)
		}
		for _, e := range a.Status.BGP {
			ips = append(ips, e.IP)
		}
		for _, s := range ips {
			if ip, err := netip.ParseAddr(s); err != nil || !slices.Contains(holds, ip) {
				k.StaleEntries = append(k.StaleEntries, fmt.Sprintf("%s: entry for %s, the Service holds %v", key, s, holds))
			}
		}
	}
	var sts porticov1.SpeakerStatusList
	if err := l.Client.List(ctx, &sts); err != nil {
		return k, err
	}
	for _, st := range sts.Items {
		var n corev1.Node
		err := l.Client.Get(ctx, client.ObjectKey{Name: st.Name}, &n)
		if apierrors.IsNotFound(err) {
			k.OrphanSpeakerStatuses = append(k.OrphanSpeakerStatuses, st.Name)
		} else if err != nil {
			return k, err
		}
	}
	return k, nil
}

// waitNoLeaks looks for orphans until there are none or ctx ends (the
// speakers tidy up on their own schedule) and returns the last finding.
func waitNoLeaks(ctx context.Context, l *lab.Lab) (Leaks, error) {
	var last Leaks
	var lastErr error
	looked := false
	for {
		k, err := findLeaks(ctx, l)
		switch {
		case err == nil && k.None():
			return k, nil
		case err == nil:
			last, looked = k, true
		case ctx.Err() == nil:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if looked {
				return last, nil
			}
			return last, fmt.Errorf("looking for leaks: %w", cmp.Or(lastErr, ctx.Err()))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// countEvents returns the number of events in the cluster, each Event
// counting as many times as it was repeated.
func countEvents(ctx context.Context, l *lab.Lab) (int, error) {
	var evs corev1.EventList
	if err := l.Client.List(ctx, &evs); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range evs.Items {
		c := max(1, int(e.Count))
		if e.Series != nil {
			c = max(c, int(e.Series.Count))
		}
		n += c
	}
	return n, nil
}

// idleEvents counts the events written while nothing changes, in up to
// three stretches of idle each: growth is that of the last stretch, zero as
// soon as one stretch writes none (a last event about the end of the
// faults may still come in the first; a pile-up writes in every one).
func idleEvents(ctx context.Context, l *lab.Lab, idle time.Duration) (before, growth int, err error) {
	if before, err = countEvents(ctx, l); err != nil {
		return 0, 0, err
	}
	last := before
	for range 3 {
		select {
		case <-ctx.Done():
			return before, 0, ctx.Err()
		case <-time.After(idle):
		}
		now, err := countEvents(ctx, l)
		if err != nil {
			return before, 0, err
		}
		if growth = now - last; growth == 0 {
			return before, 0, nil
		}
		last = now
	}
	return before, growth, nil
}
