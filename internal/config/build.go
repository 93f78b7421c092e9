package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/ipam"
)

// Inputs are the objects a configuration is built from. Order does not matter.
type Inputs struct {
	Pools             []v1.IPAddressPool
	L2Advertisements  []v1.L2Advertisement
	BGPAdvertisements []v1.BGPAdvertisement
	BGPPeers          []v1.BGPPeer
	BFDProfiles       []v1.BFDProfile
	Communities       []v1.Community
	// Secrets maps "namespace/name" of every existing Secret that a peer names to
	// the keys of its data. Nil means Secrets are not checked.
	Secrets map[string][]string
	// Namespace is where Portico runs: the namespace of Secret references that
	// give none.
	Namespace string
}

// Builder builds Configs, caching parsed pools between builds. It is safe for
// concurrent use. The zero value is ready to use.
type Builder struct {
	mu    sync.Mutex
	cache map[string]*parsedPool
}

type parsedPool struct {
	uid      types.UID
	gen      int64
	pool     ipam.Pool
	problems []Problem
	lastGood *ipam.Pool // the last version without problems, for the same UID
	parses   int
}

// Parses returns how many times the pool named name has been parsed, for tests
// of the cache.
func (b *Builder) Parses(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.cache[name]; e != nil {
		return e.parses
	}
	return 0
}

// Build validates in and returns the configuration. It never fails: every
// problem is in Config.Problems, and the rest of the configuration is usable.
func (b *Builder) Build(in Inputs) *Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cache == nil {
		b.cache = map[string]*parsedPool{}
	}
	c := &Config{}
	exists := map[string]*v1.IPAddressPool{}
	for i := range in.Pools {
		p := &in.Pools[i]
		exists[p.Name] = p
		pool, ok, problems := b.pool(p)
		c.problems = append(c.problems, problems...)
		if ok {
			c.pools = append(c.pools, pool)
		}
	}
	for name := range b.cache {
		if exists[name] == nil {
			delete(b.cache, name)
		}
	}
	slices.SortFunc(c.pools, func(x, y Pool) int { return strings.Compare(x.Name, y.Name) })
	c.problems = append(c.problems, overlaps(c.pools)...)

	aliases, problems := communityAliases(in.Communities)
	c.problems = append(c.problems, problems...)
	profiles := map[string]*v1.BFDProfile{}
	for i := range in.BFDProfiles {
		profiles[in.BFDProfiles[i].Name] = &in.BFDProfiles[i]
	}
	peers := map[string]*Peer{}
	for i := range in.BGPPeers {
		c.problems = append(c.problems, checkPeer(&in.BGPPeers[i], in)...)
		peer, ok, problems := parsePeer(&in.BGPPeers[i], profiles, in.Namespace)
		c.problems = append(c.problems, problems...)
		if ok {
			c.peers = append(c.peers, peer)
		}
	}
	slices.SortFunc(c.peers, func(x, y Peer) int { return strings.Compare(x.Name, y.Name) })
	for i := range c.peers {
		peers[c.peers[i].Name] = &c.peers[i]
	}
	for i := range in.L2Advertisements {
		a := &in.L2Advertisements[i]
		ad, problems := resolvePools(KindL2Advertisement, a.Name, &a.Spec.PoolAndNodeSelection, c, exists)
		ad.Interfaces = slices.Clone(a.Spec.Interfaces)
		c.ads = append(c.ads, ad)
		c.problems = append(c.problems, problems...)
	}
	for i := range in.BGPAdvertisements {
		a := &in.BGPAdvertisements[i]
		ad, problems := resolvePools(KindBGPAdvertisement, a.Name, &a.Spec.PoolAndNodeSelection, c, exists)
		settings := parseBGPSettings(a, peers, aliases)
		ad.BGP = &settings
		c.ads = append(c.ads, ad)
		c.problems = append(c.problems, problems...)
		c.problems = append(c.problems, checkBGPAdvertisement(a, ad.Pools, c, peers, aliases)...)
	}
	slices.SortFunc(c.ads, func(x, y Advertisement) int {
		return strings.Compare(x.Kind+"/"+x.Name, y.Kind+"/"+y.Name)
	})
	c.problems = SortProblems(c.problems)
	return c
}

