package l2plan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/election"
	"github.com/portico-lb/portico/internal/ipam"
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

// Member is one live memberlist member as the speaker sees it.
type Member struct {
	Name string
	Meta Meta
}

// Inputs are the facts one speaker decides from. Slices may be in any
// order; Compute sorts what it needs.
type Inputs struct {
	// LocalNode is this speaker's node name.
	LocalNode string
	// LBClass is the loadBalancerClass this speaker serves; "" serves
	// Services without a class.
	LBClass string
	// LocalInterfaces is this node's own, freshest interface view (see
	// LocalInterfaces); it replaces what the local member published.
	LocalInterfaces []election.Interface
	// LocalLinks names every link on this node, to report
	// L2Advertisements naming links that do not exist.
	LocalLinks []string
	// Members are the live memberlist members, this node included.
	Members []Member

	Services         []*corev1.Service
	EndpointSlices   []*discoveryv1.EndpointSlice
	Nodes            []*corev1.Node
	Pools            []*porticov1.IPAddressPool
	L2Advertisements []*porticov1.L2Advertisement
}

// IPPlan is the decision for one L2 Service IP.
type IPPlan struct {
	IP netip.Addr
	// Services using the IP (more than one when shared), sorted.
	Services []types.NamespacedName
	// Pool the IP belongs to.
	Pool   string
	Result election.Result
}

// Problem is a configuration mistake this speaker noticed, worded for a
// user: which object, which field, what is wrong and what to do.
type Problem struct {
	Kind, Name, Field string
	Message           string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s %s: %s: %s", p.Kind, p.Name, p.Field, p.Message)
}

// Plan is the outcome of Compute.
type Plan struct {
	// IPs are the L2 Service IPs, sorted by address.
	IPs []IPPlan
	// Owned are the IPs this node announces, each with its interfaces
	// (sorted), in the form layer2.Announcer.SetOwned takes.
	Owned map[netip.Addr][]string
	// Problems are sorted.
	Problems []Problem
}

// OwnedCount returns how many owned IPs are announced on each interface.
func (p *Plan) OwnedCount() map[string]int {
	out := map[string]int{}
	for _, ifs := range p.Owned {
		for _, name := range ifs {
			out[name]++
		}
	}
	return out
}

// pool is a parsed IPAddressPool.
type pool struct {
	name    string
	created metav1.Time
	labels  labels.Set
	ranges  []ipam.Range
	ads     []string // L2Advertisements covering it, sorted
}

// ipGroup gathers the Services sharing one IP.
type ipGroup struct {
	services  []types.NamespacedName
	poolHint  string
	local     bool
	endpoints []string
}

