package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Allocator holds the pools and every assignment of an IP to a service.
// Create it with New, give it pools with SetPools, then rebuild state from
// Service status with Assign (assigned services first) before allocating
// anything new with Allocate.
type Allocator struct {
	mu     sync.Mutex
	pools  map[string]*poolState
	sorted []*poolState                  // by name
	index  [2][]*segment                 // every pool's segments per family, by address; disjoint
	ips    map[netip.Addr]*ipEntry       // assigned IPs
	svcs   map[string]*svcEntry          // by service key
	shared map[string]map[netip.Addr]int // scoped sharing key -> IP -> holders with that key
}

type ipEntry struct {
	seg     *segment    // the segment allocating it; nil when stranded
	holders []*svcEntry // sorted by key
	one     [1]*svcEntry
}

type svcEntry struct {
	svc Service // normalized, without labels
	ips []netip.Addr
	two [2]netip.Addr
}

// The inline arrays back holders and ips in the common case (one holder, at
// most one IP per family), saving two allocations per assignment.

// New returns an allocator with no pools.
func New() *Allocator {
	return &Allocator{
		pools:  map[string]*poolState{},
		ips:    map[netip.Addr]*ipEntry{},
		svcs:   map[string]*svcEntry{},
		shared: map[string]map[netip.Addr]int{},
	}
}

// Stranded is an assignment that no pool allocates any more. The allocator
// keeps it (nobody else gets the IP) until the controller releases it,
// normally after giving the service a new IP.
type Stranded struct {
	Service string
	IP      netip.Addr
	Reason  string // e.g. `192.0.2.7 is no longer in any pool: pool "old" was removed`
}

// Moved is an assignment now attributed to another pool, because a pool
// edit changed which pool owns the address. The IP stays; only the
// ip-allocated-from-pool annotation needs updating.
type Moved struct {
	Service  string
	IP       netip.Addr
	From, To string
}

// UpdateResult tells the controller what a pool update did to existing
// assignments. Every list is sorted (by service, then IP; overlaps by pool
// names, then range).
type UpdateResult struct {
	Stranded []Stranded
	Moved    []Moved
	Overlaps []Overlap
}

