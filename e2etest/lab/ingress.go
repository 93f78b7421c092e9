package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// IngressPath sends a path prefix of an Ingress's host to a backend Service.
type IngressPath struct {
	Prefix, Service string
}

// NewIngress is an Ingress of class IngressClass in AppsNamespace for host,
// one Prefix path per route to port BackendPort of its Service, with TLS
// from Secret tlsSecret when that is not empty.
func NewIngress(name, host, tlsSecret string, routes ...IngressPath) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: AppsNamespace, Name: name},
		Spec:       networkingv1.IngressSpec{IngressClassName: ptr.To(IngressClass)},
	}
	var paths []networkingv1.HTTPIngressPath
	for _, r := range routes {
		paths = append(paths, networkingv1.HTTPIngressPath{
			Path: r.Prefix, PathType: ptr.To(networkingv1.PathTypePrefix),
			Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: r.Service, Port: networkingv1.ServiceBackendPort{Number: BackendPort},
			}},
		})
	}
	ing.Spec.Rules = []networkingv1.IngressRule{{Host: host,
		IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}}
	if tlsSecret != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: tlsSecret}}
	}
	return ing
}

// IngressResponse is an answer through the Ingress controller.
type IngressResponse struct {
	Status int
	Body   string
	// Answer is the backend pod's line, when a pod answered.
	Answer Answer
	// Cert is the certificate the controller presented (HTTPS only).
	Cert *x509.Certificate
}

// IngressGet asks rawURL (http or https, a host name and a path) from
// namespace ns over a new connection to ip, as `curl --resolve HOST:PORT:IP`
// does. Over HTTPS the certificate must be valid for the host and signed by
// roots; with roots nil nothing is checked (to look at what was presented).
// Any HTTP status is an answer, not an error.
func IngressGet(ctx context.Context, ns string, ip netip.Addr, rawURL string, roots *x509.CertPool, timeout time.Duration) (IngressResponse, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return IngressResponse{}, err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	dial := DialIn(ns)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial(ctx, network, net.JoinHostPort(ip.String(), port))
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots, InsecureSkipVerify: roots == nil},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return IngressResponse{}, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return IngressResponse{}, fmt.Errorf("GET %s at %s from %s: %w", rawURL, ip, ns, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return IngressResponse{}, fmt.Errorf("GET %s at %s from %s: %w", rawURL, ip, ns, err)
	}
	r := IngressResponse{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		r.Cert = resp.TLS.PeerCertificates[0]
	}
	r.Answer, _ = ParseAnswer(r.Body)
	return r, nil
}

// Curl runs curl in namespace ns (--silent --show-error --fail, at most
// timeout) with args, as a user there would, and returns its output with
// surrounding space trimmed; the error quotes curl.
func Curl(ctx context.Context, ns string, timeout time.Duration, args ...string) (string, error) {
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)
	argv := append([]string{"netns", "exec", ns, "curl", "--silent", "--show-error", "--fail", "--max-time", secs}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("curl %s from %s: %v: %s", strings.Join(args, " "), ns, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// ResolveArgs are curl's arguments for rawURL at ip: --resolve HOST:PORT:IP
// (as if DNS named ip) and, with caFile, --cacert.
func ResolveArgs(rawURL string, ip netip.Addr, caFile string) []string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return []string{rawURL}
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	host := ip.String()
	if ip.Is6() {
		host = "[" + host + "]"
	}
	args := []string{"--resolve", u.Hostname() + ":" + port + ":" + host}
	if caFile != "" {
		args = append(args, "--cacert", caFile)
	}
	return append(args, rawURL)
}

// WaitIngressAnswer asks rawURL at ip from namespace ns every interval (each
// request on a new connection, with its own timeout) until a backend pod's
// answer satisfies ok, and returns the probe of that answer (Probe.Node is
// the node it came through).
func WaitIngressAnswer(ctx context.Context, ns string, ip netip.Addr, rawURL string, roots *x509.CertPool,
	interval time.Duration, ok func(Answer) bool) (Probe, error) {
	get := func(ctx context.Context, ip netip.Addr, timeout time.Duration) (string, error) {
		r, err := IngressGet(ctx, ns, ip, rawURL, roots, timeout)
		if err != nil {
			return "", err
		}
		if r.Answer.Backend == "" || !ok(r.Answer) {
			return "", fmt.Errorf("GET %s: %d %q", rawURL, r.Status, r.Body)
		}
		return r.Answer.Via, nil
	}
	return waitHTTP(ctx, get, ip, interval, nil)
}
