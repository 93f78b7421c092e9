package l2plan

import (
	"fmt"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	"github.com/portico-lb/portico/internal/config"
	"github.com/portico-lb/portico/internal/election"
	"github.com/portico-lb/portico/speaker/facts"
)

// Member is one live memberlist member as the speaker sees it.
type Member struct {
	Name string
	Meta Meta
}

// Inputs are the facts one speaker decides from. Slices may be in any
// order; Compute sorts what it needs.
type Inputs struct {
	// Facts are shared with the other protocols: configuration, IPs, nodes.
	facts.Facts
	// LocalInterfaces is this node's own, freshest interface view (see
	// LocalInterfaces); it replaces what the local member published.
	LocalInterfaces []election.Interface
	// LocalLinks names every link on this node, to report
	// L2Advertisements naming links that do not exist.
	LocalLinks []string
	// Members are the live memberlist members, this node included.
	Members []Member
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

// Plan is the outcome of Compute.
type Plan struct {
	// IPs are the L2 Service IPs, sorted by address.
	IPs []IPPlan
	// Owned are the IPs this node announces, each with its interfaces
	// (sorted), in the form layer2.Announcer.SetOwned takes.
	Owned map[netip.Addr][]string
	// Problems are what this node noticed about the L2 configuration that
	// the configuration model cannot know (an interface missing on this
	// node), sorted.
	Problems []config.Problem
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

// Compute turns the facts and the member view into election inputs, elects
// every L2 IP and says what this node announces.
func Compute(in Inputs) Plan {
	plan := Plan{Owned: map[netip.Addr][]string{}}
	ads, poolAds, problems := advertisements(in)
	plan.Problems = problems

	snap, err := election.NewSnapshot(electionNodes(in), ads)
	if err != nil { // names come from the API, unique and non-empty
		plan.Problems = append(plan.Problems, config.Problem{Kind: "Speaker", Name: in.LocalNode, Field: "election", Reason: config.ReasonInvalid, Message: err.Error()})
		return plan
	}
	reqs := make([]election.Request, 0, len(in.IPs))
	for _, ip := range in.IPs {
		names := poolAds[ip.Pool]
		if ip.Pool == "" || len(names) == 0 {
			continue // not an L2 IP: no pool, or no L2Advertisement for its pool
		}
		reqs = append(reqs, election.Request{IP: ip.Addr, Advertisements: names, LocalTrafficPolicy: ip.Local, EndpointNodes: ip.EndpointNodes})
		plan.IPs = append(plan.IPs, IPPlan{IP: ip.Addr, Services: ip.Services, Pool: ip.Pool})
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
	plan.Problems = config.SortProblems(plan.Problems)
	return plan
}

// advertisements turns the L2Advertisements of the configuration into
// election's form, maps each pool to the advertisements covering it, and
// reports interfaces an advertisement names that this node lacks.
func advertisements(in Inputs) ([]election.Advertisement, map[string][]string, []config.Problem) {
	var out []election.Advertisement
	poolAds := map[string][]string{}
	var problems []config.Problem
	for _, ad := range in.Config.Advertisements() {
		if ad.Kind != config.KindL2Advertisement {
			continue
		}
		for _, p := range ad.Pools {
			poolAds[p] = append(poolAds[p], ad.Name)
		}
		ea := election.Advertisement{Name: ad.Name, Interfaces: slices.Clone(ad.Interfaces)}
		selectsLocal := false
		for _, n := range in.Nodes {
			if ad.Nodes.Selects(n.Labels) {
				ea.Nodes = append(ea.Nodes, n.Name)
				selectsLocal = selectsLocal || n.Name == in.LocalNode
			}
		}
		if selectsLocal {
			for _, name := range ad.Interfaces {
				if !slices.Contains(in.LocalLinks, name) {
					problems = append(problems, config.Problem{Kind: config.KindL2Advertisement, Name: ad.Name, Field: "spec.interfaces",
						Reason: config.ReasonMissingReference, Message: fmt.Sprintf(
							"interface %q does not exist on node %s, so this node does not announce the advertisement's IPs; "+
								"fix the interface name or exclude the node with spec.nodeSelectors", name, in.LocalNode)})
				}
			}
		}
		out = append(out, ea)
	}
	return out, poolAds, problems
}

func electionNodes(in Inputs) []election.Node {
	members := map[string]Member{}
	for _, m := range in.Members {
		members[m.Name] = m
	}
	out := make([]election.Node, 0, len(in.Nodes))
	for _, n := range in.Nodes {
		m, alive := members[n.Name]
		en := election.Node{
			Name:               n.Name,
			Alive:              alive && m.Meta.Ready,
			Interfaces:         m.Meta.Interfaces,
			Excluded:           n.Excluded,
			NetworkUnavailable: n.NetworkUnavailable,
		}
		if n.Name == in.LocalNode {
			en.Interfaces = in.LocalInterfaces
			if en.Interfaces == nil {
				en.Interfaces = []election.Interface{}
			}
		}
		out = append(out, en)
	}
	return out
}
