package ipam

import (
	"fmt"
	"math/big"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Family is an IP address family.
type Family int

// The two families. The values match the IP version numbers.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

// FamilyOf returns the family of ip.
func FamilyOf(ip netip.Addr) Family {
	if ip.Is4() {
		return IPv4
	}
	return IPv6
}

func (f Family) bitLen() int {
	if f == IPv4 {
		return 32
	}
	return 128
}

// Range is an inclusive range of addresses of one family, First <= Last.
// CIDRs and single IPs are ranges too; String gives the shortest of the three
// spellings, and ParseRange(r.String()) == r.
type Range struct {
	First, Last netip.Addr
}

// Family returns the family of the range.
func (r Range) Family() Family { return FamilyOf(r.First) }

// Contains reports whether ip lies in r.
func (r Range) Contains(ip netip.Addr) bool {
	return ip.BitLen() == r.First.BitLen() && r.First.Compare(ip) <= 0 && ip.Compare(r.Last) <= 0
}

// Size returns the number of addresses in r (up to 2^128, hence big.Int).
func (r Range) Size() *big.Int {
	d := addrToU128(r.Last).sub(addrToU128(r.First)).big()
	return d.Add(d, big.NewInt(1))
}

// Prefix returns r as a CIDR if it is exactly one.
func (r Range) Prefix() (netip.Prefix, bool) {
	d := addrToU128(r.Last).sub(addrToU128(r.First))
	// d must be 2^k-1 (all low bits set) and First must have those bits clear.
	n := d.add1()
	if n.hi&d.hi != 0 || n.lo&d.lo != 0 {
		return netip.Prefix{}, false
	}
	f := addrToU128(r.First)
	if f.hi&d.hi != 0 || f.lo&d.lo != 0 {
		return netip.Prefix{}, false
	}
	k := bits.OnesCount64(d.hi) + bits.OnesCount64(d.lo)
	return netip.PrefixFrom(r.First, r.First.BitLen()-k), true
}

func (r Range) String() string {
	if !r.First.IsValid() {
		return "invalid range"
	}
	if r.First == r.Last {
		return r.First.String()
	}
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// ParseError describes one address entry that could not be parsed.
type ParseError struct {
	Index int    // position of the entry in the list given to ParseRanges; 0 for ParseRange
	Entry string // the entry as written
	Msg   string // the whole message, naming the entry
}

func (e *ParseError) Error() string { return e.Msg }

// ParseErrors lists every bad entry of a ParseRanges call, in input order.
type ParseErrors []*ParseError

func (e ParseErrors) Error() string {
	msgs := make([]string, len(e))
	for i, pe := range e {
		msgs[i] = pe.Msg
	}
	return strings.Join(msgs, "; ")
}

const syntaxHint = "expected a CIDR (192.0.2.0/24), a range (192.0.2.10-192.0.2.20) or a single IP"

// ParseRange parses one pool address entry: a CIDR ("192.0.2.0/24",
// "2001:db8::/64"), a range "a-b" (both ends the same family, a <= b), or a
// single IP. Surrounding spaces, and spaces around the dash, are ignored.
// The error says precisely what is wrong and, where there is an obvious fix,
// what was probably meant.
func ParseRange(s string) (Range, error) {
	r, msg := parseRange(strings.TrimSpace(s))
	if msg != "" {
		return Range{}, &ParseError{Entry: s, Msg: msg}
	}
	return r, nil
}

// ParseRanges parses every entry with ParseRange. It returns the ranges of
// the good entries, in input order, and a ParseErrors listing every bad one
// (nil if all are good), so a user fixes all mistakes in one round.
func ParseRanges(entries []string) ([]Range, error) {
	out := make([]Range, 0, len(entries))
	var errs ParseErrors
	for i, s := range entries {
		r, err := ParseRange(s)
		if err != nil {
			pe := err.(*ParseError)
			pe.Index = i
			errs = append(errs, pe)
			continue
		}
		out = append(out, r)
	}
	if errs != nil {
		return out, errs
	}
	return out, nil
}

func parseRange(s string) (Range, string) {
	if s == "" {
		return Range{}, "empty address entry: " + syntaxHint
	}
	if strings.Contains(s, "-") {
		return parseDashRange(s)
	}
	if strings.Contains(s, "/") {
		return parseCIDR(s)
	}
	ip, msg := parseHost(s)
	if msg != "" {
		if _, err := netip.ParseAddr(s); err != nil {
			msg += "; " + syntaxHint // not even an address: say what would be
		}
		return Range{}, msg
	}
	return Range{ip, ip}, ""
}

func parseDashRange(s string) (Range, string) {
	a, b, _ := strings.Cut(s, "-")
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if strings.Contains(b, "-") {
		return Range{}, fmt.Sprintf("%q has more than one '-'; a range is written start-end, e.g. 192.0.2.10-192.0.2.20", s)
	}
	if a == "" || b == "" {
		return Range{}, fmt.Sprintf("%q is missing the start or the end of the range; write start-end, e.g. 192.0.2.10-192.0.2.20", s)
	}
	if strings.Contains(a, "/") || strings.Contains(b, "/") {
		return Range{}, fmt.Sprintf("%q mixes a CIDR into a range; both ends of a range must be single IPs", s)
	}
	first, msg := parseHost(a)
	if msg == "" {
		var last netip.Addr
		if last, msg = parseHost(b); msg == "" {
			return checkRange(first, last)
		}
	}
	return Range{}, fmt.Sprintf("range %q: %s", s, msg)
}

func checkRange(first, last netip.Addr) (Range, string) {
	if first.Is4() != last.Is4() {
		return Range{}, fmt.Sprintf("%s-%s mixes IPv4 and IPv6; both ends of a range must be the same family", first, last)
	}
	if first.Compare(last) > 0 {
		return Range{}, fmt.Sprintf("%s-%s is reversed (the start is after the end); did you mean %s-%s?", first, last, last, first)
	}
	return Range{first, last}, ""
}

func parseCIDR(s string) (Range, string) {
	a, bitsStr, _ := strings.Cut(s, "/")
	ip, msg := parseHost(a)
	if msg != "" {
		return Range{}, fmt.Sprintf("CIDR %q: %s", s, msg)
	}
	n, err := strconv.Atoi(bitsStr)
	if err != nil || bitsStr == "" || strings.TrimLeft(bitsStr, "0123456789") != "" {
		return Range{}, fmt.Sprintf("CIDR %q: prefix length %q is not a number", s, bitsStr)
	}
	if n > ip.BitLen() {
		return Range{}, fmt.Sprintf("CIDR %q: prefix length %d is too long for %s (at most %d)", s, n, FamilyOf(ip), ip.BitLen())
	}
	p := netip.PrefixFrom(ip, n)
	if m := p.Masked(); m.Addr() != ip {
		return Range{}, fmt.Sprintf("%s has host bits set; did you mean %s?", p, m)
	}
	return prefixRange(p), ""
}

// parseHost parses a single address, refusing forms that would silently mean
// something else in a pool: zones and IPv4-mapped IPv6 addresses.
func parseHost(s string) (netip.Addr, string) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		why := err.Error()
		if _, after, ok := strings.Cut(why, "): "); ok {
			why = after
		}
		return netip.Addr{}, fmt.Sprintf("%q is not an IP address (%s)", s, why)
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Sprintf("%q has an IPv6 zone; pool addresses cannot have zones, write %s", s, ip.WithZone(""))
	}
	if ip.Is4In6() {
		return netip.Addr{}, fmt.Sprintf("%q is an IPv4-mapped IPv6 address; write it as %s", s, ip.Unmap())
	}
	return ip, ""
}

