package controller_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/controller"
)

// servedCert returns the DER certificate served on 127.0.0.1:port.
func servedCert(port int) ([]byte, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the certificate is what is looked at
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw, nil
}

// certSecretOf reads the certificate Secret ns/name.
func certSecretOf(t *testing.T, ns, name string) (*corev1.Secret, error) {
	t.Helper()
	var s corev1.Secret
	err := cluster.Client.Get(ctxBG, types.NamespacedName{Namespace: ns, Name: name}, &s)
	return &s, err
}

// inStep says "" when every replica (port) serves the Secret's certificate,
// the configuration's caBundle is the Secret's ca.crt, and the API server
// calls every replica when a pool is created; otherwise what is not yet so.
func inStep(t *testing.T, ns, secret string, ports ...int) string {
	t.Helper()
	s, err := certSecretOf(t, ns, secret)
	if err != nil {
		return err.Error()
	}
	b, _ := pem.Decode(s.Data["tls.crt"])
	if b == nil {
		return "the Secret holds no certificate"
	}
	for _, p := range ports {
		got, err := servedCert(p)
		if err != nil {
			return fmt.Sprintf("replica on port %d: %v", p, err)
		}
		if !bytes.Equal(got, b.Bytes) {
			return fmt.Sprintf("replica on port %d does not serve the Secret's certificate", p)
		}
	}
	var vwc admregv1.ValidatingWebhookConfiguration
	if err := cluster.Client.Get(ctxBG, types.NamespacedName{Name: webhookName}, &vwc); err != nil {
		return err.Error()
	}
	for _, w := range vwc.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, s.Data["ca.crt"]) {
			return fmt.Sprintf("webhook %s: the caBundle is not the Secret's ca.crt", w.Name)
		}
	}
	p := &v1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{GenerateName: "cert-probe-"}, Spec: v1.IPAddressPoolSpec{Addresses: []v1.AddressEntry{"203.0.113.0/30"}}}
	if err := cluster.Client.Create(ctxBG, p); err != nil {
		return "creating a pool through the webhooks: " + err.Error()
	}
	_ = cluster.Client.Delete(ctxBG, p)
	return ""
}

// withWebhook creates the ValidatingWebhookConfiguration calling ports and
// removes it, and the Secret, when the test ends (before the managers stop,
// when called before run).
func withWebhook(t *testing.T, secret string, ports ...int) {
	t.Helper()
	vwc := webhookConfig(ports...)
	if err := cluster.Client.Create(ctxBG, vwc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cluster.Client.Delete(ctxBG, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: secret}})
	})
	t.Cleanup(func() { _ = cluster.Client.Delete(ctxBG, vwc) })
}

// TestWebhookCertificateRenewedWhileRunning: with a certificate valid for
// seconds, two replicas renew it again and again while they run, both serve
// each new one, the caBundle follows, and the API server keeps calling both
// long after the first certificate expired.
func TestWebhookCertificateRenewedWhileRunning(t *testing.T) {
	const secret = "renewal-cert"
	ports := []int{19445, 19446}
	var stops []func()
	for _, p := range ports {
		o := controller.Options{LeaderElect: true, LeaderElectionID: "cert-renewal",
			Webhook: controller.WebhookOptions{Enabled: true, Port: p, Hosts: []string{"127.0.0.1"}, SecretName: secret, CertValidity: 9 * time.Second}}
		stops = append(stops, run(t, o))
	}
	withWebhook(t, secret, ports...)

	// Three renewals: the first certificate is long expired by then.
	seen := map[string]bool{}
	deadline := time.Now().Add(4 * wait)
	for len(seen) < 4 {
		if s, err := certSecretOf(t, "default", secret); err == nil {
			seen[string(s.Data["tls.crt"])] = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d certificates seen in %s, want 4: the certificate is not renewed while the controller runs", len(seen), 4*wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The replaced certificate leaves the caBundle a little after a renewal.
	eventually(t, func() string {
		s, err := certSecretOf(t, "default", secret)
		if err != nil {
			return err.Error()
		}
		if !bytes.Equal(s.Data["ca.crt"], s.Data["tls.crt"]) {
			return "ca.crt still holds the replaced certificate"
		}
		return ""
	})
	eventually(t, func() string { return inStep(t, "default", secret, ports...) })
	for _, stop := range stops {
		stop()
	}
}

// raceOnSecret lets the certificate Secret be updated only once two reads
// of it have been made: two replicas that both found it due for renewal
// write it at once.
type raceOnSecret struct {
	client.Client
	name             string
	reads, conflicts *atomic.Int32
}

func (c raceOnSecret) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := c.Client.Get(ctx, key, obj, opts...)
	if _, ok := obj.(*corev1.Secret); ok && key.Name == c.name {
		c.reads.Add(1)
	}
	return err
}

func (c raceOnSecret) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if _, ok := obj.(*corev1.Secret); ok && obj.GetName() == c.name {
		for c.reads.Load() < 2 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	err := c.Client.Update(ctx, obj, opts...)
	if apierrors.IsConflict(err) {
		c.conflicts.Add(1)
	}
	return err
}

// TestWebhookCertificateRenewedByTwoReplicasAtOnce: two replicas starting
// together with a certificate due for renewal both start (the loser of the
// write reads the winner's certificate) and serve the same one; deleting the
// Secret, as docs/security.md says to rotate it, gives both a new one.
func TestWebhookCertificateRenewedByTwoReplicasAtOnce(t *testing.T) {
	const secret = "race-cert"
	old := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: secret}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("expired"), "tls.key": []byte("expired")}}
	if err := cluster.Client.Create(ctxBG, old); err != nil {
		t.Fatal(err)
	}
	ports := []int{19447, 19448}
	withWebhook(t, secret, ports...)
	var reads, conflicts atomic.Int32
	mgrs := make([]manager.Manager, len(ports))
	errs := make(chan error, len(ports))
	for i, p := range ports {
		o := controller.Options{LeaderElect: true, LeaderElectionID: "cert-race",
			WrapClient: func(c client.Client) client.Client {
				return raceOnSecret{Client: c, name: secret, reads: &reads, conflicts: &conflicts}
			},
			Webhook: controller.WebhookOptions{Enabled: true, Port: p, Hosts: []string{"127.0.0.1"}, SecretName: secret}}
		go func() {
			var err error
			mgrs[i], err = newManager(t, cluster.Config, o)
			errs <- err
		}()
	}
	for range ports {
		if err := <-errs; err != nil {
			t.Fatalf("a replica did not start: %v", err)
		}
	}
	if conflicts.Load() == 0 {
		t.Fatal("the two replicas did not write the Secret at once")
	}
	for _, m := range mgrs {
		start(t, m)
	}
	eventually(t, func() string { return inStep(t, "default", secret, ports...) })

	before, err := certSecretOf(t, "default", secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Delete(ctxBG, before); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		s, err := certSecretOf(t, "default", secret)
		if err != nil {
			return err.Error()
		}
		if bytes.Equal(s.Data["tls.crt"], before.Data["tls.crt"]) {
			return "no new certificate after the Secret was deleted"
		}
		return inStep(t, "default", secret, ports...)
	})
}
