package controller

import (
	"context"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// CertValidity is how long a new certificate is valid (default a year).
	// It is renewed while the controller runs when less than a third of
	// that, at most 30 days, is left. Tests use seconds.
	CertValidity time.Duration
}

// WebhookPath is the path the validating webhook is served on.
const WebhookPath = "/validate-portico-dev-v1alpha1"

func (w *WebhookOptions) defaults(ns string) {
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
	if w.CertValidity == 0 {
		w.CertValidity = 365 * 24 * time.Hour
	}
}

// setupWebhook reads (or creates) the certificate before the server starts,
// registers the handler and keeps the certificate and the caBundle current
// in every replica.
func setupWebhook(mgr manager.Manager, o Options, k *certKeeper) error {
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	k.c, k.log = c, mgr.GetLogger().WithName("webhook-certificate")
	if o.WrapClient != nil {
		k.c = o.WrapClient(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.start(ctx); err != nil {
		return err
	}
	mgr.GetWebhookServer().Register(WebhookPath, &admission.Webhook{Handler: &validator{reader: mgr.GetAPIReader(), namespace: o.Namespace}})
	if err := mgr.Add(everyReplica(func(ctx context.Context) error { return k.watch(ctx, mgr.GetConfig()) })); err != nil {
		return err
	}
	return mgr.Add(everyReplica(k.run))
}

// everyReplica is a runnable that runs whether or not this replica leads.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (f everyReplica) NeedLeaderElection() bool        { return false }

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
