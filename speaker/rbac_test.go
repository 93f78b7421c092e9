package speaker_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/netnstest"
	"github.com/portico-lb/portico/internal/testcluster"
	"github.com/portico-lb/portico/speaker"
)

// gr makes a grant of the table: gr(namespaced, group, resource, verb, name).
var gr = testcluster.G

// initialList explains the list grants: the speaker's informers fill their
// caches with a streaming watch (client-go's watch-list, which the run uses),
// and fall back to a list on an API server that does not stream.
const initialList = "the informers' initial list, when the API server cannot stream it in a watch: the "

// speakerNeeds is every grant of config/rbac/speaker/role.yaml with the code
// that needs it. A grant not in this table is one no code uses: remove its
// marker from speaker/rbac.go (and run make generate).
func speakerNeeds() []testcluster.Need {
	n := []testcluster.Need{
		gr(false, "", "services", "list", "").For(initialList+"Service informer", false),
		gr(false, "", "services", "watch", "").For("the cache's Service informer", true),
		gr(false, "", "services", "get", "").For("statusWriter.freshService: a ServiceAnnouncement's Service, confirmed before its entries or the object go", true),
		gr(false, "", "nodes", "list", "").For(initialList+"Node informer: node selectors, excluded and unavailable nodes", false),
		gr(false, "", "nodes", "watch", "").For("the cache's Node informer", true),
		gr(false, "", "nodes", "get", "").For("Speaker.advertiseAddr: the Node's InternalIP; deleteStaleSpeakerStatuses: whether a SpeakerStatus's Node is gone", true),
		gr(false, "discovery.k8s.io", "endpointslices", "list", "").For(initialList+"EndpointSlice informer: externalTrafficPolicy Local", false),
		gr(false, "discovery.k8s.io", "endpointslices", "watch", "").For("the cache's EndpointSlice informer", true),
		gr(false, "events.k8s.io", "events", "create", "").For("the events.k8s.io recorder: events on Services, Nodes and configuration objects", true),
		gr(false, "events.k8s.io", "events", "patch", "").For("the events.k8s.io recorder: a repeated event becomes a series, patched", true),
		gr(true, "", "secrets", "get", "portico-memberlist").For("memberlistKeys: the memberlist keys, at start and every KeyRefresh", true),
		gr(false, "portico.dev", "speakerstatuses", "list", "").For(initialList+"SpeakerStatus informer: peers.candidates, deleteStaleSpeakerStatuses", false),
		gr(false, "portico.dev", "speakerstatuses", "watch", "").For("the cache's SpeakerStatus informer", true),
		gr(false, "portico.dev", "speakerstatuses", "create", "").For("statusWriter.writeNode: this node's SpeakerStatus when missing", true),
		gr(false, "portico.dev", "speakerstatuses", "delete", "").For("deleteStaleSpeakerStatuses: the SpeakerStatus of a Node that is gone", true),
		gr(false, "portico.dev", "speakerstatuses/status", "patch", "").For("statusWriter.writeNode: server-side apply of this node's status", true),
		gr(false, "portico.dev", "serviceannouncements", "list", "").For(initialList+"ServiceAnnouncement informer: statusWriter", false),
		gr(false, "portico.dev", "serviceannouncements", "watch", "").For("the cache's ServiceAnnouncement informer", true),
		gr(false, "portico.dev", "serviceannouncements", "create", "").For("statusWriter.apply: a Service's ServiceAnnouncement when missing", true),
		gr(false, "portico.dev", "serviceannouncements", "delete", "").For("statusWriter.deleteAnnouncement: the ServiceAnnouncement of a Service that is gone", true),
		gr(false, "portico.dev", "serviceannouncements/status", "patch", "").For("statusWriter.applyStatus: server-side apply of this node's entries", true),
		gr(false, "portico.dev", "serviceannouncements/status", "update", "").For("statusWriter.prune: entries of other nodes (field managers) for IPs the Service no longer has or nodes that are not members", true),
	}
	for _, k := range []string{"bfdprofiles", "bgpadvertisements", "bgppeers", "communities", "ipaddresspools", "l2advertisements"} {
		n = append(n,
			gr(false, "portico.dev", k, "list", "").For(initialList+"configuration informers (facts.Gather)", false),
			gr(false, "portico.dev", k, "watch", "").For("the cache's informers", true))
	}
	return n
}

func speakerRole(t *testing.T) testcluster.Role {
	return testcluster.ReadRole(t, "config/rbac/speaker/role.yaml")
}

// TestSpeakerRoleMatchesItsTable fails on any grant of the generated role
// that no code needs, and on any need the role does not grant.
func TestSpeakerRoleMatchesItsTable(t *testing.T) {
	speakerRole(t).MatchesTable(t, speakerNeeds(), "speaker/rbac.go")
}

