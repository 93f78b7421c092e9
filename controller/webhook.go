package controller

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/config"
)

// WebhookOptions configure the validating webhook and its certificate.
type WebhookOptions struct {
	Enabled bool
	Port    int
	// ServiceName is the Service in front of the webhook; its DNS names go in
	// the certificate. Default portico-webhook.
	ServiceName string
	// Hosts are extra DNS names or IPs for the certificate (e.g. 127.0.0.1
	// when the API server calls a URL).
	Hosts []string
	// SecretName holds the self-signed certificate (default
	// portico-webhook-cert); ConfigName is the ValidatingWebhookConfiguration
	// whose caBundle is kept current (default portico-validating-webhook).
	SecretName, ConfigName string
	// CertDir is where the certificate files are written (default a new
	// temporary folder).
	CertDir string
}

// WebhookPath is the path the validating webhook is served on.
const WebhookPath = "/validate-portico-dev-v1alpha1"

func (w *WebhookOptions) defaults(ns string) error {
	if w.ServiceName == "" {
		w.ServiceName = "portico-webhook"
	}
	if w.SecretName == "" {
		w.SecretName = "portico-webhook-cert"
	}
	if w.ConfigName == "" {
		w.ConfigName = "portico-validating-webhook"
	}
	if w.Port == 0 {
		w.Port = 9443
	}
	w.Hosts = append(w.Hosts, w.ServiceName, w.ServiceName+"."+ns, w.ServiceName+"."+ns+".svc", w.ServiceName+"."+ns+".svc.cluster.local")
	if w.CertDir == "" {
		dir, err := os.MkdirTemp("", "portico-webhook-")
		if err != nil {
			return err
		}
		w.CertDir = dir
	}
	return nil
}

// setupWebhook makes sure a certificate exists before the server starts,
// registers the handler and keeps the caBundle current.
func setupWebhook(mgr manager.Manager, o Options) error {
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ca, err := ensureCert(ctx, c, o.Namespace, o.Webhook)
	if err != nil {
		return fmt.Errorf("webhook certificate: %w", err)
	}
	mgr.GetWebhookServer().Register(WebhookPath, &admission.Webhook{Handler: &validator{reader: mgr.GetAPIReader(), namespace: o.Namespace}})
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		for {
			// Look again soon while the configuration is missing (it may be
			// installed after the controller), then once a minute.
			next := time.Minute
			if err := patchCABundle(ctx, c, o.Webhook.ConfigName, ca); err != nil {
				next = 2 * time.Second
				if !kerrors.IsNotFound(err) {
					mgr.GetLogger().Error(err, "updating the webhook caBundle", "config", o.Webhook.ConfigName)
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(next):
			}
		}
	}))
}

