package controller

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/portico-lb/portico/internal/ipam"
)

func lbService(ann map[string]string, fams ...corev1.IPFamily) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s", Annotations: ann},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: fams},
	}
}

func TestParseRequestErrorsNameTheAnnotation(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		fams []corev1.IPFamily
		want string
	}{
		{map[string]string{AnnLoadBalancerIPs: "192.0.2.1,192.0.2.2,2001:db8::1"}, nil, "portico.dev/loadBalancerIPs: \"192.0.2.1,192.0.2.2,2001:db8::1\" lists 3 addresses"},
		{map[string]string{AnnLoadBalancerIPs: "192.0.2.1,192.0.2.2"}, nil, "192.0.2.1 and 192.0.2.2 are both IPv4"},
		{map[string]string{AnnLoadBalancerIPs: "192.0.2.300"}, nil, "\"192.0.2.300\" is not an IP address"},
		{map[string]string{AnnLoadBalancerIPs: "2001:db8::1"}, []corev1.IPFamily{corev1.IPv4Protocol}, "2001:db8::1 is IPv6, but the Service's ipFamilies are IPv4"},
		{map[string]string{AnnAllowSharedIP: "cluster:"}, nil, "portico.dev/allow-shared-ip: \"cluster:\" names no key"},
	} {
		_, err := ParseRequest(lbService(tc.ann, tc.fams...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.ann, err, tc.want)
		}
	}
}

func TestParseRequestAliasesAndFamilies(t *testing.T) {
	s := lbService(map[string]string{
		"metallb.universe.tf/loadBalancerIPs": "2001:db8::5, 192.0.2.5",
		"metallb.io/allow-shared-ip":          "k",
		AnnAddressPool:                        "a",
		"metallb.io/address-pool":             "b",
	}, corev1.IPv6Protocol, corev1.IPv4Protocol)
	s.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicyRequireDualStack)
	r, err := ParseRequest(s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Pool != "a" || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "metallb.io/address-pool") {
		t.Errorf("pool %q warnings %v", r.Pool, r.Warnings)
	}
	if r.Service.SharingKey != "cluster:k" {
		t.Errorf("MetalLB sharing key %q, want cluster-wide", r.Service.SharingKey)
	}
	if len(r.IPs) != 2 || r.Families[0] != ipam.IPv6 || !r.RequireAll {
		t.Errorf("request %+v", r)
	}
}

func TestIngressMatchesNormalises(t *testing.T) {
	ips := []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")}
	stored := []corev1.LoadBalancerIngress{{IP: "2001:db8:0::1"}, {IP: "192.0.2.1", IPMode: new(corev1.LoadBalancerIPModeVIP)}}
	if !IngressMatches(stored, ips) {
		t.Error("an unset ipMode and a non-canonical IPv6 spelling must match")
	}
	stored[1].IPMode = new(corev1.LoadBalancerIPModeProxy)
	if IngressMatches(stored, ips) {
		t.Error("ipMode Proxy must not match")
	}
	if IngressMatches(stored[:1], ips) {
		t.Error("a missing address must not match")
	}
}

func TestHandles(t *testing.T) {
	s := lbService(nil)
	if !Handles(s, "") || Handles(s, "x") {
		t.Error("class-less Service: handled by the default controller only")
	}
	s.Spec.LoadBalancerClass = new("x")
	if Handles(s, "") || !Handles(s, "x") {
		t.Error("class x: handled by --lb-class=x only")
	}
	s.Spec.Type = corev1.ServiceTypeClusterIP
	if Handles(s, "x") {
		t.Error("ClusterIP Services are not handled")
	}
}