// SetPools replaces the pool set. Assignments are never dropped: each is
// attributed to the pool that now holds its IP, or reported as Stranded.
// Overlaps are resolved in favour of the older pool and reported.
//
// It fails, changing nothing, if a pool has no name, two pools share a
// name, or a range is malformed (not as returned by ParseRange).
func (a *Allocator) SetPools(pools []Pool) (UpdateResult, error) {
	if err := validatePools(pools); err != nil {
		return UpdateResult{}, err
	}
	byAge := make([]*Pool, len(pools))
	for i := range pools {
		byAge[i] = &pools[i]
	}
	slices.SortFunc(byAge, func(p, q *Pool) int {
		if p.olderThan(q) {
			return -1
		}
		return 1
	})

	newPools := make(map[string]*poolState, len(pools))
	sorted := make([]*poolState, 0, len(pools))
	var claimed []Range // declared by older pools
	var overlaps []Overlap
	for i, p := range byAge {
		ps := newPoolState(*p, claimed)
		for _, q := range byAge[:i] {
			for _, r := range intersect(newPools[q.Name].declared, ps.declared) {
				o := Overlap{Older: q.Name, Newer: p.Name, Range: r}
				overlaps = append(overlaps, o)
				newPools[q.Name].overlaps = append(newPools[q.Name].overlaps, o)
				ps.overlaps = append(ps.overlaps, o)
			}
		}
		claimed = normalize(append(claimed, ps.declared...))
		newPools[p.Name] = ps
		sorted = append(sorted, ps)
	}
	slices.SortFunc(sorted, func(p, q *poolState) int { return strings.Compare(p.Name, q.Name) })
	var index [2][]*segment
	for _, ps := range sorted {
		for i := range index {
			index[i] = append(index[i], ps.segs[i]...)
		}
	}
	for i := range index {
		slices.SortFunc(index[i], func(x, y *segment) int { return x.First.Compare(y.First) })
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	a.pools, a.sorted, a.index = newPools, sorted, index
	var res UpdateResult
	res.Overlaps = overlaps
	slices.SortFunc(res.Overlaps, func(x, y Overlap) int {
		return cmpChain(strings.Compare(x.Older, y.Older), strings.Compare(x.Newer, y.Newer), compareRanges(x.Range, y.Range))
	})
	for ip, e := range a.ips {
		var from string
		if e.seg != nil {
			from = e.seg.pool.Name
		}
		e.seg = nil
		g, slot, ok := a.locate(ip)
		if ok {
			e.seg = g
			g.used++
			g.pool.used[fi(FamilyOf(ip))].add(slot)
		}
		for _, h := range e.holders {
			switch {
			case !ok:
				res.Stranded = append(res.Stranded, Stranded{h.svc.Key, ip, a.strandedReason(ip, from)})
			case from != "" && from != g.pool.Name:
				res.Moved = append(res.Moved, Moved{h.svc.Key, ip, from, g.pool.Name})
			}
		}
	}
	slices.SortFunc(res.Stranded, func(x, y Stranded) int {
		return cmpChain(strings.Compare(x.Service, y.Service), x.IP.Compare(y.IP))
	})
	slices.SortFunc(res.Moved, func(x, y Moved) int {
		return cmpChain(strings.Compare(x.Service, y.Service), x.IP.Compare(y.IP))
	})
	return res, nil
}

func cmpChain(cs ...int) int {
	for _, c := range cs {
		if c != 0 {
			return c
		}
	}
	return 0
}

func validatePools(pools []Pool) error {
	seen := map[string]bool{}
	for _, p := range pools {
		if p.Name == "" {
			return errorf(ReasonInvalid, "a pool has no name")
		}
		if seen[p.Name] {
			return errorf(ReasonInvalid, "two pools are named %q", p.Name)
		}
		seen[p.Name] = true
		for _, r := range p.Ranges {
			ok := r.First.IsValid() && r.Last.IsValid() && r.First.Is4() == r.Last.Is4() &&
				r.First.Compare(r.Last) <= 0 && r.First.Zone() == "" && r.Last.Zone() == "" &&
				!r.First.Is4In6() && !r.Last.Is4In6()
			if !ok {
				return errorf(ReasonInvalid, "pool %q has a malformed range %v-%v", p.Name, r.First, r.Last)
			}
		}
	}
	return nil
}

// locate finds the segment holding ip and ip's slot in it. ok is false if no
// pool allocates ip (outside every pool, or skipped by avoidBuggyIPs).
func (a *Allocator) locate(ip netip.Addr) (*segment, u128, bool) {
	segs := a.index[fi(FamilyOf(ip))]
	i := sort.Search(len(segs), func(i int) bool { return segs[i].Last.Compare(ip) >= 0 })
	if i == len(segs) || !segs[i].Contains(ip) {
		return nil, u128{}, false
	}
	g := segs[i]
	slot, ok := g.pool.space[fi(FamilyOf(ip))].slot(ip)
	return g, slot, ok
}

// unallocatable explains why no pool allocates ip, naming pool if given.
func (a *Allocator) unallocatable(ip netip.Addr) *Error {
	for _, ps := range a.sorted {
		if ps.declares(ip) && ps.AvoidBuggyIPs && ip.Is4() {
			return errorf(ReasonNotAllowed, "%s ends in .%d and pool %q avoids buggy IPs (.0 and .255)", ip, ip.As4()[3], ps.Name)
		}
	}
	return errorf(ReasonNotInPool, "%s is not in any pool", ip)
}

func (a *Allocator) strandedReason(ip netip.Addr, from string) string {
	if e := a.unallocatable(ip); e.Reason != ReasonNotInPool {
		return e.Message
	}
	switch {
	case from == "":
		return fmt.Sprintf("%s is not in any pool", ip)
	case a.pools[from] == nil:
		return fmt.Sprintf("%s is no longer in any pool: pool %q was removed", ip, from)
	}
	return fmt.Sprintf("%s is no longer in any pool: pool %q no longer contains it", ip, from)
}

// Assign gives ip to svc: for rebuilding state from Service status on start,
// and for services that request a specific IP. If pool is not empty the IP
// must belong to that pool. It returns the pool the IP belongs to.
//
// The IP must be allocatable by its pool (not skipped by avoidBuggyIPs, not
// kept by an older overlapping pool), the pool's pinning must admit svc, and
// the sharing rules must allow it next to the IP's current holders.
//
// Assigning an IP the service already holds re-runs those checks with svc's
// current labels and sharing rules and, if they pass, records the new rules:
// this is how the controller re-validates an existing assignment after a
// pool or service edit. A service holds at most one IP per family.
func (a *Allocator) Assign(svc Service, ip netip.Addr, pool string) (string, error) {
	if err := checkAssign(&svc, ip); err != nil {
		return "", err
	}
	svc = svc.normalized()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.assign(&svc, ip, pool)
}

func checkAssign(svc *Service, ip netip.Addr) error {
	if err := svc.validate(); err != nil {
		return err
	}
	switch {
	case !ip.IsValid():
		return errorf(ReasonInvalid, "no IP given for %s", svc.Key)
	case ip.Zone() != "":
		return errorf(ReasonInvalid, "%s has an IPv6 zone; load-balancer IPs cannot have zones", ip)
	case ip.Is4In6():
		return errorf(ReasonInvalid, "%s is an IPv4-mapped IPv6 address; request %s instead", ip, ip.Unmap())
	}
	return nil
}

func (a *Allocator) assign(svc *Service, ip netip.Addr, pool string) (string, error) {
	g, slot, ok := a.locate(ip)
	if pool != "" {
		ps := a.pools[pool]
		switch {
		case ps == nil:
			return "", errorf(ReasonNoSuchPool, "pool %q does not exist", pool)
		case !ps.declares(ip):
			return "", errorf(ReasonNotInPool, "%s is not in pool %q", ip, pool)
		case g != nil && g.pool != ps:
			return "", errorf(ReasonNotAllowed, "%s is in pool %q, but the older pool %q overlaps it there and keeps it; request it from pool %q",
				ip, pool, g.pool.Name, g.pool.Name)
		}
	}
	if !ok {
		return "", a.unallocatable(ip)
	}
	if err := g.pool.admits(svc); err != nil {
		return "", err
	}
	if err := a.hold(svc, ip, g, slot); err != nil {
		return "", err
	}
	return g.pool.Name, nil
}

// Allocate gives svc an IP of family fam from pool: the lowest address
// already held by services it may share with (same sharing key), else the
// lowest free address. If svc already holds an IP of fam from this pool, it
// is returned unchanged. The pool's pinning must admit svc; AutoAssign is
// not checked here, since naming the pool is what AutoAssign false asks for
// (use SelectPools to choose pools).
func (a *Allocator) Allocate(svc Service, pool string, fam Family) (netip.Addr, error) {
	if err := svc.validate(); err != nil {
		return netip.Addr{}, err
	}
	svc = svc.normalized()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.allocate(&svc, pool, fam)
}

func (a *Allocator) allocate(svc *Service, pool string, fam Family) (netip.Addr, error) {
	if fam != IPv4 && fam != IPv6 {
		return netip.Addr{}, errorf(ReasonInvalid, "unknown address family %v", fam)
	}
	ps := a.pools[pool]
	if ps == nil {
		return netip.Addr{}, errorf(ReasonNoSuchPool, "pool %q does not exist", pool)
	}
	if err := ps.admits(svc); err != nil {
		return netip.Addr{}, err
	}
	if se := a.svcs[svc.Key]; se != nil {
		if ip, ok := se.ipOf(fam); ok {
			if e := a.ips[ip]; e.seg != nil && e.seg.pool == ps {
				return ip, a.hold(svc, ip, e.seg, u128{})
			}
		}
	}
	if ip, g, slot, ok := a.shareable(svc, ps, fam); ok {
		return ip, a.hold(svc, ip, g, slot)
	}
	ip, g, ok := ps.lowestFree(fam)
	if !ok {
		return netip.Addr{}, a.exhausted(ps, fam)
	}
	slot, _ := ps.space[fi(fam)].slot(ip)
	return ip, a.hold(svc, ip, g, slot)
}

// AllocateAny tries Allocate on each pool in order (as returned by
// SelectPools) and returns the first IP it gets and its pool. If no pool
// gives one, the error gives every pool's reason, and its Reason is
// PoolExhausted if any pool was merely full.
func (a *Allocator) AllocateAny(svc Service, pools []string, fam Family) (netip.Addr, string, error) {
	if err := svc.validate(); err != nil {
		return netip.Addr{}, "", err
	}
	svc = svc.normalized()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.allocateAny(&svc, pools, fam)
}

func (a *Allocator) allocateAny(svc *Service, pools []string, fam Family) (netip.Addr, string, error) {
	var msgs []string
	reason := ReasonNotAllowed
	for _, p := range pools {
		got, err := a.allocate(svc, p, fam)
		if err == nil {
			return got, p, nil
		}
		if len(pools) == 1 {
			return netip.Addr{}, "", err
		}
		if r := ReasonOf(err); r == ReasonPoolExhausted || (r != "" && len(msgs) == 0) {
			reason = r
		}
		msgs = append(msgs, err.Error())
	}
	if len(pools) == 0 {
		return netip.Addr{}, "", errorf(ReasonNotAllowed, "no address pool is available to %s", svc.Key)
	}
	return netip.Addr{}, "", errorf(reason, "no pool has a free %s address for %s: %s", fam, svc.Key, strings.Join(msgs, "; "))
}

func (a *Allocator) exhausted(ps *poolState, fam Family) *Error {
	switch {
	case !ps.hasFamily(fam):
		return errorf(ReasonNoFamily, "pool %q has no %s addresses", ps.Name, fam)
	case len(ps.segs[fi(fam)]) == 0:
		return errorf(ReasonNotAllowed, "pool %q has no %s address it may allocate: its %s ranges overlap older pools or hold only .0/.255 addresses it avoids",
			ps.Name, fam, fam)
	}
	return errorf(ReasonPoolExhausted, "pool %q has no free %s address", ps.Name, fam)
}

// shareable finds the lowest IP of fam in ps already held with svc's
// sharing key that svc may join.
func (a *Allocator) shareable(svc *Service, ps *poolState, fam Family) (netip.Addr, *segment, u128, bool) {
	key := svc.scopedKey()
	if key == "" {
		return netip.Addr{}, nil, u128{}, false
	}
	var best netip.Addr
	var bestSeg *segment
	var bestSlot u128
	for ip := range a.shared[key] {
		if FamilyOf(ip) != fam || (best.IsValid() && ip.Compare(best) > 0) {
			continue
		}
		g, slot, ok := a.locate(ip)
		if !ok || g.pool != ps || a.checkHolders(ip, svc) != nil {
			continue
		}
		best, bestSeg, bestSlot = ip, g, slot
	}
	return best, bestSeg, bestSlot, best.IsValid()
}

// checkHolders checks that svc may hold ip next to its current holders.
func (a *Allocator) checkHolders(ip netip.Addr, svc *Service) error {
	e := a.ips[ip]
	if e == nil {
		return nil
	}
	for _, h := range e.holders {
		if h.svc.Key == svc.Key {
			continue
		}
		if err := canShare(ip, &h.svc, svc); err != nil {
			return err
		}
	}
	return nil
}

func (se *svcEntry) ipOf(f Family) (netip.Addr, bool) {
	for _, ip := range se.ips {
		if FamilyOf(ip) == f {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// hold records that svc holds ip (in segment g at slot), after checking
// the one-IP-per-family and sharing rules, including svc's new sharing
// rules against the co-holders of the IPs it already holds.
func (a *Allocator) hold(svc *Service, ip netip.Addr, g *segment, slot u128) error {
	se := a.svcs[svc.Key]
	if se != nil {
		if cur, ok := se.ipOf(FamilyOf(ip)); ok && cur != ip {
			return errorf(ReasonFamilyTaken, "%s already holds %s address %s; release it before assigning %s", svc.Key, FamilyOf(ip), cur, ip)
		}
	}
	if err := a.checkHolders(ip, svc); err != nil {
		return err
	}
	if se != nil && !sameSharing(&se.svc, svc) {
		for _, cur := range se.ips {
			if err := a.checkHolders(cur, svc); err != nil {
				return err
			}
		}
		for _, cur := range se.ips {
			a.unshare(&se.svc, cur)
			a.share(svc, cur)
		}
	}
	if se == nil {
		se = &svcEntry{}
		se.ips = se.two[:0]
		a.svcs[svc.Key] = se
	}
	se.svc = *svc
	se.svc.Labels, se.svc.NamespaceLabels = nil, nil
	if slices.Contains(se.ips, ip) {
		return nil
	}
	se.ips = append(se.ips, ip)
	slices.SortFunc(se.ips, netip.Addr.Compare)

	e := a.ips[ip]
	if e == nil {
		e = &ipEntry{seg: g}
		e.holders = e.one[:0]
		a.ips[ip] = e
		g.used++
		g.pool.used[fi(FamilyOf(ip))].add(slot)
	}
	i, _ := slices.BinarySearchFunc(e.holders, svc.Key, func(h *svcEntry, k string) int { return strings.Compare(h.svc.Key, k) })
	e.holders = slices.Insert(e.holders, i, se)
	a.share(svc, ip)
	return nil
}

func (a *Allocator) share(svc *Service, ip netip.Addr) {
	key := svc.scopedKey()
	if key == "" {
		return
	}
	m := a.shared[key]
	if m == nil {
		m = map[netip.Addr]int{}
		a.shared[key] = m
	}
	m[ip]++
}

func (a *Allocator) unshare(svc *Service, ip netip.Addr) {
	key := svc.scopedKey()
	m := a.shared[key]
	if m == nil {
		return
	}
	if m[ip]--; m[ip] <= 0 {
		delete(m, ip)
	}
	if len(m) == 0 {
		delete(a.shared, key)
	}
}

// Release frees everything svcKey holds and returns those IPs, sorted. An IP
// shared with other services stays with them.
func (a *Allocator) Release(svcKey string) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	se := a.svcs[svcKey]
	if se == nil {
		return nil
	}
	for _, ip := range se.ips {
		a.drop(se, ip)
	}
	delete(a.svcs, svcKey)
	return se.ips
}

// ReleaseIP frees one IP held by svcKey, e.g. when a dual-stack service
// becomes single-stack, and reports whether it was held.
func (a *Allocator) ReleaseIP(svcKey string, ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	se := a.svcs[svcKey]
	if se == nil || !slices.Contains(se.ips, ip) {
		return false
	}
	a.drop(se, ip)
	se.ips = slices.DeleteFunc(se.ips, func(x netip.Addr) bool { return x == ip })
	if len(se.ips) == 0 {
		delete(a.svcs, svcKey)
	}
	return true
}

// drop removes se from ip's holders, freeing ip when nobody is left.
func (a *Allocator) drop(se *svcEntry, ip netip.Addr) {
	e := a.ips[ip]
	e.holders = slices.DeleteFunc(e.holders, func(h *svcEntry) bool { return h == se })
	a.unshare(&se.svc, ip)
	if len(e.holders) > 0 {
		return
	}
	delete(a.ips, ip)
	if g := e.seg; g != nil {
		slot, _ := g.pool.space[fi(FamilyOf(ip))].slot(ip)
		g.pool.used[fi(FamilyOf(ip))].remove(slot)
		g.used--
	}
}

// PoolOf returns the pool that allocates ip, if any.
func (a *Allocator) PoolOf(ip netip.Addr) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if g, _, ok := a.locate(ip); ok {
		return g.pool.Name, true
	}
	return "", false
}

// Holding returns the IPs svcKey holds, sorted (IPv4 first).
func (a *Allocator) Holding(svcKey string) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if se := a.svcs[svcKey]; se != nil {
		return slices.Clone(se.ips)
	}
	return nil
}

// Holders returns the keys of the services holding ip, sorted.
func (a *Allocator) Holders(ip netip.Addr) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.ips[ip]
	if e == nil {
		return nil
	}
	out := make([]string, len(e.holders))
	for i, h := range e.holders {
		out[i] = h.svc.Key
	}
	return out
}

