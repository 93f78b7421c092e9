package e2etest

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/e2etest/lab"
)

// waitAnnouncement waits until the ServiceAnnouncement of svc satisfies ok.
func waitAnnouncement(t *testing.T, ctx context.Context, svc string, ok func(*porticov1.ServiceAnnouncement) bool) *porticov1.ServiceAnnouncement {
	t.Helper()
	var sa porticov1.ServiceAnnouncement
	var err error
	for {
		err = theLab.Client.Get(ctx, client.ObjectKey{Namespace: lab.Namespace, Name: svc}, &sa)
		if err == nil && ok(&sa) {
			return &sa
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ServiceAnnouncement %s: last seen %+v (%v)", svc, sa.Status, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func hasL2Owner(sa *porticov1.ServiceAnnouncement) bool {
	return len(sa.Status.L2) == 1 && sa.Status.L2[0].Node != ""
}

// A ServiceAnnouncement deleted by hand comes back: the speakers do not
// trust that what they wrote before is still there.
func TestServiceAnnouncementDeletedByHandComesBack(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	ip := service(t, ctx, "svcann-back", lab.ServiceOpts{})
	n := announcer(t, ctx, ip, nil)
	sa := waitAnnouncement(t, ctx, "svcann-back", hasL2Owner)
	if err := theLab.Client.Delete(ctx, sa); err != nil {
		t.Fatal(err)
	}
	back := waitAnnouncement(t, ctx, "svcann-back", func(x *porticov1.ServiceAnnouncement) bool { return x.UID != sa.UID && hasL2Owner(x) })
	if back.Status.L2[0].Node != n.Name || back.Status.L2[0].IP != ip.String() {
		t.Errorf("rewritten as %+v, want %s on %s", back.Status.L2, ip, n.Name)
	}
}

// Two installations with different load-balancer classes leave each other's
// ServiceAnnouncements alone: the lab's speakers serve Services without a
// class, and must not delete the one another installation wrote for its own
// Service.
func TestServiceAnnouncementOfAnotherClassStays(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	svc, err := theLab.CreateService(ctx, "svcann-other", lab.ServiceOpts{LoadBalancerClass: "example.com/other"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = theLab.DeleteService(ctx, "svcann-other")
	})
	foreign := &porticov1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: lab.Namespace, Name: "svcann-other",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID}}}}
	if err := theLab.Client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	cleanupDelete(t, foreign)
	// Any change makes the deputy look at every ServiceAnnouncement; give it
	// a few passes (they run at least every 10 s) with changes of its own.
	ip := service(t, ctx, "svcann-mine", lab.ServiceOpts{})
	announcer(t, ctx, ip, nil)
	waitAnnouncement(t, ctx, "svcann-mine", hasL2Owner)
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		var sa porticov1.ServiceAnnouncement
		err := theLab.Client.Get(ctx, client.ObjectKeyFromObject(foreign), &sa)
		if apierrors.IsNotFound(err) {
			t.Fatal("the speakers deleted the ServiceAnnouncement of a Service of another class")
		}
		time.Sleep(500 * time.Millisecond)
	}
}