// Compute turns the cached objects and the member view into election inputs,
// elects every L2 IP and says what this node announces.
func Compute(in Inputs) Plan {
	plan := Plan{Owned: map[netip.Addr][]string{}}
	pools := parsePools(in.Pools)
	nodes := sortedNodes(in.Nodes)
	ads, problems := advertisements(in, pools, nodes)
	plan.Problems = problems

	snap, err := election.NewSnapshot(electionNodes(in, nodes), ads)
	if err != nil { // names come from the API, unique and non-empty
		plan.Problems = append(plan.Problems, Problem{Kind: "Speaker", Name: in.LocalNode, Field: "election", Message: err.Error()})
		return plan
	}

	groups := groupIPs(in)
	ips := make([]netip.Addr, 0, len(groups))
	for ip := range groups {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	reqs := make([]election.Request, 0, len(ips))
	for _, ip := range ips {
		g := groups[ip]
		p := poolFor(pools, ip, g.poolHint)
		if p == nil || len(p.ads) == 0 {
			continue // not an L2 IP: no pool, or no L2Advertisement for its pool
		}
		reqs = append(reqs, election.Request{IP: ip, Advertisements: p.ads, LocalTrafficPolicy: g.local, EndpointNodes: g.endpoints})
		plan.IPs = append(plan.IPs, IPPlan{IP: ip, Services: g.services, Pool: p.name})
	}
	for i, r := range snap.ElectAll(reqs) {
		plan.IPs[i].Result = r
		if r.Node != in.LocalNode {
			continue
		}
		ifs := r.Interfaces
		if ifs == nil {
			for _, ifc := range in.LocalInterfaces {
				if ifc.Carrier {
					ifs = append(ifs, ifc.Name)
				}
			}
		}
		if len(ifs) > 0 {
			plan.Owned[r.IP] = slices.Clone(ifs)
		}
	}
	slices.SortFunc(plan.Problems, func(a, b Problem) int { return cmp.Compare(a.String(), b.String()) })
	plan.Problems = slices.Compact(plan.Problems)
	return plan
}

func parsePools(in []*porticov1.IPAddressPool) []*pool {
	out := make([]*pool, 0, len(in))
	for _, p := range in {
		pl := &pool{name: p.Name, created: p.CreationTimestamp, labels: labels.Set(p.Labels)}
		for _, a := range p.Spec.Addresses {
			// Bad entries are the controller's to report (pool condition);
			// the good ones still count.
			if r, err := ipam.ParseRange(string(a)); err == nil {
				pl.ranges = append(pl.ranges, r)
			}
		}
		out = append(out, pl)
	}
	// Older pools first: they keep overlapping addresses (see ipam).
	slices.SortFunc(out, func(a, b *pool) int {
		if !a.created.Equal(&b.created) {
			if a.created.Before(&b.created) {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.name, b.name)
	})
	return out
}

// poolFor returns the pool ip belongs to: the one the controller recorded,
// if it contains ip, else the oldest pool containing it.
func poolFor(pools []*pool, ip netip.Addr, hint string) *pool {
	var first *pool
	for _, p := range pools {
		if !slices.ContainsFunc(p.ranges, func(r ipam.Range) bool { return r.Contains(ip) }) {
			continue
		}
		if p.name == hint {
			return p
		}
		if first == nil {
			first = p
		}
	}
	return first
}

func sortedNodes(in []*corev1.Node) []*corev1.Node {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// advertisements resolves each L2Advertisement's pools and nodes, records on
// each pool which advertisements cover it, and reports mistakes.
func advertisements(in Inputs, pools []*pool, nodes []*corev1.Node) ([]election.Advertisement, []Problem) {
	sorted := slices.Clone(in.L2Advertisements)
	slices.SortFunc(sorted, func(a, b *porticov1.L2Advertisement) int { return cmp.Compare(a.Name, b.Name) })
	var out []election.Advertisement
	var problems []Problem
	for _, ad := range sorted {
		bad := func(field, format string, args ...any) {
			problems = append(problems, Problem{Kind: "L2Advertisement", Name: ad.Name, Field: field, Message: fmt.Sprintf(format, args...)})
		}
		poolSels := selectors(ad.Spec.IPAddressPoolSelectors, "spec.ipAddressPoolSelectors", bad)
		for _, p := range pools {
			all := len(ad.Spec.IPAddressPools) == 0 && len(ad.Spec.IPAddressPoolSelectors) == 0
			if all || slices.Contains(ad.Spec.IPAddressPools, p.name) || matchesAny(poolSels, p.labels) {
				p.ads = append(p.ads, ad.Name)
			}
		}
		nodeSels := selectors(ad.Spec.NodeSelectors, "spec.nodeSelectors", bad)
		ea := election.Advertisement{Name: ad.Name, Interfaces: slices.Clone(ad.Spec.Interfaces)}
		selectsLocal := false
		for _, n := range nodes {
			if len(ad.Spec.NodeSelectors) == 0 || matchesAny(nodeSels, labels.Set(n.Labels)) {
				ea.Nodes = append(ea.Nodes, n.Name)
				selectsLocal = selectsLocal || n.Name == in.LocalNode
			}
		}
		if selectsLocal {
			for _, name := range ad.Spec.Interfaces {
				if !slices.Contains(in.LocalLinks, name) {
					bad("spec.interfaces", "interface %q does not exist on node %s, so this node does not announce "+
						"the advertisement's IPs; fix the interface name or exclude the node with spec.nodeSelectors", name, in.LocalNode)
				}
			}
		}
		out = append(out, ea)
	}
	return out, problems
}

func selectors(in []metav1.LabelSelector, field string, bad func(field, format string, args ...any)) []labels.Selector {
	var out []labels.Selector
	for i := range in {
		s, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			bad(fmt.Sprintf("%s[%d]", field, i), "invalid label selector (%v); it selects nothing until fixed", err)
			continue
		}
		out = append(out, s)
	}
	return out
}

func matchesAny(sels []labels.Selector, set labels.Set) bool {
	for _, s := range sels {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

func electionNodes(in Inputs, nodes []*corev1.Node) []election.Node {
	members := map[string]Member{}
	for _, m := range in.Members {
		members[m.Name] = m
	}
	out := make([]election.Node, 0, len(nodes))
	for _, n := range nodes {
		m, alive := members[n.Name]
		en := election.Node{
			Name:       n.Name,
			Alive:      alive && m.Meta.Ready,
			Interfaces: m.Meta.Interfaces,
		}
		if n.Name == in.LocalNode {
			en.Interfaces = in.LocalInterfaces
			if en.Interfaces == nil {
				en.Interfaces = []election.Interface{}
			}
		}
		_, en.Excluded = n.Labels[ExcludeLabel]
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
				en.NetworkUnavailable = true
			}
		}
		out = append(out, en)
	}
	return out
}

// Serves reports whether a speaker with class lbClass handles svc.
func Serves(svc *corev1.Service, lbClass string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil {
		return false
	}
	class := ""
	if svc.Spec.LoadBalancerClass != nil {
		class = *svc.Spec.LoadBalancerClass
	}
	return class == lbClass
}

// ServiceIPs returns the valid IPs in svc's load-balancer status, sorted and
// deduplicated.
func ServiceIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil && ip.Zone() == "" {
			out = append(out, ip.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func groupIPs(in Inputs) map[netip.Addr]*ipGroup {
	endpoints := readyEndpointNodes(in.EndpointSlices)
	services := slices.Clone(in.Services)
	slices.SortFunc(services, func(a, b *corev1.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	groups := map[netip.Addr]*ipGroup{}
	for _, svc := range services {
		if !Serves(svc, in.LBClass) {
			continue
		}
		key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
		local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		hint := ""
		for _, a := range PoolAnnotations {
			if v := svc.Annotations[a]; v != "" {
				hint = strings.TrimSpace(v)
				break
			}
		}
		for _, ip := range ServiceIPs(svc) {
			g := groups[ip]
			if g == nil {
				g = &ipGroup{local: true, poolHint: hint}
				groups[ip] = g
			}
			g.services = append(g.services, key)
			// A shared IP is Local only when every sharer is; the
			// endpoints of all sharers count.
			g.local = g.local && local
			g.endpoints = append(g.endpoints, endpoints[key]...)
		}
	}
	for _, g := range groups {
		slices.Sort(g.endpoints)
		g.endpoints = slices.Compact(g.endpoints)
	}
	return groups
}

// readyEndpointNodes maps each Service to the nodes holding a ready endpoint
// of it.
func readyEndpointNodes(slicesIn []*discoveryv1.EndpointSlice) map[types.NamespacedName][]string {
	out := map[types.NamespacedName][]string{}
	for _, es := range slicesIn {
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" {
			continue
		}
		key := types.NamespacedName{Namespace: es.Namespace, Name: svc}
		for _, ep := range es.Endpoints {
			if ep.NodeName == nil || *ep.NodeName == "" || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			out[key] = append(out[key], *ep.NodeName)
		}
	}
	return out
}
