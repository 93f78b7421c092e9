package controller

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/ipam"
)

// Service annotations read and written by the controller (documented in
// the API package, from which docs/reference.md is generated).
const (
	AnnLoadBalancerIPs   = porticov1.AnnotationLoadBalancerIPs
	AnnAddressPool       = porticov1.AnnotationAddressPool
	AnnAllowSharedIP     = porticov1.AnnotationAllowSharedIP
	AnnAllocatedFromPool = porticov1.AnnotationIPAllocatedFromPool
)

// metallbPrefixes are the MetalLB annotation prefixes read as aliases, in the
// order they are preferred when both are set.
var metallbPrefixes = []string{"metallb.io/", "metallb.universe.tf/"}

// Request is what a Service asks of the allocator.
type Request struct {
	// Families are the families to allocate, primary first.
	Families []ipam.Family
	// RequireAll is true when every family must be allocated (SingleStack,
	// RequireDualStack); PreferDualStack needs only one.
	RequireAll bool
	// IPs are the requested addresses, at most one per family.
	IPs []netip.Addr
	// Pool is the requested pool, or "".
	Pool string
	// Service is the allocator's view (without namespace labels).
	Service ipam.Service
	// Warnings are conflicts between annotations that were resolved, in words.
	Warnings []string
}

// RequestError is a Service field or annotation the controller cannot use.
type RequestError struct {
	Field   string // annotation or field, e.g. portico.dev/loadBalancerIPs
	Message string
}

func (e *RequestError) Error() string { return e.Field + ": " + e.Message }

// Handles reports whether the controller with class (empty: the default
// controller) is responsible for svc.
func Handles(svc *corev1.Service, class string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return class == ""
	}
	return *svc.Spec.LoadBalancerClass == class
}

// annotation returns the value of a Portico annotation, falling back to its
// MetalLB aliases. alias is true when the value came from a MetalLB alias.
// The warning is set when a Portico and a MetalLB form are both present.
func annotation(svc *corev1.Service, name string) (value string, alias bool, warning string) {
	suffix := strings.TrimPrefix(name, "portico.dev/")
	own, hasOwn := svc.Annotations[name]
	for _, p := range metallbPrefixes {
		v, ok := svc.Annotations[p+suffix]
		if !ok {
			continue
		}
		if hasOwn {
			return own, false, fmt.Sprintf("both %s and %s%s are set; using %s=%q and ignoring the MetalLB annotation (remove one of them)", name, p, suffix, name, own)
		}
		return v, true, ""
	}
	return own, false, ""
}

// ServiceFacts returns the allocator's view of svc: its key, sharing rules and
// labels. It never fails, so state can be rebuilt from any Service.
func ServiceFacts(svc *corev1.Service) ipam.Service {
	out := ipam.Service{
		Key:    svc.Namespace + "/" + svc.Name,
		Labels: svc.Labels,
		Local:  svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
	}
	key, alias, _ := annotation(svc, AnnAllowSharedIP)
	key = strings.TrimSpace(key)
	if alias && key != "" && !strings.HasPrefix(key, "cluster:") {
		key = "cluster:" + key // MetalLB sharing keys are cluster-wide
	}
	out.SharingKey = key
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		out.Ports = append(out.Ports, ipam.Port{Protocol: proto, Port: uint16(p.Port)})
	}
	if out.Local {
		sel := make([]string, 0, len(svc.Spec.Selector))
		for k, v := range svc.Spec.Selector {
			sel = append(sel, k+"="+v)
		}
		slices.Sort(sel)
		out.BackendKey = strings.Join(sel, ",")
	}
	return out
}