// pool returns the pool in effect for p: its current spec if valid, else the
// last valid spec of the same object. Parsing is cached by UID and generation.
func (b *Builder) pool(p *v1.IPAddressPool) (Pool, bool, []Problem) {
	e := b.cache[p.Name]
	if e == nil || e.uid != p.UID || e.gen != p.Generation || p.Generation == 0 {
		parsed, problems := ParsePool(p)
		ne := &parsedPool{uid: p.UID, gen: p.Generation, pool: parsed, problems: problems}
		if e != nil {
			ne.parses = e.parses
			if e.uid == p.UID {
				ne.lastGood = e.lastGood
			}
		}
		ne.parses++
		if len(problems) == 0 {
			ne.lastGood = &ne.pool
		}
		b.cache[p.Name] = ne
		e = ne
	}
	out := Pool{Pool: e.pool, Labels: p.Labels}
	if len(e.problems) == 0 {
		return out, true, nil
	}
	problems := slices.Clone(e.problems)
	if e.lastGood == nil {
		return out, false, problems
	}
	out.Pool, out.Stale = *e.lastGood, true
	ranges := make([]string, len(out.Ranges))
	for i, r := range out.Ranges {
		ranges[i] = r.String()
	}
	problems = append(problems, Problem{Kind: KindIPAddressPool, Name: p.Name, Field: "spec", Reason: ReasonInvalid,
		Message: fmt.Sprintf("the last valid version of this pool (%s) stays in effect until the errors are fixed", strings.Join(ranges, ", "))})
	return out, true, problems
}

// ParsePool turns one IPAddressPool into the allocator's pool, with a problem
// for every bad address entry or selector. It applies the CRD defaults
// (autoAssign true) so objects that bypassed defaulting behave alike.
func ParsePool(p *v1.IPAddressPool) (ipam.Pool, []Problem) {
	out := ipam.Pool{
		Name:          p.Name,
		AutoAssign:    p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
		AvoidBuggyIPs: p.Spec.AvoidBuggyIPs,
		Created:       p.CreationTimestamp.Time,
	}
	var problems []Problem
	bad := func(field, msg string) {
		problems = append(problems, Problem{Kind: KindIPAddressPool, Name: p.Name, Field: field, Reason: ReasonInvalid, Message: msg})
	}
	entries := make([]string, len(p.Spec.Addresses))
	for i, a := range p.Spec.Addresses {
		entries[i] = string(a)
	}
	ranges, err := ipam.ParseRanges(entries)
	var perrs ipam.ParseErrors
	if errors.As(err, &perrs) {
		for _, pe := range perrs {
			bad(fmt.Sprintf("spec.addresses[%d]", pe.Index), pe.Msg)
		}
	}
	out.Ranges = ranges
	if len(entries) == 0 {
		bad("spec.addresses", "the pool has no addresses; add at least one CIDR, range or IP")
	}
	if al := p.Spec.Allocation; al != nil {
		out.Priority = int(al.Priority)
		out.Namespaces = slices.Sorted(slices.Values(al.Namespaces))
		var msg string
		if out.NamespaceSelector, msg = matcher(al.NamespaceSelector); msg != "" {
			bad("spec.allocation.namespaceSelector", msg)
		}
		if out.ServiceSelector, msg = matcher(al.ServiceSelector); msg != "" {
			bad("spec.allocation.serviceSelector", msg)
		}
	}
	return out, problems
}

// matcher turns a label selector into the allocator's matcher; nil for none.
func matcher(sel *metav1.LabelSelector) (ipam.LabelMatcher, string) {
	if sel == nil {
		return nil, ""
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Sprintf("invalid label selector: %v", err)
	}
	return ipam.MatcherFunc(func(l map[string]string) bool { return s.Matches(labels.Set(l)) }), ""
}

// overlaps reports every pair of pools sharing addresses, on both pools.
func overlaps(pools []Pool) []Problem {
	byAge := make([]*Pool, len(pools))
	for i := range pools {
		byAge[i] = &pools[i]
	}
	slices.SortFunc(byAge, func(x, y *Pool) int { return olderFirst(x.Created, y.Created, x.Name, y.Name) })
	var out []Problem
	for i, older := range byAge {
		for _, newer := range byAge[i+1:] {
			for _, r := range intersect(older.Ranges, newer.Ranges) {
				o := ipam.Overlap{Older: older.Name, Newer: newer.Name, Range: r}
				for _, name := range []string{older.Name, newer.Name} {
					out = append(out, Problem{Kind: KindIPAddressPool, Name: name, Field: "spec.addresses", Reason: ReasonOverlap, Message: o.Describe(name)})
				}
			}
		}
	}
	return out
}

