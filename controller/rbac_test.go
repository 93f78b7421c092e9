package controller_test

import (
	"fmt"
	"strings"
	"testing"

	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/controller"
	"github.com/portico-lb/portico/internal/testcluster"
)

// gr makes a grant of the tables: gr(namespaced, group, resource, verb, name).
var gr = testcluster.G

// porticoNamespace is the namespace the generated Role names.
const porticoNamespace = testcluster.PorticoNamespace

// Names fixed by the defaults (Options, WebhookOptions) and so in the role.
const (
	leaseName   = "portico-controller"
	certSecret  = "portico-webhook-cert"
	webhookName = "portico-validating-webhook"
)

var porticoKinds = []string{"bfdprofiles", "bgpadvertisements", "bgppeers", "communities", "ipaddresspools", "l2advertisements"}

// controllerNeeds is every grant of config/rbac/controller/role.yaml with the
// code that needs it. A grant not in this table is one no code uses: remove
// its marker from controller/rbac.go (and run make generate).
func controllerNeeds() []testcluster.Need {
	n := []testcluster.Need{
		gr(false, "", "services", "list", "").For("the cache's Service informer: ServiceReconciler, rebuilder (reads go through the cache, never a get)", true),
		gr(false, "", "services", "watch", "").For("the cache's Service informer", true),
		gr(false, "", "services/status", "update", "").For("ServiceReconciler.update: Status().Update writes ingress and the pool annotation", true),
		gr(false, "", "services", "patch", "").For("ServiceReconciler.update: Patch of the pool annotation, on API servers that drop metadata changes made through the status subresource", false),
		gr(false, "events.k8s.io", "events", "create", "").For("ServiceReconciler.event: events on Services (the events.k8s.io recorder)", true),
		gr(false, "events.k8s.io", "events", "patch", "").For("ServiceReconciler.event: an event repeated on the same version of a Service becomes a series, counted with a patch", false),
		gr(false, "", "events", "create", "").For("leader election's own recorder (core events): on the Lease", true),
		gr(false, "", "events", "patch", "").For("leader election's own recorder: a repeated event is counted with a patch", false),
		gr(false, "", "namespaces", "list", "").For("the cache's Namespace informer: namespace labels for pinned pools (ServiceReconciler.namespaceLabels, rebuilder)", true),
		gr(false, "", "namespaces", "watch", "").For("the cache's Namespace informer: relabelled namespaces requeue their Services", true),
		gr(true, "", "secrets", "get", "").For("readInputs: the BGPPeer password Secrets (uncached, by name, only in Portico's namespace); certKeeper.sync: the webhook certificate", true),
		gr(true, "", "secrets", "create", "").For("certKeeper.renew: the webhook certificate Secret when it is missing (create cannot be limited by name)", true),
		gr(true, "", "secrets", "update", certSecret).For("certKeeper.renew: renewing the webhook certificate", true),
		gr(true, "", "secrets", "list", certSecret).For("certKeeper.watch: the certificate Secret's informer, by name (another replica's renewal, a deleted Secret)", true),
		gr(true, "", "secrets", "watch", certSecret).For("certKeeper.watch: the certificate Secret's informer, by name", true),
		gr(true, "coordination.k8s.io", "leases", "create", "").For("leader election: the Lease when it is missing", true),
		gr(true, "coordination.k8s.io", "leases", "get", leaseName).For("leader election: reading the Lease", true),
		gr(true, "coordination.k8s.io", "leases", "update", leaseName).For("leader election: acquiring and renewing the Lease", true),
		gr(false, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "get", webhookName).For("certKeeper.patchCABundle: reading the caBundle", true),
		gr(false, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch", webhookName).For("certKeeper.patchCABundle: setting the caBundle", true),
	}
	for _, k := range porticoKinds {
		n = append(n,
			gr(false, "portico.dev", k, "list", "").For("the cache's informers (ConfigReconciler) and the webhook's uncached reads (readInputs)", true),
			gr(false, "portico.dev", k, "watch", "").For("the cache's informers: ConfigReconciler", true))
	}
	for _, k := range []string{"ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers"} {
		n = append(n, gr(false, "portico.dev", k+"/status", "update", "").For("ConfigReconciler.writeConditions and writePool: Status().Update", true))
	}
	return n
}

// controllerRole is config/rbac/controller/role.yaml.
func controllerRole(t *testing.T) testcluster.Role {
	return testcluster.ReadRole(t, "config/rbac/controller/role.yaml")
}

// TestControllerRoleMatchesItsTable fails on any grant of the generated role
// that no code needs, and on any need the role does not grant.
func TestControllerRoleMatchesItsTable(t *testing.T) {
	controllerRole(t).MatchesTable(t, controllerNeeds(), "controller/rbac.go")
}

// asController returns a client configuration that acts as the ServiceAccount
// bound to the generated roles, and records its requests.
func asController(t *testing.T, r testcluster.Role) (*rest.Config, func() []testcluster.Request) {
	t.Helper()
	cfg := cluster.AsServiceAccount(t, "portico-controller", r)
	// What cannot be reached.
	plain, err := client.New(cfg, client.Options{Scheme: cluster.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"default", "kube-system"} {
		if err := plain.Get(ctxBG, types.NamespacedName{Namespace: ns, Name: "anything"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
			t.Errorf("reading a Secret in namespace %s as the controller: %v, want forbidden", ns, err)
		}
	}
	if err := plain.Patch(ctxBG, &admregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}},
		client.RawPatch(types.MergePatchType, []byte(`{}`))); !apierrors.IsForbidden(err) {
		t.Errorf("patching another ValidatingWebhookConfiguration as the controller: %v, want forbidden", err)
	}
	if err := plain.Update(ctxBG, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"}}); !apierrors.IsForbidden(err) {
		t.Errorf("updating a Service as the controller: %v, want forbidden", err)
	}
	return testcluster.Record(cfg)
}

// TestControllerRunsWithItsRole runs the controller as a ServiceAccount bound
// to exactly the generated roles through allocation, status, events, peers
// and their password Secrets, the webhook and its certificate, and leader
// election: nothing is refused, every grant the table marks exercised is
// used, and a Secret outside Portico's namespace stays out of reach.
func TestControllerRunsWithItsRole(t *testing.T) {
	cfg, requests := asController(t, controllerRole(t))
	plainLists(t)

	// Peers: one with its password Secret in Portico's namespace, one
	// naming a Secret elsewhere (which exists).
	secret := func(ns, name string) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"password": []byte("hunter2")}}
		if err := cluster.Client.Create(ctxBG, s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, s) })
	}
	secret(porticoNamespace, "rbac-peer-password")
	secret("default", "rbac-peer-elsewhere")
	peer := func(name string, ref *v1.SecretKeyRef) {
		p := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "198.51.100.1", PasswordSecretRef: ref}}
		if err := cluster.Client.Create(ctxBG, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, p) })
	}
	peer("rbac-home", &v1.SecretKeyRef{Name: "rbac-peer-password"})
	peer("rbac-away", &v1.SecretKeyRef{Namespace: "default", Name: "rbac-peer-elsewhere"})
	pool(t, "rbac", nil, "192.0.2.0/29")
	for _, o := range []client.Object{
		&v1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "rbac"}, Spec: v1.L2AdvertisementSpec{PoolAndNodeSelection: v1.PoolAndNodeSelection{IPAddressPools: []string{"rbac"}}}},
		&v1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "rbac"}, Spec: v1.BGPAdvertisementSpec{PoolAndNodeSelection: v1.PoolAndNodeSelection{IPAddressPools: []string{"rbac"}}}},
	} {
		if err := cluster.Client.Create(ctxBG, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, o) })
	}

	const port = 19444
	vwc := webhookConfig(port)
	if err := cluster.Client.Create(ctxBG, vwc); err != nil {
		t.Fatal(err)
	}
	o := controller.Options{Namespace: porticoNamespace, LeaderElect: true,
		Webhook: controller.WebhookOptions{Enabled: true, Port: port, Hosts: []string{"127.0.0.1"}}}
	stop := runWith(t, cfg, o)
	t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, vwc) })

	// Allocation, status, events; a flip back and forth allocates again,
	// with an event of its own (the Service changed, so it is no series).
	ns := namespace(t, nil)
	service(t, ns, "web", nil)
	waitIPs(t, ns, "web", "192.0.2.0")
	cls := class(t)
	flip := func(lb bool) {
		update(t, ns, "web", func(s *corev1.Service) {
			if lb {
				s.Spec.Type, s.Spec.LoadBalancerClass, s.Spec.AllocateLoadBalancerNodePorts = corev1.ServiceTypeLoadBalancer, &cls, ptr(false)
			} else {
				s.Spec.Type, s.Spec.LoadBalancerClass, s.Spec.AllocateLoadBalancerNodePorts = corev1.ServiceTypeClusterIP, nil, nil
			}
		})
	}
	flip(false)
	waitIPs(t, ns, "web")
	flip(true)
	waitIPs(t, ns, "web", "192.0.2.0")
	eventually(t, func() string {
		var allocated []string
		for _, e := range events(t, ns, "web") {
			if e.Reason == controller.EventIPAllocated {
				allocated = append(allocated, e.Message)
			}
		}
		if len(allocated) < 2 {
			return fmt.Sprintf("want two IPAllocated events, one per allocation; have %q", allocated)
		}
		return ""
	})

	// Peer conditions: the Secret at home is found, the one away is refused
	// with what to do.
	eventually(t, func() string {
		home, away := peerReady(t, "rbac-home"), peerReady(t, "rbac-away")
		if home.Status != metav1.ConditionTrue {
			return fmt.Sprintf("rbac-home: %+v", home)
		}
		if away.Status != metav1.ConditionFalse || !strings.Contains(away.Message, "move the Secret into namespace "+porticoNamespace) ||
			!strings.Contains(away.Message, "default/rbac-peer-elsewhere") {
			return fmt.Sprintf("rbac-away: %+v", away)
		}
		return ""
	})

	// The webhook: caBundle set, a valid pool accepted (the webhook reads
	// the configuration), a peer naming a Secret elsewhere refused.
	waitCABundle(t, webhookName)
	eventually(t, func() string {
		p := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "rbac-second"}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"198.51.100.0/29"}}}
		if err := cluster.Client.Create(ctxBG, p); err != nil {
			return "creating a valid pool through the webhook: " + err.Error()
		}
		t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, p) })
		return ""
	})
	away := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "rbac-away-2"},
		Spec: v1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "198.51.100.2", PasswordSecretRef: &v1.SecretKeyRef{Namespace: "default", Name: "rbac-peer-elsewhere"}}}
	if err := cluster.Client.Create(ctxBG, away); err == nil {
		_ = cluster.Client.Delete(ctxBG, away)
		t.Error("the webhook accepted a peer whose password Secret is outside Portico's namespace")
	} else if !strings.Contains(err.Error(), "move the Secret into namespace "+porticoNamespace) {
		t.Errorf("refusing a peer whose password Secret is elsewhere: %v", err)
	}

	// A restart with a certificate that must be renewed.
	stop()
	var cert corev1.Secret
	if err := cluster.Client.Get(ctxBG, types.NamespacedName{Namespace: porticoNamespace, Name: certSecret}, &cert); err != nil {
		t.Fatal(err)
	}
	cert.Data["tls.crt"] = []byte("not a certificate")
	if err := cluster.Client.Update(ctxBG, &cert); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, &cert) })
	runWith(t, cfg, o)
	eventually(t, func() string {
		var now corev1.Secret
		if err := cluster.Client.Get(ctxBG, client.ObjectKeyFromObject(&cert), &now); err != nil {
			return err.Error()
		}
		if string(now.Data["tls.crt"]) == "not a certificate" {
			return "the certificate was not renewed"
		}
		return ""
	})
	service(t, ns, "after", nil)
	waitIPs(t, ns, "after", "192.0.2.1")

	testcluster.CheckRun(t, requests(), controllerNeeds(), nil)
}

