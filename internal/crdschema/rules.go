package crdschema

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/kube-openapi/pkg/validation/spec"
)

// rule is the Go equivalent of one CEL rule: it returns false where the rule
// does, given the value the rule is attached to (self).
type rule func(self any) bool

// rules maps ruleKey(rule text) to its Go equivalent. The message shown is the
// one the CRD gives. TestEveryRuleHasAnEquivalent fails when a CRD rule is
// missing here (a new rule, or a changed one); TestRulesAgreeWithAPIServer
// compares the verdicts with a real API server.
var rules = map[string]rule{
	// IPAddressPool spec.addresses[*]: "must be a CIDR, an inclusive range
	// without spaces or a single IP".
	"00c9025776d2": str(func(s string) bool {
		a, b, isRange := rangeEnds(s)
		return isIP(s) || isCIDR(s) || (isRange && isIP(a) && isIP(b))
	}),
	// "CIDR has host bits set".
	"0b20257a53ac": str(func(s string) bool {
		p, ok := cidr(s)
		return !ok || p == p.Masked()
	}),
	// "range mixes IPv4 and IPv6".
	"0b1e161a5aa2": str(func(s string) bool {
		a, b, ok := ipRange(s)
		return !ok || a.Is4() == b.Is4()
	}),
	// "range end is before its start" (IPv4 ranges; IPv6 order is the
	// controller's check).
	"1f2a4f693388": str(func(s string) bool {
		a, b, ok := ipRange(s)
		return !ok || !a.Is4() || !b.Is4() || a.Compare(b) <= 0
	}),
	// BGPAdvertisement spec.communities[*]: a standard or large community, or
	// an alias name.
	"a9acba668c42": str(func(s string) bool {
		switch {
		case standardCommunity.MatchString(s):
			return standardOK(s)
		case largeCommunity.MatchString(s):
			return largeOK(s)
		}
		return aliasName.MatchString(s)
	}),
	// Community spec.communities[*].value: a standard or large community.
	"9cbb001f8a1f": str(func(s string) bool {
		if standardCommunity.MatchString(s) {
			return standardOK(s)
		}
		return largeCommunity.MatchString(s) && largeOK(s)
	}),
	// BGPPeer durations: "must be a duration such as 90s, 1m30s or 500ms".
	"eab6d76ec170": str(func(s string) bool { return durationForm.MatchString(s) }),
	// holdTime: "must be 0s (no keepalives) or at least 3s".
	"4080c3023b44": str(func(s string) bool {
		d, ok := duration(s)
		return !ok || d == 0 || d >= 3*time.Second
	}),
	// connectTime: "must be between 1s and 65535s".
	"e07fc93921ee": str(func(s string) bool {
		d, ok := duration(s)
		return !ok || d >= time.Second && d <= 65535*time.Second
	}),
	// BGPPeer spec: "keepaliveTime must not be greater than holdTime" (after
	// holdTime's default of 90s).
	"5d404b97ec1f": func(self any) bool {
		m, _ := self.(map[string]any)
		ka, okKA := durationField(m, "keepaliveTime")
		hold, okHold := durationField(m, "holdTime")
		return !okKA || !okHold || ka <= hold
	},
	// peerAddress, sourceAddress: an IP address.
	"aedef02b33bc": str(isIP),
	// routerID: an IPv4 address.
	"ded45caad9d7": str(func(s string) bool {
		a, ok := ip(s)
		return ok && a.Is4()
	}),
}

// ruleKey identifies a rule by its text.
func ruleKey(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])[:12]
}

// celRule is one entry of x-kubernetes-validations.
type celRule struct{ text, message string }

func celRules(s *spec.Schema) []celRule {
	raw, _ := s.Extensions["x-kubernetes-validations"].([]any)
	var out []celRule
	for _, r := range raw {
		m, _ := r.(map[string]any)
		text, _ := m["rule"].(string)
		msg, _ := m["message"].(string)
		if msg == "" {
			msg = "failed rule: " + text // the API server's wording
		}
		out = append(out, celRule{text, msg})
	}
	return out
}

// checkRules evaluates the rules attached to s on v.
func checkRules(s *spec.Schema, v any, path string, add func(field, msg string)) {
	for _, r := range celRules(s) {
		if f := rules[ruleKey(r.text)]; f != nil && !f(v) {
			add(path, r.message)
		}
	}
}

// str adapts a rule on a string; other types are left to the schema's type
// check.
func str(f func(string) bool) rule {
	return func(self any) bool {
		s, ok := self.(string)
		return !ok || f(s)
	}
}

// ip parses an address as CEL's ip() and isIP() do: no zone, no IPv4-mapped
// IPv6 form.
func ip(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, false
	}
	return a, true
}

func isIP(s string) bool { _, ok := ip(s); return ok }

// cidr parses a prefix as CEL's cidr() and isCIDR() do.
func cidr(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Is4In6() {
		return netip.Prefix{}, false
	}
	return p, true
}

func isCIDR(s string) bool { _, ok := cidr(s); return ok }

// rangeEnds splits "a-b" at the first '-' when it is not the first character,
// as self.indexOf('-') > 0 && self.split('-', 2) do.
func rangeEnds(s string) (string, string, bool) {
	i := strings.IndexByte(s, '-')
	if i <= 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// ipRange returns both ends of a range whose ends are IPs.
func ipRange(s string) (netip.Addr, netip.Addr, bool) {
	a, b, ok := rangeEnds(s)
	if !ok {
		return netip.Addr{}, netip.Addr{}, false
	}
	x, okA := ip(a)
	y, okB := ip(b)
	return x, y, okA && okB
}

var (
	standardCommunity = regexp.MustCompile(`^[0-9]{1,5}:[0-9]{1,5}$`)
	largeCommunity    = regexp.MustCompile(`^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$`)
	aliasName         = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	durationForm      = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`)
)

// fitsAll reports whether every part parses as a number of at most max.
func fitsAll(parts []string, max uint64) bool {
	for _, p := range parts {
		if n, err := strconv.ParseUint(p, 10, 64); err != nil || n > max {
			return false
		}
	}
	return true
}

func standardOK(s string) bool { return fitsAll(strings.Split(s, ":"), 65535) }

func largeOK(s string) bool { return fitsAll(strings.Split(s, ":")[1:], 4294967295) }

// duration parses a string of the form the rules accept, as CEL's duration().
func duration(s string) (time.Duration, bool) {
	if !durationForm.MatchString(s) {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

func durationField(m map[string]any, key string) (time.Duration, bool) {
	s, ok := m[key].(string)
	if !ok {
		return 0, false
	}
	return duration(s)
}