// ParseRequest reads what svc asks for. The error names the annotation or
// field at fault and says how to fix it; a Service with a bad request keeps
// the addresses it already has.
func ParseRequest(svc *corev1.Service) (Request, error) {
	r := Request{Service: ServiceFacts(svc)}
	for _, name := range []string{AnnLoadBalancerIPs, AnnAddressPool, AnnAllowSharedIP} {
		if _, _, w := annotation(svc, name); w != "" {
			r.Warnings = append(r.Warnings, w)
		}
	}
	if strings.TrimSpace(r.Service.SharingKey) == "cluster:" {
		return r, &RequestError{AnnAllowSharedIP, `"cluster:" names no key; write cluster:<key> to share across namespaces, or a plain key to share within the namespace`}
	}
	pool, _, _ := annotation(svc, AnnAddressPool)
	r.Pool = strings.TrimSpace(pool)

	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			r.Families = append(r.Families, ipam.IPv4)
		case corev1.IPv6Protocol:
			r.Families = append(r.Families, ipam.IPv6)
		}
	}
	policy := corev1.IPFamilyPolicySingleStack
	if svc.Spec.IPFamilyPolicy != nil {
		policy = *svc.Spec.IPFamilyPolicy
	}
	if policy == corev1.IPFamilyPolicySingleStack && len(r.Families) > 1 {
		r.Families = r.Families[:1]
	}
	r.RequireAll = policy != corev1.IPFamilyPolicyPreferDualStack

	ips, err := requestedIPs(svc)
	if err != nil {
		return r, err
	}
	if len(r.Families) == 0 { // no ipFamilies (headless or old objects): follow the request
		for _, ip := range ips {
			r.Families = append(r.Families, ipam.FamilyOf(ip))
		}
		if len(r.Families) == 0 {
			r.Families = []ipam.Family{ipam.IPv4}
		}
	}
	for _, ip := range ips {
		if !slices.Contains(r.Families, ipam.FamilyOf(ip)) {
			return r, &RequestError{requestField(svc), fmt.Sprintf("%s is %s, but the Service's ipFamilies are %s (ipFamilyPolicy %s); request an address of those families, or make the Service dual-stack",
				ip, ipam.FamilyOf(ip), familiesString(r.Families), policy)}
		}
	}
	if len(ips) > 0 && r.RequireAll && len(ips) < len(r.Families) {
		return r, &RequestError{requestField(svc), fmt.Sprintf("the Service is %s and needs %s addresses, but only %s is requested; request one address per family, comma-separated",
			policy, familiesString(r.Families), ips[0])}
	}
	r.IPs = ips
	return r, nil
}

func familiesString(fs []ipam.Family) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.String()
	}
	return strings.Join(s, " and ")
}

func requestField(svc *corev1.Service) string {
	if v, _, _ := annotation(svc, AnnLoadBalancerIPs); v != "" {
		return AnnLoadBalancerIPs
	}
	return "spec.loadBalancerIP"
}

// requestedIPs parses the loadBalancerIPs annotation (or its aliases), else
// spec.loadBalancerIP: at most one address per family.
func requestedIPs(svc *corev1.Service) ([]netip.Addr, error) {
	raw, _, _ := annotation(svc, AnnLoadBalancerIPs)
	field := AnnLoadBalancerIPs
	if strings.TrimSpace(raw) == "" {
		raw, field = svc.Spec.LoadBalancerIP, "spec.loadBalancerIP"
	}
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	parts := strings.Split(raw, ",")
	if len(parts) > 2 {
		return nil, &RequestError{field, fmt.Sprintf("%q lists %d addresses; give at most two, one IPv4 and one IPv6, comma-separated (e.g. 192.0.2.10,2001:db8::10)", raw, len(parts))}
	}
	var out []netip.Addr
	for _, p := range parts {
		p = strings.TrimSpace(p)
		ip, err := netip.ParseAddr(p)
		if err != nil || ip.Zone() != "" || ip.Is4In6() {
			return nil, &RequestError{field, fmt.Sprintf("%q is not an IP address; write one IPv4 and/or one IPv6 address, comma-separated, without prefix lengths (e.g. 192.0.2.10,2001:db8::10)", p)}
		}
		if len(out) == 1 && ipam.FamilyOf(out[0]) == ipam.FamilyOf(ip) {
			return nil, &RequestError{field, fmt.Sprintf("%s and %s are both %s; a Service gets at most one address per family", out[0], ip, ipam.FamilyOf(ip))}
		}
		out = append(out, ip)
	}
	return out, nil
}

// DesiredIngress is the status.loadBalancer.ingress for ips, in the order given.
func DesiredIngress(ips []netip.Addr) []corev1.LoadBalancerIngress {
	out := make([]corev1.LoadBalancerIngress, len(ips))
	vip := corev1.LoadBalancerIPModeVIP
	for i, ip := range ips {
		m := vip
		out[i] = corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &m}
	}
	return out
}

// IngressIPs returns the addresses in svc's status, skipping entries that are
// not IPs.
func IngressIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

// IngressMatches reports whether the stored ingress already says ips. Entries
// are normalised first: an unset ipMode is VIP (the API server fills it in),
// and IPs compare as addresses, not strings.
func IngressMatches(stored []corev1.LoadBalancerIngress, ips []netip.Addr) bool {
	if len(stored) != len(ips) {
		return false
	}
	for i, in := range stored {
		ip, err := netip.ParseAddr(in.IP)
		if err != nil || ip != ips[i] || in.Hostname != "" || len(in.Ports) > 0 {
			return false
		}
		if in.IPMode != nil && *in.IPMode != corev1.LoadBalancerIPModeVIP {
			return false
		}
	}
	return true
}