// TestSpeakerRunsWithItsRole runs a speaker as a ServiceAccount bound to
// exactly the generated roles: it announces a Service on the wire, writes
// its status and the ServiceAnnouncement, prunes an IP the Service lost,
// deletes the announcement of a deleted Service, another node's entry and
// the SpeakerStatus of a Node that is gone. Nothing is refused but the Secrets it must not read: a
// BGP password Secret the Role does not name, which the SpeakerStatus then
// names with the Role to extend, and the webhook's private key. Every grant
// the table marks exercised is used.
func TestSpeakerRunsWithItsRole(t *testing.T) {
	netnstest.Require(t, "arping")
	ensureSecret(t)
	ctx := context.Background()
	const nodeName, ip, ip2 = "rbac-node", "192.0.2.140", "192.0.2.141"
	seg := newSegment(t, nodeName)
	mustCreate(t, node(nodeName))
	t.Cleanup(func() { _ = cluster.Client.Delete(ctx, node(nodeName)) })

	cfg := cluster.AsServiceAccount(t, "portico-speaker", speakerRole(t))
	plain, err := client.New(cfg, client.Options{Scheme: cluster.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []types.NamespacedName{{Namespace: testNamespace, Name: "portico-webhook-cert"}, {Namespace: "default", Name: "anything"}} {
		if err := plain.Get(ctx, key, &corev1.Secret{}); !apierrors.IsForbidden(err) {
			t.Errorf("reading Secret %s as the speaker: %v, want forbidden", key, err)
		}
	}
	if err := plain.List(ctx, &corev1.SecretList{}, client.InNamespace(testNamespace)); !apierrors.IsForbidden(err) {
		t.Errorf("listing Secrets as the speaker: %v, want forbidden", err)
	}
	rec, requests := testcluster.Record(cfg)

	// A SpeakerStatus of a Node that does not exist (left by a removed node).
	gone := &porticov1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: "rbac-gone-node"}}
	mustCreate(t, gone)
	// A BGP peer whose password Secret the Role does not name.
	mustCreate(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "rbac-not-granted"}, StringData: map[string]string{"password": "x"}},
		&porticov1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "rbac-peer"},
			Spec: porticov1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "198.51.100.1",
				PasswordSecretRef: &porticov1.SecretKeyRef{Name: "rbac-not-granted"}}})
	t.Cleanup(func() {
		_ = cluster.Client.Delete(ctx, &porticov1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "rbac-peer"}})
		_ = cluster.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "rbac-not-granted"}})
	})
	poolAndAd(t, "rbac", "192.0.2.140-192.0.2.141", "eth1")
	sp := startSpeaker(t, nodeName, seg.nodes[nodeName], func(c *speaker.Config) { c.RestConfig = rec })

	svc := lbService(t, "rbac", "web", ip)
	svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip2})
	if err := cluster.Client.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	seg.waitAnswer(t, ip2, "")
	waitFor(t, "both IPs in the ServiceAnnouncement", func() (bool, string) {
		st := announcement(t, "rbac", "web")
		return len(st.L2) == 2, fmt.Sprint(st)
	})
	// (Both IPs may be announced at one version of the Service: the
	// events.k8s.io recorder then folds the second event into the first.)
	waitFor(t, "an Announcing event", func() (bool, string) {
		return hasEvent(t, "rbac", "web", "from "+nodeName+" on eth1")
	})
	// The Service loses an IP: its entry is pruned.
	svc.Status.LoadBalancer.Ingress = svc.Status.LoadBalancer.Ingress[:1]
	if err := cluster.Client.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lost IP's entry to go", func() (bool, string) {
		st := announcement(t, "rbac", "web")
		return len(st.L2) == 1 && st.L2[0].IP == ip, fmt.Sprint(st)
	})
	// Another node's entry for a node that is not a member (written under
	// its own field manager): removed with an update.
	stale := fmt.Sprintf(`{"apiVersion": "portico.dev/v1alpha1", "kind": "ServiceAnnouncement",
		"metadata": {"namespace": "rbac", "name": "web"}, "status": {"bgp": [{"ip": %q, "node": "rbac-other-node"}]}}`, ip)
	if err := cluster.Client.Status().Patch(ctx, &porticov1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: "rbac", Name: "web"}},
		client.RawPatch(types.ApplyPatchType, []byte(stale)), client.FieldOwner("portico-speaker-rbac-other-node"), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the entry of a node that is not a member to go", func() (bool, string) {
		st := announcement(t, "rbac", "web")
		return len(st.BGP) == 0 && len(st.L2) == 1, fmt.Sprint(st)
	})
	waitFor(t, "the SpeakerStatus to name the Secret it may not read, and the Role", func() (bool, string) {
		st := speakerStatus(nodeName)
		return strings.Contains(st.LastError, "the speaker may not read Secret portico-system/rbac-not-granted") &&
			strings.Contains(st.LastError, `add "rbac-not-granted" to the resourceNames`) &&
			strings.Contains(st.LastError, "Role portico-speaker") && strings.Contains(st.LastError, "speaker.bgpPasswordSecrets"), st.LastError
	})
	waitFor(t, "the gone node's SpeakerStatus to be deleted", func() (bool, string) {
		err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(gone), &porticov1.SpeakerStatus{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if err := cluster.Client.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted Service's ServiceAnnouncement to go", func() (bool, string) {
		err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(svc), &porticov1.ServiceAnnouncement{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	sp.stop(t)

	testcluster.CheckRun(t, requests(), speakerNeeds(), func(a testcluster.Request) bool {
		return a.Code == http.StatusForbidden && a.Resource == "secrets" && a.Name == "rbac-not-granted"
	})
}
