package e2etest

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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

// The SpeakerStatus of a Node that is gone is removed by the live speakers
// (there is no garbage collector in the lab, as in a cluster whose collector
// lags), and a restarting speaker is not held up by the dead addresses such
// objects name: it joins them all at once.
func TestSpeakerStatusOfDeletedNodeIsRemoved(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	var ghosts []string
	for i := range 3 {
		name := fmt.Sprintf("ghost%d", i)
		ghosts = append(ghosts, name)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
		if err := theLab.Client.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
		cleanupDelete(t, node)
		st := &porticov1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := theLab.Client.Create(ctx, st); err != nil {
			t.Fatal(err)
		}
		// A memberlist address where nobody answers (a node that died).
		st.Status.MemberlistAddress = fmt.Sprintf("198.51.100.%d:7947", 50+i)
		if err := theLab.Client.Status().Update(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	n := theLab.Nodes[2]
	heal(t, n)
	theLab.StopSpeaker(n)
	start := time.Now()
	if err := theLab.StartSpeaker(n); err != nil {
		t.Fatal(err)
	}
	if err := theLab.WaitMembers(ctx, nodeNames()...); err != nil {
		t.Fatal(err)
	}
	t.Logf("a speaker restarted beside 3 dead addresses was a member again after %s", time.Since(start).Round(time.Millisecond))
	for _, name := range ghosts {
		if err := theLab.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range ghosts {
		for {
			var st porticov1.SpeakerStatus
			err := theLab.Client.Get(ctx, client.ObjectKey{Name: name}, &st)
			if apierrors.IsNotFound(err) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the SpeakerStatus of deleted node %s is still there (%v)", name, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	// The live nodes' own SpeakerStatuses carry their Node as owner.
	var st porticov1.SpeakerStatus
	if err := theLab.Client.Get(ctx, client.ObjectKey{Name: n.Name}, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.OwnerReferences) != 1 || st.OwnerReferences[0].Kind != "Node" || st.OwnerReferences[0].Name != n.Name {
		t.Errorf("%s's SpeakerStatus owners: %+v, want its Node", n.Name, st.OwnerReferences)
	}
}
