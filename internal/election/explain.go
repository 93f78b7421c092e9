package election

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// maxListed caps how many node names a message lists.
const maxListed = 5

// explain builds the reason and message for an election without a winner.
// It runs only on failure, so it may be slower than the election itself.
// The reason is the first rule that left no node standing.
func (s *Snapshot) explain(ip netip.Addr, req Request, sc *scratch) (Reason, string) {
	byStage := make(map[stage][]string)
	for i := range s.nodes {
		st := s.evaluate(i, ip, req.LocalTrafficPolicy, sc)
		byStage[st] = append(byStage[st], s.nodes[i].Name)
	}
	var ads []string
	for _, a := range sc.ads {
		ads = append(ads, a.name)
	}
	by := "by " + adNames(ads)
	passed := func(st stage) int { // nodes that got past st
		n := 0
		for k, v := range byStage {
			if k > st {
				n += len(v)
			}
		}
		return n
	}

	switch {
	case passed(stageNotSelected) == 0:
		return ReasonNoSelectedNode, fmt.Sprintf("no known node is selected %s (check its nodeSelectors)", by)

	case passed(stageIneligible) == 0:
		var why []string
		for _, name := range byStage[stageIneligible] {
			why = append(why, name+" ("+s.ineligibility(name)+")")
		}
		return ReasonNoEligibleNode, fmt.Sprintf("every node selected %s is excluded from load balancing: %s",
			by, list(why))

	case passed(stageDead) == 0:
		return ReasonNoLiveSpeaker, fmt.Sprintf("no live speaker on a node selected %s (not alive in memberlist: %s)",
			by, list(byStage[stageDead]))

	case passed(stageNoCarrier) == 0:
		var why []string
		for _, name := range byStage[stageNoCarrier] {
			why = append(why, name+" ("+s.carrierProblem(s.byName[name], ip, sc.ads)+")")
		}
		return ReasonNoCarrier, fmt.Sprintf("no live speaker selected %s has carrier on an interface it may announce on: %s",
			by, list(why))
	}

	// Only the endpoint rule is left.
	const msg = "no node with a ready endpoint (externalTrafficPolicy: Local)"
	var why []string
	endpoints := slices.Clone(req.EndpointNodes)
	slices.Sort(endpoints)
	for _, name := range slices.Compact(endpoints) {
		i, ok := s.byName[name]
		if !ok {
			why = append(why, name+" (no such node known to the speaker)")
			continue
		}
		switch s.evaluate(i, ip, false, sc) {
		case stageNotSelected:
			why = append(why, name+" (not selected "+by+")")
		case stageIneligible:
			why = append(why, name+" ("+s.ineligibility(name)+")")
		case stageDead:
			why = append(why, name+" (speaker not alive in memberlist)")
		case stageNoCarrier:
			why = append(why, name+" ("+s.carrierProblem(i, ip, sc.ads)+")")
		}
	}
	if len(why) == 0 {
		return ReasonNoReadyEndpoint, msg + ": the Service has no ready endpoints"
	}
	return ReasonNoReadyEndpoint, msg + " that may announce: ready endpoints are only on " + list(why)
}

func (s *Snapshot) ineligibility(name string) string {
	n := s.nodes[s.byName[name]]
	var why []string
	if n.Excluded {
		why = append(why, "label node.kubernetes.io/exclude-from-external-load-balancers")
	}
	if n.NetworkUnavailable {
		why = append(why, "condition NetworkUnavailable")
	}
	return strings.Join(why, ", ")
}

// carrierProblem says why node i has no interface to announce ip on,
// following the rules of announceOn.
func (s *Snapshot) carrierProblem(i int, ip netip.Addr, ads []*advert) string {
	n := &s.nodes[i]
	var permitted, home []Interface
	for _, ifc := range n.Interfaces {
		for _, a := range ads {
			if a.selected[i] && (a.interfaces == nil || a.interfaces[ifc.Name]) {
				permitted = append(permitted, ifc)
				if containsIP(ifc.Prefixes, ip) {
					home = append(home, ifc)
				}
				break
			}
		}
	}
	if len(permitted) == 0 {
		var want []string
		for _, a := range ads {
			if a.selected[i] {
				want = append(want, a.ifaceList...)
			}
		}
		slices.Sort(want)
		want = slices.Compact(want)
		if len(want) == 0 {
			return "no announcing interface"
		}
		return "no interface named " + strings.Join(want, " or ")
	}
	counted, where := permitted, ""
	if len(home) > 0 {
		counted, where = home, ", on the IP's subnet"
	}
	var down []string
	for _, ifc := range counted {
		down = append(down, ifc.Name)
	}
	return "no carrier on " + strings.Join(down, ", ") + where
}

func adNames(names []string) string {
	if len(names) == 1 {
		return "L2Advertisement " + names[0]
	}
	return "L2Advertisements " + strings.Join(names, ", ")
}

func list(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxListed], ", "), len(items)-maxListed)
}