// ensureCert reads the certificate Secret, creating or renewing it when it is
// missing, expiring within 30 days or lacks a host, and writes tls.crt and
// tls.key to the cert dir. It returns the CA bundle.
func ensureCert(ctx context.Context, c client.Client, ns string, w WebhookOptions) ([]byte, error) {
	var s corev1.Secret
	key := types.NamespacedName{Namespace: ns, Name: w.SecretName}
	err := c.Get(ctx, key, &s)
	if err != nil && !kerrors.IsNotFound(err) {
		return nil, err
	}
	found := err == nil
	if !found || !certValid(s.Data["tls.crt"], w.Hosts) {
		crt, priv, err := selfSigned(w.Hosts)
		if err != nil {
			return nil, err
		}
		s.Data = map[string][]byte{"tls.crt": crt, "tls.key": priv, "ca.crt": crt}
		s.Type = corev1.SecretTypeTLS
		if found {
			err = c.Update(ctx, &s)
		} else {
			s.ObjectMeta = metav1.ObjectMeta{Namespace: ns, Name: w.SecretName}
			err = c.Create(ctx, &s)
			if kerrors.IsAlreadyExists(err) { // another replica won: use its certificate
				err = c.Get(ctx, key, &s)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	for name, data := range map[string][]byte{"tls.crt": s.Data["tls.crt"], "tls.key": s.Data["tls.key"]} {
		if err := os.WriteFile(filepath.Join(w.CertDir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return s.Data["ca.crt"], nil
}

func certValid(pemData []byte, hosts []string) bool {
	b, _ := pem.Decode(pemData)
	if b == nil {
		return false
	}
	crt, err := x509.ParseCertificate(b.Bytes)
	if err != nil || time.Until(crt.NotAfter) < 30*24*time.Hour {
		return false
	}
	for _, h := range hosts {
		if crt.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// selfSigned returns a PEM certificate, valid for a year for hosts, that is
// its own CA, and its PEM key.
func selfSigned(hosts []string) ([]byte, []byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if _, err := tls.X509KeyPair(crt, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, nil, err
	}
	return crt, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// patchCABundle sets caBundle on every webhook of the configuration, writing
// only when one differs.
func patchCABundle(ctx context.Context, c client.Client, name string, ca []byte) error {
	var vwc admregv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &vwc); err != nil {
		return err
	}
	before := vwc.DeepCopy()
	for i := range vwc.Webhooks {
		if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, ca) {
			vwc.Webhooks[i].ClientConfig.CABundle = ca
		}
	}
	for i := range vwc.Webhooks {
		if !bytes.Equal(before.Webhooks[i].ClientConfig.CABundle, ca) {
			return c.Patch(ctx, &vwc, client.MergeFrom(before))
		}
	}
	return nil
}

// validator refuses a Portico object whose cross-object problems (overlap,
// missing reference, duplicate alias, aggregation length, invalid range) the
// controller would otherwise report in its status.
type validator struct {
	reader    client.Reader
	namespace string
}

func (v *validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	in, err := readInputs(ctx, v.reader, v.reader, v.namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	dec := admission.NewDecoder(Scheme())
	var kind, name string
	var peer *v1.BGPPeer
	switch req.Kind.Kind {
	case config.KindIPAddressPool:
		var o v1.IPAddressPool
		if err := dec.Decode(req, &o); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		in.Pools, kind, name = upsert(in.Pools, o, o.Name), req.Kind.Kind, o.Name
	case config.KindL2Advertisement:
		var o v1.L2Advertisement
		if err := dec.Decode(req, &o); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		in.L2Advertisements, kind, name = upsert(in.L2Advertisements, o, o.Name), req.Kind.Kind, o.Name
	case config.KindBGPAdvertisement:
		var o v1.BGPAdvertisement
		if err := dec.Decode(req, &o); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		in.BGPAdvertisements, kind, name = upsert(in.BGPAdvertisements, o, o.Name), req.Kind.Kind, o.Name
	case config.KindBGPPeer:
		var o v1.BGPPeer
		if err := dec.Decode(req, &o); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		in.BGPPeers, kind, name, peer = upsert(in.BGPPeers, o, o.Name), req.Kind.Kind, o.Name, &o
	case config.KindCommunity:
		var o v1.Community
		if err := dec.Decode(req, &o); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		in.Communities, kind, name = upsert(in.Communities, o, o.Name), req.Kind.Kind, o.Name
	default:
		return admission.Allowed("")
	}
	var b config.Builder
	cfg := b.Build(in)
	problems := cfg.ProblemsFor(kind, name)
	if peer != nil {
		problems = peerProblems(cfg, peer, v.namespace)
	}
	if len(problems) == 0 {
		return admission.Allowed("")
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Field + ": " + p.Message
	}
	return admission.Denied(strings.Join(msgs, "; "))
}

// upsert returns items with the one named name replaced by o, or o added.
// A new object has no creation time yet: it is the newest.
func upsert[T any](items []T, o T, name string) []T {
	out := make([]T, 0, len(items)+1)
	for _, it := range items {
		if any(&it).(metav1.Object).GetName() != name {
			out = append(out, it)
		}
	}
	m := any(&o).(metav1.Object)
	if ts := m.GetCreationTimestamp(); ts.IsZero() {
		m.SetCreationTimestamp(metav1.NewTime(time.Now()))
	}
	return append(out, o)
}