// plainLists makes informers fill their caches with a list, as
// cmd/portico-controller does, for the rest of the test.
func plainLists(t *testing.T) {
	g, ok := clientfeatures.FeatureGates().(interface {
		Set(clientfeatures.Feature, bool) error
	})
	if !ok {
		t.Fatal("client-go's feature gates cannot be set")
	}
	was := clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient)
	if err := g.Set(clientfeatures.WatchListClient, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Set(clientfeatures.WatchListClient, was) })
}

func peerReady(t *testing.T, name string) metav1.Condition {
	t.Helper()
	var p v1.BGPPeer
	if err := cluster.Client.Get(ctxBG, types.NamespacedName{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c
		}
	}
	return metav1.Condition{}
}

// webhookConfig is a ValidatingWebhookConfiguration named webhookName that
// sends Portico's kinds to 127.0.0.1 on each port (one webhook per port, so
// every replica is called).
func webhookConfig(ports ...int) *admregv1.ValidatingWebhookConfiguration {
	fail := admregv1.Fail
	none := admregv1.SideEffectClassNone
	vwc := &admregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhookName}}
	for i, port := range ports {
		url := fmt.Sprintf("https://127.0.0.1:%d%s", port, controller.WebhookPath)
		vwc.Webhooks = append(vwc.Webhooks, admregv1.ValidatingWebhook{
			Name:                    fmt.Sprintf("validate-%d.portico.dev", i),
			ClientConfig:            admregv1.WebhookClientConfig{URL: &url},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			Rules: []admregv1.RuleWithOperations{{
				Operations: []admregv1.OperationType{admregv1.Create, admregv1.Update},
				Rule: admregv1.Rule{APIGroups: []string{"portico.dev"}, APIVersions: []string{"v1alpha1"},
					Resources: []string{"ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers", "communities"}},
			}},
		})
	}
	return vwc
}

// waitCABundle waits until every webhook of the named configuration has a
// caBundle.
func waitCABundle(t *testing.T, name string) {
	t.Helper()
	eventually(t, func() string {
		cur := &admregv1.ValidatingWebhookConfiguration{}
		if err := cluster.Client.Get(ctxBG, types.NamespacedName{Name: name}, cur); err != nil {
			return err.Error()
		}
		for _, w := range cur.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return "caBundle not set"
			}
		}
		return ""
	})
}