func intersect(a, b []ipam.Range) []ipam.Range {
	var out []ipam.Range
	for _, x := range a {
		for _, y := range b {
			if x.Family() != y.Family() {
				continue
			}
			lo, hi := x.First, x.Last
			if y.First.Compare(lo) > 0 {
				lo = y.First
			}
			if y.Last.Compare(hi) < 0 {
				hi = y.Last
			}
			if lo.Compare(hi) <= 0 {
				out = append(out, ipam.Range{First: lo, Last: hi})
			}
		}
	}
	return out
}

// resolvePools returns the pools an advertisement covers and the problems of
// its pool and node selection.
func resolvePools(kind, name string, sel *v1.PoolAndNodeSelection, c *Config, exists map[string]*v1.IPAddressPool) (Advertisement, []Problem) {
	ad := Advertisement{Kind: kind, Name: name}
	var problems []Problem
	add := func(field, reason, msg string) {
		problems = append(problems, Problem{Kind: kind, Name: name, Field: field, Reason: reason, Message: msg})
	}
	covered := map[string]bool{}
	for i, p := range sel.IPAddressPools {
		if exists[p] == nil {
			add(fmt.Sprintf("spec.ipAddressPools[%d]", i), ReasonMissingReference,
				fmt.Sprintf("IPAddressPool %q does not exist; create it or remove it from the list (the other pools are still advertised)", p))
			continue
		}
		covered[p] = true
	}
	for i := range sel.IPAddressPoolSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel.IPAddressPoolSelectors[i])
		if err != nil {
			add(fmt.Sprintf("spec.ipAddressPoolSelectors[%d]", i), ReasonInvalid, fmt.Sprintf("invalid label selector: %v", err))
			continue
		}
		for _, p := range exists {
			if s.Matches(labels.Set(p.Labels)) {
				covered[p.Name] = true
			}
		}
	}
	if len(sel.IPAddressPools) == 0 && len(sel.IPAddressPoolSelectors) == 0 {
		for _, p := range c.pools {
			covered[p.Name] = true
		}
	}
	ad.Nodes = parseNodeSelection(sel.NodeSelectors, "spec.nodeSelectors", func(field, msg string) { add(field, ReasonInvalid, msg) })
	ad.Pools = slices.Sorted(func(yield func(string) bool) {
		for p := range covered {
			if !yield(p) {
				return
			}
		}
	})
	return ad, problems
}

// checkBGPAdvertisement checks peers, community aliases and aggregation
// lengths against the pools the advertisement covers.
func checkBGPAdvertisement(a *v1.BGPAdvertisement, pools []string, c *Config, peers map[string]*Peer, aliases map[string]string) []Problem {
	var problems []Problem
	add := func(field, reason, msg string) {
		problems = append(problems, Problem{Kind: KindBGPAdvertisement, Name: a.Name, Field: field, Reason: reason, Message: msg})
	}
	for i, p := range a.Spec.Peers {
		if peers[p] == nil {
			add(fmt.Sprintf("spec.peers[%d]", i), ReasonMissingReference,
				fmt.Sprintf("BGPPeer %q does not exist or is invalid; create or fix it, or remove it from the list (the other peers still receive the routes)", p))
		}
	}
	if a.Spec.LocalPref != nil {
		var ebgp []string
		for _, p := range c.peers {
			if (len(a.Spec.Peers) == 0 || slices.Contains(a.Spec.Peers, p.Name)) && !p.IBGP() {
				ebgp = append(ebgp, p.Name)
			}
		}
		if len(ebgp) > 0 {
			add("spec.localPref", ReasonInvalid, fmt.Sprintf(
				"LOCAL_PREF is an iBGP attribute and is not sent to the eBGP peers %s (myASN differs from peerASN); list only iBGP peers in spec.peers or remove spec.localPref (the routes are announced without it)",
				strings.Join(ebgp, ", ")))
		}
	}
	for i, cr := range a.Spec.Communities {
		s := string(cr)
		if strings.Contains(s, ":") {
			continue // a literal value, checked by the CRD schema
		}
		if _, ok := aliases[s]; !ok {
			add(fmt.Sprintf("spec.communities[%d]", i), ReasonMissingReference,
				fmt.Sprintf("community alias %q is not defined by any Community object; define it or write the value (e.g. 64500:100)", s))
		}
	}
	lengths := []struct {
		field string
		fam   ipam.Family
		value *int32
		def   int
	}{{"spec.aggregationLength", ipam.IPv4, a.Spec.AggregationLength, 32}, {"spec.aggregationLengthV6", ipam.IPv6, a.Spec.AggregationLengthV6, 128}}
	for _, l := range lengths {
		agg := l.def
		if l.value != nil {
			agg = int(*l.value)
		}
		for _, name := range pools {
			p, ok := c.Pool(name)
			if !ok {
				continue
			}
			if need, cidr, ok := longestPrefix(p.Ranges, l.fam); ok && need > agg {
				add(l.field, ReasonAggregationLength, fmt.Sprintf(
					"%d is shorter than the prefix %s of pool %q: the aggregated route would cover addresses outside the pool; use at least %d or list this pool in another BGPAdvertisement",
					agg, cidr, name, need))
			}
		}
	}
	return problems
}

