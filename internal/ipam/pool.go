package ipam

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"slices"
	"time"
)

// Pool is the allocator's view of one IPAddressPool. It is plain data: the
// config layer builds it from the CR (applying CRD defaults such as
// AutoAssign=true) and hands the whole set to Allocator.SetPools.
type Pool struct {
	// Name identifies the pool; the allocator reports assignments and
	// overlaps by it.
	Name string
	// Ranges as returned by ParseRange; IPv4 and IPv6 may be mixed, and
	// overlapping or adjacent entries are merged.
	Ranges []Range
	// AutoAssign false reserves the pool for services that name it.
	AutoAssign bool
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255, which some
	// old client firmware treats as network or broadcast addresses even
	// outside a /24.
	AvoidBuggyIPs bool
	// Priority orders pinned pools: lower is preferred, 0 means none
	// (after every explicit priority). See SelectPools.
	Priority int
	// Namespaces and NamespaceSelector pin the pool to namespaces (either
	// admits). ServiceSelector pins it to services by label. A pool with
	// any of them set is "pinned" and only serves services they admit.
	Namespaces        []string
	NamespaceSelector LabelMatcher
	ServiceSelector   LabelMatcher
	// Created orders overlapping pools: the older one keeps the overlap.
	// Use the object's creation timestamp; ties are broken by name.
	Created time.Time
}

// olderThan reports whether p keeps addresses it shares with q.
// Contains reports whether ip is in one of the pool's ranges.
func (p *Pool) Contains(ip netip.Addr) bool {
	return slices.ContainsFunc(p.Ranges, func(r Range) bool { return r.Contains(ip) })
}

func (p *Pool) olderThan(q *Pool) bool {
	if !p.Created.Equal(q.Created) {
		return p.Created.Before(q.Created)
	}
	return p.Name < q.Name
}

// Overlap is a range claimed by two pools. The Older pool allocates from it;
// the Newer one does not. Both pools should carry a condition saying so.
type Overlap struct {
	Older, Newer string
	Range        Range
}

func (o Overlap) String() string {
	return fmt.Sprintf("pools %q and %q overlap on %s; the older pool %q keeps those addresses", o.Older, o.Newer, o.Range, o.Older)
}

// Describe says what the overlap means for pool, for its status condition.
func (o Overlap) Describe(pool string) string {
	if pool == o.Newer {
		return fmt.Sprintf("overlaps pool %q on %s; %q is older and keeps those addresses, so this pool does not allocate them", o.Older, o.Range, o.Older)
	}
	return fmt.Sprintf("overlaps pool %q on %s; this pool is older and keeps those addresses", o.Newer, o.Range)
}

// Counts are a pool's address counts per family. A shared IP counts once.
type Counts struct {
	IPv4, IPv6 FamilyCounts
}

// Family returns the counts for f.
func (c Counts) Family(f Family) FamilyCounts {
	if f == IPv4 {
		return c.IPv4
	}
	return c.IPv6
}

// FamilyCounts counts the addresses of one family that the pool may
// allocate (after overlaps and avoidBuggyIPs are taken out). Total and
// Available are exact (an IPv6 /64 alone has 2^64 addresses); the *Int64
// methods saturate at math.MaxInt64 for status fields and metrics.
type FamilyCounts struct {
	Total     *big.Int
	Assigned  int64
	Available *big.Int
}

// TotalInt64 returns Total, saturated to math.MaxInt64.
func (c FamilyCounts) TotalInt64() int64 { return saturate(c.Total) }

// AvailableInt64 returns Available, saturated to math.MaxInt64.
func (c FamilyCounts) AvailableInt64() int64 { return saturate(c.Available) }

func saturate(b *big.Int) int64 {
	if b == nil {
		return 0
	}
	if !b.IsInt64() {
		return math.MaxInt64
	}
	return b.Int64()
}

// space maps one family of one pool onto "slots": consecutive integers over
// the addresses the pool may hand out. Without avoidBuggyIPs a slot is the
// address value. With it, IPv4 x.y.z.0 and x.y.z.255 have no slot, so a run
// of allocated slots steps over them and the lowest free slot is always an
// address the pool may give.
type space struct {
	fam   Family
	buggy bool
}

func fi(f Family) int {
	if f == IPv4 {
		return 0
	}
	return 1
}

func (sp space) slot(ip netip.Addr) (u128, bool) {
	v := addrToU128(ip)
	if !sp.buggy {
		return v, true
	}
	block, low := v.lo>>8, v.lo&0xff
	if low == 0 || low == 255 {
		return u128{}, false
	}
	return u128{0, block*254 + low - 1}, true
}

