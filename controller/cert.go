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
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portico-lb/portico/internal/apiwait"
)

// certKeeper keeps the webhook's self-signed certificate for as long as the
// controller runs, in every replica (leader or not):
//
//   - the Secret is the one source of truth: tls.crt and tls.key are served,
//     ca.crt is the caBundle: the current certificate (its own CA) and, for
//     two rounds after a renewal, the one it replaced, so that a replica
//     still serving the previous certificate stays trusted until it reloads
//     (and a certificate replaced because it leaked is not trusted for long);
//   - every round (when the Secret changes, and at most a minute apart)
//     reads the Secret, renews it when
//     less than a third of the validity (at most 30 days) is left or it does
//     not fit the hosts, serves what it holds (no restart), and sets the
//     caBundle from it;
//   - two replicas writing at once: the loser's create or update fails
//     (already exists, conflict) and it reads the winner's certificate;
//   - the caBundle is never set back to an older CA than it holds, so a
//     replica that read the Secret just before another renewed it does not
//     undo the other's change.
type certKeeper struct {
	c   client.Client // uncached: the Secret is read by name only
	ns  string
	o   WebhookOptions
	log logr.Logger

	changed chan struct{} // capacity 1: the Secret changed, look now

	mu     sync.Mutex
	served *tls.Certificate
	crt    []byte // PEM of served
	ca     []byte // ca.crt of the Secret last read
}

func newCertKeeper(ns string, o WebhookOptions) *certKeeper {
	return &certKeeper{ns: ns, o: o, log: logr.Discard(), changed: make(chan struct{}, 1)}
}

// getCertificate serves the certificate last read from the Secret.
func (k *certKeeper) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.served == nil {
		return nil, errors.New("no webhook certificate yet")
	}
	return k.served, nil
}

// renewBefore is how long before its expiry a certificate is renewed.
func (k *certKeeper) renewBefore() time.Duration {
	return min(k.o.CertValidity/3, 30*24*time.Hour)
}

// every is the time between two rounds: short enough that a replica picks a
// renewed certificate up long before the previous one expires.
func (k *certKeeper) every() time.Duration {
	return min(time.Minute, k.renewBefore()/4)
}

// watch tells the keeper when the Secret changes (another replica renewed
// it, or it was deleted to rotate the certificate). It lists and watches that
// one Secret by name, which is all the role allows.
func (k *certKeeper) watch(ctx context.Context, cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	secrets := cs.CoreV1().Secrets(k.ns)
	byName := fields.OneTermEqualSelector("metadata.name", k.o.SecretName).String()
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = byName
			return secrets.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = byName
			return secrets.Watch(ctx, o)
		},
	}
	inf := toolscache.NewSharedIndexInformer(apiwait.Wrap(lw, 250*time.Millisecond), &corev1.Secret{}, 0, toolscache.Indexers{})
	kick := func() {
		select {
		case k.changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	}); err != nil {
		return err
	}
	inf.RunWithContext(ctx)
	return nil
}

