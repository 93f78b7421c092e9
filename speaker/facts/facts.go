// Package facts gathers, once per recompute, what every protocol's plan
// decides from: the validated configuration (package config), the
// load-balancer IPs this speaker's class serves, grouped by IP with their
// pool, traffic policy and the nodes holding ready endpoints, and the nodes
// with their labels and eligibility. The L2 plan (l2plan) and the BGP plan
// (bgpplan) both read Facts, so they agree on which IP belongs to which pool
// and which nodes may announce.
//
// Gather is a pure function of the objects it is given; every output is
// sorted, so the same objects in any order give the same Facts.
package facts

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-lb/portico/internal/config"
)

// ExcludeLabel marks nodes that must not receive load-balancer traffic.
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// PoolAnnotations name the pool the controller allocated a Service's IP
// from; Portico's own first, then MetalLB's aliases.
var PoolAnnotations = []string{
	"portico.dev/ip-allocated-from-pool",
	"metallb.io/ip-allocated-from-pool",
	"metallb.universe.tf/ip-allocated-from-pool",
}

// Objects are the cached objects the facts come from. Slices may be in any
// order.
type Objects struct {
	// LocalNode is this speaker's node name.
	LocalNode string
	// LBClass is the loadBalancerClass this speaker serves; "" serves
	// Services without a class.
	LBClass string
	Config  *config.Config
	// Services are the Services as ServiceOf reduces them (see Reduce).
	Services []*Service
	// Endpoints are the EndpointSlices as EndpointsOf reduces them.
	Endpoints []*SliceEndpoints
	Nodes     []*corev1.Node
}

// SliceEndpoints is what the plans read of one EndpointSlice: its Service
// and the nodes holding its ready endpoints. The speaker caches
// EndpointSlices in this form (about 200 bytes, where a trimmed
// EndpointSlice took over 1,000: one is cached per Service).
type SliceEndpoints struct {
	// Service is the slice's Service (kubernetes.io/service-name label);
	// zero when the slice names none or has no ready endpoint.
	Service types.NamespacedName
	// Nodes hold at least one ready endpoint of the slice, once each,
	// in the slice's order.
	Nodes []string
}

// EndpointsOf reduces es to what the plans read. node returns the string
// to keep for a node name (the speaker shares one copy per node).
func EndpointsOf(es *discoveryv1.EndpointSlice, node func(string) string) SliceEndpoints {
	var out SliceEndpoints
	svc := es.Labels[discoveryv1.LabelServiceName]
	if svc == "" {
		return out // nothing to attribute its endpoints to
	}
	for _, ep := range es.Endpoints {
		if ep.NodeName == nil || *ep.NodeName == "" || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) ||
			slices.Contains(out.Nodes, *ep.NodeName) {
			continue
		}
		out.Nodes = append(out.Nodes, node(*ep.NodeName))
	}
	if len(out.Nodes) > 0 {
		out.Service = types.NamespacedName{Namespace: es.Namespace, Name: svc}
	}
	return out
}

// Facts are the inputs every protocol plan shares.
type Facts struct {
	LocalNode string
	Config    *config.Config
	// IPs are the served load-balancer IPs, sorted by address.
	IPs []IP
	// Nodes are sorted by name.
	Nodes []Node
}

// IP is one load-balancer IP and the Services using it.
type IP struct {
	Addr netip.Addr
	// Services using the IP (more than one when shared), sorted.
	Services []types.NamespacedName
	// Pool is the pool in effect the IP belongs to; "" when none has it.
	Pool string
	// Local is true when every Service sharing the IP has
	// externalTrafficPolicy: Local.
	Local bool
	// EndpointNodes are the nodes holding a ready endpoint of any of the
	// Services, sorted.
	EndpointNodes []string
}

// Node is one Kubernetes node as the plans see it.
type Node struct {
	Name   string
	Labels map[string]string
	// Excluded: the node carries ExcludeLabel.
	Excluded bool
	// NetworkUnavailable: the node's NetworkUnavailable condition is True.
	NetworkUnavailable bool
}

// Eligible reports whether the node may announce load-balancer IPs at all.
func (n Node) Eligible() bool { return !n.Excluded && !n.NetworkUnavailable }

// Node returns the node named name.
func (f *Facts) Node(name string) (Node, bool) {
	i, ok := slices.BinarySearchFunc(f.Nodes, name, func(n Node, name string) int { return strings.Compare(n.Name, name) })
	if !ok {
		return Node{}, false
	}
	return f.Nodes[i], true
}

// Gather computes the facts from the objects.
func Gather(o Objects) Facts {
	f := Facts{LocalNode: o.LocalNode, Config: o.Config}
	if f.Config == nil {
		f.Config = (&config.Builder{}).Build(config.Inputs{})
	}
	for _, n := range o.Nodes {
		fn := Node{Name: n.Name, Labels: n.Labels}
		_, fn.Excluded = n.Labels[ExcludeLabel]
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
				fn.NetworkUnavailable = true
			}
		}
		f.Nodes = append(f.Nodes, fn)
	}
	slices.SortFunc(f.Nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	f.IPs = groupIPs(o, poolsByAge(f.Config))
	return f
}