func (sp space) addr(s u128) netip.Addr {
	if !sp.buggy {
		return u128ToAddr(s, sp.fam)
	}
	return u128ToAddr(u128{0, s.lo/254<<8 | (s.lo%254 + 1)}, sp.fam)
}

// ceil returns the first slot at or after ip.
func (sp space) ceil(ip netip.Addr) (u128, bool) {
	if s, ok := sp.slot(ip); ok {
		return s, true
	}
	v := addrToU128(ip).lo
	if v&0xff == 0 {
		return sp.slot(ip.Next())
	}
	if v>>8 == 0xffffff {
		return u128{}, false
	}
	return sp.slot(u128ToAddr(u128{0, v + 2}, IPv4))
}

// floor returns the last slot at or before ip.
func (sp space) floor(ip netip.Addr) (u128, bool) {
	if s, ok := sp.slot(ip); ok {
		return s, true
	}
	v := addrToU128(ip).lo
	if v&0xff == 255 {
		return sp.slot(ip.Prev())
	}
	if v == 0 {
		return u128{}, false
	}
	return sp.slot(u128ToAddr(u128{0, v - 2}, IPv4))
}

// segment is one contiguous piece of a pool that the pool may allocate
// from: a declared range minus what older pools keep.
type segment struct {
	Range  // addresses, for "which pool holds this IP"
	pool   *poolState
	s0, s1 u128   // first and last slot
	used   uint64 // allocated slots in [s0, s1]
}

func (g *segment) full() bool {
	return g.used > 0 && g.s1.sub(g.s0) == u128{0, g.used - 1}
}

func (g *segment) size() *big.Int {
	b := g.s1.sub(g.s0).big()
	return b.Add(b, big.NewInt(1))
}

// poolState is a pool plus its allocation state. Memory: a few words per
// range and one run per stretch of consecutive allocated addresses.
type poolState struct {
	Pool
	declared []Range       // normalized Ranges
	segs     [2][]*segment // per family, ascending
	used     [2]runSet     // allocated slots per family
	space    [2]space
	overlaps []Overlap
}

func newPoolState(p Pool, claimed []Range) *poolState {
	ps := &poolState{Pool: p, declared: normalize(p.Ranges)}
	ps.space = [2]space{{IPv4, p.AvoidBuggyIPs}, {IPv6, false}}
	for _, r := range subtract(ps.declared, claimed) {
		sp := ps.space[fi(r.Family())]
		s0, ok0 := sp.ceil(r.First)
		s1, ok1 := sp.floor(r.Last)
		if !ok0 || !ok1 || s0.cmp(s1) > 0 {
			continue // only .0/.255 addresses left
		}
		i := fi(r.Family())
		ps.segs[i] = append(ps.segs[i], &segment{Range: r, pool: ps, s0: s0, s1: s1})
	}
	return ps
}

// declares reports whether ip is in one of the pool's ranges as written,
// overlaps and avoidBuggyIPs notwithstanding.
func (ps *poolState) declares(ip netip.Addr) bool {
	for _, r := range ps.declared {
		if r.Contains(ip) {
			return true
		}
	}
	return false
}

func (ps *poolState) hasFamily(f Family) bool {
	for _, r := range ps.declared {
		if r.Family() == f {
			return true
		}
	}
	return false
}

// lowestFree returns the lowest free address of family f and its segment.
// Full segments are skipped by their counters; in the first one that is not
// full, the lowest free slot is its start, or one past the run of allocated
// slots covering the start: one O(log n) lookup.
func (ps *poolState) lowestFree(f Family) (netip.Addr, *segment, bool) {
	i := fi(f)
	for _, g := range ps.segs[i] {
		if g.full() {
			continue
		}
		c := g.s0
		if r, ok := ps.used[i].containing(c); ok {
			if r.hi == maxU128 {
				continue
			}
			c = r.hi.add1()
		}
		if c.cmp(g.s1) <= 0 {
			return ps.space[i].addr(c), g, true
		}
	}
	return netip.Addr{}, nil, false
}

func (ps *poolState) counts() Counts {
	var c [2]FamilyCounts
	for i := range c {
		c[i].Total = new(big.Int)
		for _, g := range ps.segs[i] {
			c[i].Total.Add(c[i].Total, g.size())
			c[i].Assigned += int64(g.used)
		}
		c[i].Available = new(big.Int).Sub(c[i].Total, big.NewInt(c[i].Assigned))
	}
	return Counts{IPv4: c[0], IPv6: c[1]}
}
