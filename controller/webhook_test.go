package controller_test

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/controller"
)

func TestWebhookRefusesCrossObjectErrors(t *testing.T) {
	pool(t, "wh-first", nil, "192.0.2.0/24")
	const port = 19443
	vwc := webhookConfig(port)
	if err := cluster.Client.Create(ctxBG, vwc); err != nil {
		t.Fatal(err)
	}
	run(t, controller.Options{Webhook: controller.WebhookOptions{Enabled: true, Port: port, Hosts: []string{"127.0.0.1"}}})
	// Runs before the manager stops (cleanups run last-in first-out), so no
	// other test meets a webhook that is gone.
	t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, vwc) })

	// The controller created its certificate Secret and set the caBundle.
	waitCABundle(t, vwc.Name)
	var secret corev1.Secret
	if err := cluster.Client.Get(ctxBG, types.NamespacedName{Namespace: "default", Name: "portico-webhook-cert"}, &secret); err != nil {
		t.Fatalf("certificate Secret: %v", err)
	}

	overlapping := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "wh-second"}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"192.0.2.128/25"}}}
	eventually(t, func() string {
		err := cluster.Client.Create(ctxBG, overlapping.DeepCopy())
		if err == nil {
			_ = cluster.Client.Delete(ctxBG, overlapping)
			t.Fatal("an overlapping pool was accepted")
		}
		if !strings.Contains(err.Error(), `overlaps pool "wh-first" on 192.0.2.128/25`) {
			return "not refused by the webhook yet: " + err.Error()
		}
		return ""
	})
	l2 := &v1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "wh-l2"}, Spec: v1.L2AdvertisementSpec{PoolAndNodeSelection: v1.PoolAndNodeSelection{IPAddressPools: []string{"nope"}}}}
	err := cluster.Client.Create(ctxBG, l2)
	if err == nil || !strings.Contains(err.Error(), `spec.ipAddressPools[0]: IPAddressPool "nope" does not exist`) {
		t.Fatalf("advertisement naming a missing pool: %v", err)
	}
	good := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "wh-good"}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"198.51.100.0/24"}}}
	if err := cluster.Client.Create(ctxBG, good); err != nil {
		t.Fatalf("a valid pool was refused: %v", err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, good) })
}

func TestAdvertisementAndPeerConditions(t *testing.T) {
	run(t, controller.Options{})
	l2 := &v1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "cond-l2"}, Spec: v1.L2AdvertisementSpec{PoolAndNodeSelection: v1.PoolAndNodeSelection{IPAddressPools: []string{"missing-pool"}}}}
	peer := &v1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "cond-peer"}, Spec: v1.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "198.51.100.1", BFDProfile: "missing-bfd"}}
	if err := cluster.Client.Create(ctxBG, l2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, l2) })
	if err := cluster.Client.Create(ctxBG, peer); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, peer) })
	eventually(t, func() string {
		var gotL2 v1.L2Advertisement
		var gotPeer v1.BGPPeer
		_ = cluster.Client.Get(ctxBG, types.NamespacedName{Name: l2.Name}, &gotL2)
		_ = cluster.Client.Get(ctxBG, types.NamespacedName{Name: peer.Name}, &gotPeer)
		if len(gotL2.Status.Conditions) == 0 || len(gotPeer.Status.Conditions) == 0 {
			return "no conditions yet"
		}
		c1, c2 := gotL2.Status.Conditions[0], gotPeer.Status.Conditions[0]
		if c1.Status != metav1.ConditionFalse || !strings.Contains(c1.Message, `IPAddressPool "missing-pool" does not exist`) ||
			c2.Status != metav1.ConditionFalse || !strings.Contains(c2.Message, `BFDProfile "missing-bfd" does not exist`) {
			return fmt.Sprintf("conditions l2=%+v peer=%+v", c1, c2)
		}
		return ""
	})
}