// poolsByAge returns the pools in effect, older first: an older pool keeps
// the addresses it shares with a newer one (see package ipam).
func poolsByAge(c *config.Config) []config.Pool {
	out := slices.Clone(c.Pools())
	slices.SortStableFunc(out, func(a, b config.Pool) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Name, b.Name))
	})
	return out
}

// poolFor returns the name of the pool ip belongs to: the one the controller
// recorded, if it contains ip, else the oldest pool containing it.
func poolFor(pools []config.Pool, ip netip.Addr, hint string) string {
	first := ""
	for _, p := range pools {
		if !p.Contains(ip) {
			continue
		}
		if p.Name == hint {
			return p.Name
		}
		if first == "" {
			first = p.Name
		}
	}
	return first
}

// Service is what the plans and the speaker's status read of a Service.
// The speaker caches Services in this form (about 250 bytes, where a
// trimmed corev1.Service took over 750: one is cached per Service).
type Service struct {
	types.NamespacedName
	UID types.UID
	// LoadBalancer: spec.type is LoadBalancer.
	LoadBalancer bool
	// Deleting: the Service has a deletionTimestamp.
	Deleting bool
	// Class is spec.loadBalancerClass; "" when unset.
	Class string
	// Local: externalTrafficPolicy is Local.
	Local bool
	// PoolHint is the first of PoolAnnotations set, trimmed.
	PoolHint string
	// IPs are serviceIPs of the Service.
	IPs []netip.Addr
}

// ServiceOf reduces svc to what the plans read. share returns the string
// to keep for a namespace or pool name (the speaker shares one copy).
func ServiceOf(svc *corev1.Service, share func(string) string) Service {
	out := Service{
		NamespacedName: types.NamespacedName{Namespace: share(svc.Namespace), Name: svc.Name},
		UID:            svc.UID,
		LoadBalancer:   svc.Spec.Type == corev1.ServiceTypeLoadBalancer,
		Deleting:       svc.DeletionTimestamp != nil,
		Local:          svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		IPs:            serviceIPs(svc),
	}
	if svc.Spec.LoadBalancerClass != nil {
		out.Class = share(*svc.Spec.LoadBalancerClass)
	}
	for _, a := range PoolAnnotations {
		if v := svc.Annotations[a]; v != "" {
			out.PoolHint = share(strings.TrimSpace(v))
			break
		}
	}
	return out
}

// Reduce applies reduce (ServiceOf, EndpointsOf) to each object, keeping
// strings as they are: for callers holding whole objects.
func Reduce[O, F any](in []*O, reduce func(*O, func(string) string) F) []*F {
	out := make([]*F, 0, len(in))
	for _, o := range in {
		f := reduce(o, func(s string) string { return s })
		out = append(out, &f)
	}
	return out
}

// Serves reports whether a speaker with class lbClass handles svc.
func (svc *Service) Serves(lbClass string) bool {
	return svc.LoadBalancer && !svc.Deleting && svc.Class == lbClass
}

// serviceIPs returns the valid IPs in svc's load-balancer status, sorted and
// deduplicated.
func serviceIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil && ip.Zone() == "" {
			out = append(out, ip.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func groupIPs(o Objects, pools []config.Pool) []IP {
	endpoints := readyEndpointNodes(o.Endpoints)
	services := slices.Clone(o.Services)
	slices.SortFunc(services, func(a, b *Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	// out[index[addr]] is addr's IP and hints[index[addr]] the pool
	// annotation of its first Service: one map and two arrays, not two
	// small objects per IP (this runs on every change).
	index := make(map[netip.Addr]int, len(services))
	out := make([]IP, 0, len(services))
	hints := make([]string, 0, len(services))
	for _, svc := range services {
		if !svc.Serves(o.LBClass) {
			continue
		}
		key := svc.NamespacedName
		for _, addr := range svc.IPs {
			i, ok := index[addr]
			if !ok {
				i = len(out)
				index[addr] = i
				out = append(out, IP{Addr: addr, Local: true})
				hints = append(hints, svc.PoolHint)
			}
			ip := &out[i]
			ip.Services = append(ip.Services, key)
			// A shared IP is Local only when every sharer is; the
			// endpoints of all sharers count.
			ip.Local = ip.Local && svc.Local
			ip.EndpointNodes = append(ip.EndpointNodes, endpoints[key]...)
		}
	}
	for i := range out {
		ip := &out[i]
		slices.Sort(ip.EndpointNodes)
		ip.EndpointNodes = slices.Compact(ip.EndpointNodes)
		ip.Pool = poolFor(pools, ip.Addr, hints[i])
	}
	slices.SortFunc(out, func(a, b IP) int { return a.Addr.Compare(b.Addr) })
	return out
}

// readyEndpointNodes maps each Service to the nodes holding a ready endpoint
// of it.
func readyEndpointNodes(in []*SliceEndpoints) map[types.NamespacedName][]string {
	out := make(map[types.NamespacedName][]string, len(in))
	for _, e := range in {
		if e.Service.Name == "" || len(e.Nodes) == 0 {
			continue
		}
		if prev, ok := out[e.Service]; ok {
			out[e.Service] = append(prev, e.Nodes...)
		} else {
			out[e.Service] = slices.Clip(e.Nodes) // appending copies: e is the cache's
		}
	}
	return out
}
