package election

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Node holds the facts about one node that do not depend on the IP.
type Node struct {
	// Name is the Kubernetes node name; it is also the speaker's memberlist
	// name.
	Name string
	// Alive reports whether the node's speaker is a live memberlist member
	// (alive or merely suspect, not dead and not left).
	Alive bool
	// Excluded reports whether the node carries the label
	// node.kubernetes.io/exclude-from-external-load-balancers.
	Excluded bool
	// NetworkUnavailable reports whether the node's NetworkUnavailable
	// condition is True.
	NetworkUnavailable bool
	// Interfaces lists the interfaces the node's speaker may announce on,
	// with their carrier state, as that speaker published them. nil means
	// unknown: the node is then not filtered on carrier, and its Result
	// names only the interfaces an L2Advertisement requires. A non-nil empty
	// slice means the node has no interface to announce on.
	Interfaces []Interface
}

// Interface is one announcing interface of a node.
type Interface struct {
	Name string
	// Carrier reports whether the link is up with carrier (netlink
	// IFF_RUNNING / OperState up).
	Carrier bool
	// Prefixes are the interface's addresses with their prefix lengths
	// (optional). When some of a node's permitted interfaces have a prefix
	// containing the service IP, only those count as the IP's announcing
	// interfaces, so losing carrier on the IP's own segment disqualifies the
	// node even if another interface is still up.
	Prefixes []netip.Prefix
}

// Advertisement is an L2Advertisement reduced to what election needs.
type Advertisement struct {
	Name string
	// Nodes are the names of the nodes the advertisement's nodeSelectors
	// match (all nodes when it has none); the caller evaluates selectors.
	Nodes []string
	// Interfaces restricts announcing to these interface names; empty means
	// any announcing interface.
	Interfaces []string
}

// Request asks for the announcer of one IP.
type Request struct {
	IP netip.Addr
	// Advertisements names the L2Advertisements that apply to the IP's pool.
	Advertisements []string
	// LocalTrafficPolicy is true for externalTrafficPolicy: Local; only
	// nodes in EndpointNodes can then win.
	LocalTrafficPolicy bool
	// EndpointNodes are the nodes holding at least one ready endpoint of the
	// Service. Ignored unless LocalTrafficPolicy is set.
	EndpointNodes []string
}

// Reason says why no node was elected. Values are CamelCase so they can
// serve as Kubernetes event and condition reasons.
type Reason string

const (
	ReasonInvalidIP       Reason = "InvalidIP"
	ReasonNoAdvertisement Reason = "NoL2Advertisement"
	ReasonNoSelectedNode  Reason = "NoSelectedNode"
	ReasonNoEligibleNode  Reason = "NoEligibleNode"
	ReasonNoLiveSpeaker   Reason = "NoLiveSpeaker"
	ReasonNoCarrier       Reason = "NoCarrier"
	ReasonNoReadyEndpoint Reason = "NoReadyEndpoint"
)

// Result is the outcome of an election for one IP.
type Result struct {
	IP netip.Addr
	// Node is the winner, "" when there is none.
	Node string
	// Interfaces are the winner's interfaces to announce on, sorted. nil
	// means any of the node's announcing interfaces (neither the node nor
	// the advertisements narrow it down).
	Interfaces []string
	// Candidates is how many nodes could have won.
	Candidates int
	// Reason and Message explain a failed election; both are empty when
	// Node is set. Message is written for a user reading kubectl describe.
	Reason  Reason
	Message string
}

// Elected reports whether a node won.
func (r Result) Elected() bool { return r.Node != "" }

// Snapshot is an immutable, validated set of node and advertisement facts,
// prepared so that many IPs can be elected cheaply. It is safe for
// concurrent use.
type Snapshot struct {
	nodes  []node // sorted by name
	byName map[string]int
	ads    map[string]*advert
}

type node struct {
	Node
	hash uint64
	// up and down count Interfaces with and without carrier, for a fast
	// path when no advertisement restricts interfaces.
	up, down int
}

type advert struct {
	name       string
	selected   []bool          // indexed like Snapshot.nodes
	interfaces map[string]bool // nil: any interface
	ifaceList  []string        // sorted keys of interfaces
}