// run keeps the certificate and the caBundle current until ctx ends.
func (k *certKeeper) run(ctx context.Context) error {
	for {
		next := k.every()
		if err := k.sync(ctx); err != nil {
			k.log.Error(err, "keeping the webhook certificate", "secret", k.ns+"/"+k.o.SecretName)
			next = min(next, 2*time.Second)
		}
		if err := k.patchCABundle(ctx); err != nil {
			// Look again soon while the configuration is missing (it may be
			// installed after the controller) or changed under us.
			next = min(next, 2*time.Second)
			if !kerrors.IsNotFound(err) && !kerrors.IsConflict(err) {
				k.log.Error(err, "updating the webhook caBundle", "config", k.o.ConfigName)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-k.changed:
		case <-time.After(next):
		}
	}
}

// sync reads the Secret, creating or renewing the certificate when needed,
// and serves what the Secret holds.
func (k *certKeeper) sync(ctx context.Context) error {
	key := types.NamespacedName{Namespace: k.ns, Name: k.o.SecretName}
	var err error
	// A lost race (the other replica created or renewed at the same time)
	// is settled by reading again: its certificate will do.
	for range 5 {
		var s corev1.Secret
		err = k.c.Get(ctx, key, &s)
		found := err == nil
		if err != nil && !kerrors.IsNotFound(err) {
			return err
		}
		if found && k.usable(&s) {
			read := s.DeepCopy()
			switch err = k.dropPrevious(ctx, &s); {
			case err == nil:
				return k.serve(&s)
			case kerrors.IsConflict(err):
				continue
			}
			return errors.Join(err, k.serve(read))
		}
		if err = k.renew(ctx, &s, found); err == nil {
			k.log.Info("webhook certificate renewed", "secret", key.String())
			return k.serve(&s)
		}
		if !kerrors.IsConflict(err) && !kerrors.IsAlreadyExists(err) {
			return err
		}
	}
	return err
}

// usable says whether the Secret holds a key pair for every host that is not
// due for renewal.
func (k *certKeeper) usable(s *corev1.Secret) bool {
	if _, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"]); err != nil {
		return false
	}
	crt := parseCert(s.Data["tls.crt"])
	if crt == nil || time.Until(crt.NotAfter) < k.renewBefore() {
		return false
	}
	for _, h := range k.o.Hosts {
		if crt.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// annPreviousUntil on the Secret says until when ca.crt keeps the
// certificate a renewal replaced (RFC 3339).
const annPreviousUntil = "portico.dev/previous-ca-until"

// dropPrevious removes the replaced certificate from ca.crt once its time is
// up (a no-op otherwise), updating the Secret at the version read.
func (k *certKeeper) dropPrevious(ctx context.Context, s *corev1.Secret) error {
	until, err := time.Parse(time.RFC3339Nano, s.Annotations[annPreviousUntil])
	if _, has := s.Annotations[annPreviousUntil]; !has || (err == nil && time.Now().Before(until)) {
		return nil
	}
	s.Data["ca.crt"] = s.Data["tls.crt"]
	delete(s.Annotations, annPreviousUntil)
	return k.c.Update(ctx, s)
}

// renew writes a new certificate into s (created when !found, otherwise
// updated at the version read, so a concurrent change is a conflict). The
// caBundle keeps the certificates it replaces, while valid, for two rounds.
func (k *certKeeper) renew(ctx context.Context, s *corev1.Secret, found bool) error {
	crt, priv, err := selfSigned(k.o.Hosts, k.o.CertValidity)
	if err != nil {
		return err
	}
	ca := crt
	k.mu.Lock()
	previous := [][]byte{s.Data["tls.crt"], k.crt}
	k.mu.Unlock()
	for _, p := range previous {
		if c := parseCert(p); c != nil && time.Now().Before(c.NotAfter) && !bytes.Contains(ca, p) {
			ca = append(ca, p...)
		}
	}
	if !found {
		s.ObjectMeta = metav1.ObjectMeta{Namespace: k.ns, Name: k.o.SecretName}
		s.Type = corev1.SecretTypeTLS // the type of a Secret cannot change
	}
	delete(s.Annotations, annPreviousUntil)
	if len(ca) > len(crt) {
		metav1.SetMetaDataAnnotation(&s.ObjectMeta, annPreviousUntil, time.Now().Add(2*k.every()).Format(time.RFC3339Nano))
	}
	s.Data = map[string][]byte{"tls.crt": crt, "tls.key": priv, "ca.crt": ca}
	if found {
		return k.c.Update(ctx, s)
	}
	return k.c.Create(ctx, s)
}

// serve starts serving the Secret's certificate if it is not served yet.
func (k *certKeeper) serve(s *corev1.Secret) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ca = s.Data["ca.crt"]
	if len(k.ca) == 0 {
		k.ca = s.Data["tls.crt"]
	}
	if bytes.Equal(k.crt, s.Data["tls.crt"]) {
		return nil
	}
	pair, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		return err
	}
	if k.served != nil {
		k.log.Info("serving the renewed webhook certificate")
	}
	k.served, k.crt = &pair, s.Data["tls.crt"]
	return nil
}

// patchCABundle sets the caBundle read from the Secret on every webhook of
// the configuration, unless one already holds a newer CA (this replica's
// read of the Secret is older than another's renewal: the next round reads
// it). The patch carries the version read, so it cannot undo a change made
// in between.
func (k *certKeeper) patchCABundle(ctx context.Context) error {
	k.mu.Lock()
	ca := k.ca
	k.mu.Unlock()
	if len(ca) == 0 {
		return nil
	}
	var vwc admregv1.ValidatingWebhookConfiguration
	if err := k.c.Get(ctx, types.NamespacedName{Name: k.o.ConfigName}, &vwc); err != nil {
		return err
	}
	before := vwc.DeepCopy()
	changed := false
	for i := range vwc.Webhooks {
		cur := vwc.Webhooks[i].ClientConfig.CABundle
		if bytes.Equal(cur, ca) || newest(cur).After(newest(ca)) {
			continue
		}
		vwc.Webhooks[i].ClientConfig.CABundle = ca
		changed = true
	}
	if !changed {
		return nil
	}
	return k.c.Patch(ctx, &vwc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

// newest returns the latest NotBefore of the certificates in a PEM bundle.
func newest(bundle []byte) time.Time {
	var t time.Time
	for {
		var b *pem.Block
		b, bundle = pem.Decode(bundle)
		if b == nil {
			return t
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil && c.NotBefore.After(t) {
			t = c.NotBefore
		}
	}
}

func parseCert(pemData []byte) *x509.Certificate {
	b, _ := pem.Decode(pemData)
	if b == nil {
		return nil
	}
	crt, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	return crt
}

// selfSigned returns a PEM certificate for hosts, valid for validity, that is
// its own CA, and its PEM key.
func selfSigned(hosts []string, validity time.Duration) ([]byte, []byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0]},
		// NotBefore orders certificates (see newest): the issue time, less
		// a minute of clock skew between the replicas and the API server.
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
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
	key := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		return nil, nil, err
	}
	return crt, key, nil
}

// startCert reads (or creates) the certificate before the webhook server
// starts, so that it serves from its first request.
func (k *certKeeper) start(ctx context.Context) error {
	if err := k.sync(ctx); err != nil {
		return fmt.Errorf("webhook certificate: %w", err)
	}
	return nil
}