// longestPrefix returns the longest prefix length among the CIDRs that make up
// the ranges of family fam, and that CIDR.
func longestPrefix(ranges []ipam.Range, fam ipam.Family) (int, netip.Prefix, bool) {
	best, found := netip.Prefix{}, false
	for _, r := range ranges {
		if r.Family() != fam {
			continue
		}
		for _, p := range r.Prefixes() {
			if !found || p.Bits() > best.Bits() {
				best, found = p, true
			}
		}
	}
	return best.Bits(), best, found
}

// communityAliases returns the alias table (the older object wins a duplicate)
// and a problem on each object that repeats a name defined by another.
func communityAliases(objs []v1.Community) (map[string]string, []Problem) {
	byAge := make([]*v1.Community, len(objs))
	for i := range objs {
		byAge[i] = &objs[i]
	}
	slices.SortFunc(byAge, func(x, y *v1.Community) int {
		return olderFirst(x.CreationTimestamp.Time, y.CreationTimestamp.Time, x.Name, y.Name)
	})
	aliases := map[string]string{}
	owner := map[string]string{}
	var problems []Problem
	for _, o := range byAge {
		for i, al := range o.Spec.Communities {
			if first, dup := owner[al.Name]; dup {
				problems = append(problems, Problem{Kind: KindCommunity, Name: o.Name, Field: fmt.Sprintf("spec.communities[%d]", i), Reason: ReasonDuplicate,
					Message: fmt.Sprintf("alias %q is already defined by Community %q, which is older and wins; rename or remove one of them", al.Name, first)})
				continue
			}
			owner[al.Name] = o.Name
			aliases[al.Name] = string(al.Value)
		}
	}
	return aliases, problems
}

// checkPeer checks a peer's references to a BFD profile and a Secret.
func checkPeer(p *v1.BGPPeer, in Inputs) []Problem {
	var problems []Problem
	add := func(field, msg string) {
		problems = append(problems, Problem{Kind: KindBGPPeer, Name: p.Name, Field: field, Reason: ReasonMissingReference, Message: msg})
	}
	if bp := p.Spec.BFDProfile; bp != "" && !slices.ContainsFunc(in.BFDProfiles, func(x v1.BFDProfile) bool { return x.Name == bp }) {
		add("spec.bfdProfile", fmt.Sprintf("BFDProfile %q does not exist; create it or clear spec.bfdProfile (the session runs without BFD until then)", bp))
	}
	if ref := p.Spec.PasswordSecretRef; ref != nil && in.Secrets != nil {
		ns := ref.Namespace
		if ns == "" {
			ns = in.Namespace
		}
		key := ref.Key
		if key == "" {
			key = "password"
		}
		keys, ok := in.Secrets[ns+"/"+ref.Name]
		switch {
		case !ok:
			add("spec.passwordSecretRef", fmt.Sprintf("Secret %s/%s does not exist; create it with the password under key %q", ns, ref.Name, key))
		case !slices.Contains(keys, key):
			add("spec.passwordSecretRef.key", fmt.Sprintf("Secret %s/%s has no key %q; add it or set spec.passwordSecretRef.key to one of its keys", ns, ref.Name, key))
		}
	}
	return problems
}