// prefixRange returns the range covered by a masked prefix.
func prefixRange(p netip.Prefix) Range {
	f := FamilyOf(p.Addr())
	host := f.bitLen() - p.Bits()
	var mask u128
	switch {
	case host >= 128:
		mask = maxU128
	case host >= 64:
		mask = u128{1<<(host-64) - 1, ^uint64(0)}
	default:
		mask = u128{0, 1<<host - 1}
	}
	v := addrToU128(p.Addr())
	return Range{p.Addr(), u128ToAddr(u128{v.hi | mask.hi, v.lo | mask.lo}, f)}
}

// --- interval algebra on sorted range lists ---

func compareRanges(a, b Range) int {
	if c := a.First.Compare(b.First); c != 0 {
		return c
	}
	return a.Last.Compare(b.Last)
}

// adjacentOrOverlapping reports whether b starts no later than one past a's end.
// Both are of one family and a.First <= b.First.
func adjacentOrOverlapping(a, b Range) bool {
	if b.First.Compare(a.Last) <= 0 {
		return true
	}
	next := a.Last.Next()
	return next.IsValid() && next == b.First
}

// normalize sorts rs (IPv4 before IPv6, then by address) and merges
// overlapping and adjacent ranges. It returns a new slice.
func normalize(rs []Range) []Range {
	s := slices.Clone(rs)
	slices.SortFunc(s, compareRanges)
	out := s[:0]
	for _, r := range s {
		if n := len(out); n > 0 && out[n-1].Family() == r.Family() && adjacentOrOverlapping(out[n-1], r) {
			if r.Last.Compare(out[n-1].Last) > 0 {
				out[n-1].Last = r.Last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// intersect returns the overlap of two normalized lists, normalized.
func intersect(a, b []Range) []Range {
	var out []Range
	for _, x := range a {
		for _, y := range b {
			if x.Family() != y.Family() {
				continue
			}
			f, l := maxAddr(x.First, y.First), minAddr(x.Last, y.Last)
			if f.Compare(l) <= 0 {
				out = append(out, Range{f, l})
			}
		}
	}
	return normalize(out)
}

// subtract returns a minus b; both normalized, and so is the result.
func subtract(a, b []Range) []Range {
	var out []Range
	for _, x := range a {
		pieces := []Range{x}
		for _, y := range b {
			var next []Range
			for _, p := range pieces {
				next = append(next, cut(p, y)...)
			}
			pieces = next
		}
		out = append(out, pieces...)
	}
	return out
}

// cut returns the parts of p outside y.
func cut(p, y Range) []Range {
	if p.Family() != y.Family() || y.Last.Compare(p.First) < 0 || p.Last.Compare(y.First) < 0 {
		return []Range{p}
	}
	var out []Range
	if p.First.Compare(y.First) < 0 {
		out = append(out, Range{p.First, y.First.Prev()})
	}
	if y.Last.Compare(p.Last) < 0 {
		out = append(out, Range{y.Last.Next(), p.Last})
	}
	return out
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Compare(b) <= 0 {
		return a
	}
	return b
}

// Prefixes returns the shortest list of CIDRs that exactly cover r, in
// address order: one for a range that is a CIDR, several for "a-b" ranges.
func (r Range) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	f := r.Family()
	cur := r.First
	for {
		// The widest prefix starting at cur that stays inside r.
		bits := f.bitLen()
		for bits > 0 {
			p := netip.PrefixFrom(cur, bits-1)
			if p.Masked().Addr() != cur || prefixRange(p).Last.Compare(r.Last) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(cur, bits)
		out = append(out, p)
		last := prefixRange(p).Last
		if last.Compare(r.Last) >= 0 {
			return out
		}
		cur = last.Next()
	}
}