// Pools returns the pool names, sorted.
func (a *Allocator) Pools() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, len(a.sorted))
	for i, ps := range a.sorted {
		out[i] = ps.Name
	}
	return out
}

// Counts returns the address counts of pool per family.
func (a *Allocator) Counts(pool string) (Counts, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := a.pools[pool]
	if ps == nil {
		return Counts{}, false
	}
	return ps.counts(), true
}

// Overlaps returns the overlaps involving pool, for its status condition.
func (a *Allocator) Overlaps(pool string) []Overlap {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ps := a.pools[pool]; ps != nil {
		return slices.Clone(ps.overlaps)
	}
	return nil
}

// Stranded returns every assignment no pool allocates, sorted by service
// then IP: the same list the last SetPools reported, minus what has been
// released since.
func (a *Allocator) Stranded() []Stranded {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Stranded
	for ip, e := range a.ips {
		if e.seg != nil {
			continue
		}
		why := a.unallocatable(ip).Message
		for _, h := range e.holders {
			out = append(out, Stranded{h.svc.Key, ip, why})
		}
	}
	slices.SortFunc(out, func(x, y Stranded) int {
		return cmpChain(strings.Compare(x.Service, y.Service), x.IP.Compare(y.IP))
	})
	return out
}

// SelectPools is SelectPools over the allocator's current pools.
func (a *Allocator) SelectPools(svc Service, requested string) ([]string, error) {
	a.mu.Lock()
	ptrs := make([]*Pool, len(a.sorted))
	for i, ps := range a.sorted {
		ptrs[i] = &ps.Pool
	}
	a.mu.Unlock()
	return selectPools(ptrs, &svc, requested)
}