// NewSnapshot validates and copies the facts. Node names must be unique
// and non-empty; so must advertisement names. Advertisements may name
// nodes that are not in nodes: those are simply not candidates.
func NewSnapshot(nodes []Node, ads []Advertisement) (*Snapshot, error) {
	s := &Snapshot{
		nodes:  make([]node, 0, len(nodes)),
		byName: make(map[string]int, len(nodes)),
		ads:    make(map[string]*advert, len(ads)),
	}
	var errs []error
	seenNode, seenAd := map[string]bool{}, map[string]bool{}
	for _, n := range nodes {
		if err := checkName("node", n.Name, seenNode); err != nil {
			errs = append(errs, err)
			continue
		}
		nn := node{Node: copyNode(n), hash: nodeHash(n.Name)}
		for _, ifc := range nn.Interfaces {
			if ifc.Carrier {
				nn.up++
			} else {
				nn.down++
			}
		}
		s.nodes = append(s.nodes, nn)
	}
	slices.SortFunc(s.nodes, func(a, b node) int { return cmp.Compare(a.Name, b.Name) })
	for i, n := range s.nodes {
		s.byName[n.Name] = i
	}
	for _, a := range ads {
		if err := checkName("L2Advertisement", a.Name, seenAd); err != nil {
			errs = append(errs, err)
			continue
		}
		ad := &advert{name: a.Name, selected: make([]bool, len(s.nodes))}
		for _, name := range a.Nodes {
			if i, ok := s.byName[name]; ok {
				ad.selected[i] = true
			}
		}
		if len(a.Interfaces) > 0 {
			ad.interfaces = make(map[string]bool, len(a.Interfaces))
			for _, ifc := range a.Interfaces {
				ad.interfaces[ifc] = true
			}
			ad.ifaceList = sortedKeys(ad.interfaces)
		}
		s.ads[a.Name] = ad
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// checkName refuses empty and repeated names.
func checkName(kind, name string, seen map[string]bool) error {
	if name == "" {
		return fmt.Errorf("a %s has an empty name", kind)
	}
	if seen[name] {
		return fmt.Errorf("%s %q is listed more than once", kind, name)
	}
	seen[name] = true
	return nil
}

func copyNode(n Node) Node {
	if n.Interfaces == nil {
		return n
	}
	ifs := make([]Interface, len(n.Interfaces))
	for i, ifc := range n.Interfaces {
		ifc.Prefixes = slices.Clone(ifc.Prefixes)
		ifs[i] = ifc
	}
	slices.SortStableFunc(ifs, func(a, b Interface) int { return cmp.Compare(a.Name, b.Name) })
	n.Interfaces = ifs
	return n
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Elect is a convenience for a single election: NewSnapshot then Elect.
func Elect(nodes []Node, ads []Advertisement, req Request) (Result, error) {
	s, err := NewSnapshot(nodes, ads)
	if err != nil {
		return Result{}, err
	}
	return s.Elect(req), nil
}

// Elect chooses the announcer for one IP.
func (s *Snapshot) Elect(req Request) Result {
	var sc scratch
	return s.elect(req, &sc)
}

// ElectAll chooses the announcers for many IPs; results[i] answers reqs[i].
// It reuses working memory across requests, so it is cheaper than calling
// Elect in a loop.
func (s *Snapshot) ElectAll(reqs []Request) []Result {
	out := make([]Result, len(reqs))
	var sc scratch
	for i, r := range reqs {
		out[i] = s.elect(r, &sc)
	}
	return out
}

// scratch is working memory reused across elections.
type scratch struct {
	ads       []*advert
	endpoints []bool // indexed like Snapshot.nodes
	marked    []int  // indices set in endpoints, to reset them cheaply
}

// stage is how far a node got through the eligibility rules, in order.
type stage int

const (
	stageNotSelected stage = iota // no applicable advertisement selects it
	stageIneligible               // excluded or NetworkUnavailable
	stageDead                     // speaker not alive in memberlist
	stageNoCarrier                // no permitted announcing interface with carrier
	stageNoEndpoint               // Local policy and no ready endpoint here
	stageCandidate
)

func (s *Snapshot) elect(req Request, sc *scratch) Result {
	ip := req.IP.Unmap().WithZone("")
	res := Result{IP: ip}
	if !ip.IsValid() || ip.IsUnspecified() {
		res.Reason = ReasonInvalidIP
		res.Message = "the IP address is missing or invalid"
		if ip.IsValid() {
			res.Message = fmt.Sprintf("%s is not a usable IP address", ip)
		}
		return res
	}
	var missing []string
	sc.ads, missing = s.resolveAds(req.Advertisements, sc.ads[:0])
	if len(sc.ads) == 0 {
		res.Reason = ReasonNoAdvertisement
		if len(missing) == 0 {
			res.Message = "no L2Advertisement applies to the IP's address pool"
		} else {
			res.Message = fmt.Sprintf("no L2Advertisement applies to the IP's address pool: %s not found",
				adNames(missing))
		}
		return res
	}
	if req.LocalTrafficPolicy {
		s.markEndpoints(req.EndpointNodes, sc)
		defer s.clearEndpoints(sc)
	}

	ipHash := addrHash(ip)
	best, bestScore := -1, uint64(0)
	for i := range s.nodes {
		if s.evaluate(i, ip, req.LocalTrafficPolicy, sc) != stageCandidate {
			continue
		}
		res.Candidates++
		score := mix(s.nodes[i].hash ^ ipHash)
		// Nodes are sorted by name, so on an (astronomically unlikely)
		// tie the smaller name wins, independent of input order.
		if best < 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		res.Reason, res.Message = s.explain(ip, req, sc)
		return res
	}
	res.Node = s.nodes[best].Name
	_, res.Interfaces = s.announceOn(best, ip, sc.ads, true)
	return res
}

// resolveAds appends the known advertisements among names to dst, sorted
// and deduplicated, and returns the unknown names.
func (s *Snapshot) resolveAds(names []string, dst []*advert) ([]*advert, []string) {
	var missing []string
	for _, name := range names {
		if a, ok := s.ads[name]; ok {
			if !slices.Contains(dst, a) {
				dst = append(dst, a)
			}
		} else if !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
	}
	slices.SortFunc(dst, func(a, b *advert) int { return cmp.Compare(a.name, b.name) })
	slices.Sort(missing)
	return dst, missing
}

func (s *Snapshot) markEndpoints(names []string, sc *scratch) {
	if len(sc.endpoints) != len(s.nodes) {
		sc.endpoints = make([]bool, len(s.nodes))
	}
	for _, name := range names {
		if i, ok := s.byName[name]; ok && !sc.endpoints[i] {
			sc.endpoints[i] = true
			sc.marked = append(sc.marked, i)
		}
	}
}

func (s *Snapshot) clearEndpoints(sc *scratch) {
	for _, i := range sc.marked {
		sc.endpoints[i] = false
	}
	sc.marked = sc.marked[:0]
}

// evaluate runs node i through the eligibility rules in order and returns
// the first one it fails, or stageCandidate.
func (s *Snapshot) evaluate(i int, ip netip.Addr, local bool, sc *scratch) stage {
	n := &s.nodes[i]
	selected := false
	for _, a := range sc.ads {
		if a.selected[i] {
			selected = true
			break
		}
	}
	switch {
	case !selected:
		return stageNotSelected
	case n.Excluded || n.NetworkUnavailable:
		return stageIneligible
	case !n.Alive:
		return stageDead
	}
	if ok, _ := s.announceOn(i, ip, sc.ads, false); !ok {
		return stageNoCarrier
	}
	if local && !sc.endpoints[i] {
		return stageNoEndpoint
	}
	return stageCandidate
}

// announceOn reports whether node i has an interface it may announce ip on
// with carrier, and when collect is set, which interfaces those are.
//
// The permitted interfaces are the union over the advertisements selecting
// the node (any interface if one of them names none). Among the node's
// permitted interfaces, those with a prefix containing ip are the IP's home
// segment; if there are any, only they count. The node qualifies when one of
// the counted interfaces has carrier.
func (s *Snapshot) announceOn(i int, ip netip.Addr, ads []*advert, collect bool) (bool, []string) {
	n := &s.nodes[i]
	anyIface := false
	for _, a := range ads {
		if a.selected[i] && a.interfaces == nil {
			anyIface = true
			break
		}
	}
	permitted := func(name string) bool {
		if anyIface {
			return true
		}
		for _, a := range ads {
			if a.selected[i] && a.interfaces[name] {
				return true
			}
		}
		return false
	}
	if n.Interfaces == nil { // unknown: trust the node, name what the ads require
		if !collect || anyIface {
			return true, nil
		}
		var out []string
		for _, a := range ads {
			if a.selected[i] {
				out = append(out, a.ifaceList...)
			}
		}
		slices.Sort(out)
		return true, slices.Compact(out)
	}
	if anyIface && !collect && (n.up == 0 || n.down == 0) {
		// Every interface is permitted and all share one carrier state,
		// so which of them are the IP's home segment does not matter.
		return n.up > 0, nil
	}
	home := false
	for _, ifc := range n.Interfaces {
		if permitted(ifc.Name) && containsIP(ifc.Prefixes, ip) {
			home = true
			break
		}
	}
	var out []string
	ok := false
	for _, ifc := range n.Interfaces {
		if !ifc.Carrier || !permitted(ifc.Name) || (home && !containsIP(ifc.Prefixes, ip)) {
			continue
		}
		ok = true
		if !collect {
			break
		}
		if !slices.Contains(out, ifc.Name) {
			out = append(out, ifc.Name)
		}
	}
	return ok, out
}

func containsIP(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
