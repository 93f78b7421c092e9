package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRangeGood(t *testing.T) {
	tests := []struct {
		in, canonical, first, last, size string
	}{
		{"192.0.2.0/24", "192.0.2.0/24", "192.0.2.0", "192.0.2.255", "256"},
		{" 192.0.2.0/24 ", "192.0.2.0/24", "192.0.2.0", "192.0.2.255", "256"},
		{"192.0.2.7", "192.0.2.7", "192.0.2.7", "192.0.2.7", "1"},
		{"192.0.2.7/32", "192.0.2.7", "192.0.2.7", "192.0.2.7", "1"},
		{"192.0.2.10-192.0.2.20", "192.0.2.10-192.0.2.20", "192.0.2.10", "192.0.2.20", "11"},
		{"192.0.2.10 - 192.0.2.20", "192.0.2.10-192.0.2.20", "192.0.2.10", "192.0.2.20", "11"},
		{"192.0.2.0-192.0.2.255", "192.0.2.0/24", "192.0.2.0", "192.0.2.255", "256"},
		{"192.0.2.5-192.0.2.5", "192.0.2.5", "192.0.2.5", "192.0.2.5", "1"},
		{"0.0.0.0/0", "0.0.0.0/0", "0.0.0.0", "255.255.255.255", "4294967296"},
		{"2001:db8::/64", "2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", "18446744073709551616"},
		{"2001:db8::/48", "2001:db8::/48", "2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", "1208925819614629174706176"},
		{"2001:DB8::1", "2001:db8::1", "2001:db8::1", "2001:db8::1", "1"},
		{"2001:db8::1-2001:db8::ff", "2001:db8::1-2001:db8::ff", "2001:db8::1", "2001:db8::ff", "255"},
		{"::/0", "::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "340282366920938463463374607431768211456"},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.in)
		if err != nil {
			t.Errorf("ParseRange(%q): %v", tt.in, err)
			continue
		}
		if r.String() != tt.canonical || r.First.String() != tt.first || r.Last.String() != tt.last || r.Size().String() != tt.size {
			t.Errorf("ParseRange(%q) = %s [%s, %s] size %s; want %s [%s, %s] size %s",
				tt.in, r, r.First, r.Last, r.Size(), tt.canonical, tt.first, tt.last, tt.size)
		}
	}
}

func TestParseRangeErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty address entry: expected a CIDR (192.0.2.0/24), a range (192.0.2.10-192.0.2.20) or a single IP"},
		{"192.0.2.5/24", "192.0.2.5/24 has host bits set; did you mean 192.0.2.0/24?"},
		{"2001:db8::1/64", "2001:db8::1/64 has host bits set; did you mean 2001:db8::/64?"},
		{"192.0.2.10-192.0.2.1", "192.0.2.10-192.0.2.1 is reversed (the start is after the end); did you mean 192.0.2.1-192.0.2.10?"},
		{"192.0.2.1-2001:db8::1", "192.0.2.1-2001:db8::1 mixes IPv4 and IPv6; both ends of a range must be the same family"},
		{"192.0.2.0/33", `CIDR "192.0.2.0/33": prefix length 33 is too long for IPv4 (at most 32)`},
		{"2001:db8::/129", `CIDR "2001:db8::/129": prefix length 129 is too long for IPv6 (at most 128)`},
		{"192.0.2.0/x", `CIDR "192.0.2.0/x": prefix length "x" is not a number`},
		{"192.0.2.0/+8", `CIDR "192.0.2.0/+8": prefix length "+8" is not a number`},
		{"192.0.2.0/", `CIDR "192.0.2.0/": prefix length "" is not a number`},
		{"300.0.2.0/24", `CIDR "300.0.2.0/24": "300.0.2.0" is not an IP address (IPv4 field has value >255)`},
		{"192.0.2.1-", `"192.0.2.1-" is missing the start or the end of the range; write start-end, e.g. 192.0.2.10-192.0.2.20`},
		{"1-2-3", `"1-2-3" has more than one '-'; a range is written start-end, e.g. 192.0.2.10-192.0.2.20`},
		{"192.0.2.0/28-192.0.2.100", `"192.0.2.0/28-192.0.2.100" mixes a CIDR into a range; both ends of a range must be single IPs`},
		{"192.0.2.1-foo", `range "192.0.2.1-foo": "foo" is not an IP address (unable to parse IP)`},
		{"pool", `"pool" is not an IP address (unable to parse IP); expected a CIDR (192.0.2.0/24), a range (192.0.2.10-192.0.2.20) or a single IP`},
		{"fe80::1%eth0", `"fe80::1%eth0" has an IPv6 zone; pool addresses cannot have zones, write fe80::1`},
		{"::ffff:192.0.2.1", `"::ffff:192.0.2.1" is an IPv4-mapped IPv6 address; write it as 192.0.2.1`},
		{"192.000.2.1", `"192.000.2.1" is not an IP address (IPv4 field has octet with leading zero); expected a CIDR (192.0.2.0/24), a range (192.0.2.10-192.0.2.20) or a single IP`},
	}
	for _, tt := range tests {
		_, err := ParseRange(tt.in)
		if err == nil {
			t.Errorf("ParseRange(%q) succeeded, want %q", tt.in, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseRange(%q) error\n got %s\nwant %s", tt.in, err, tt.want)
		}
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Entry != tt.in {
			t.Errorf("ParseRange(%q) error is not a *ParseError naming the entry: %#v", tt.in, err)
		}
	}
}

func TestParseRangesReportsEveryBadEntry(t *testing.T) {
	rs, err := ParseRanges([]string{"192.0.2.0/24", "192.0.2.5/24", "2001:db8::/64", "b-a"})
	if len(rs) != 2 || rs[0].String() != "192.0.2.0/24" || rs[1].String() != "2001:db8::/64" {
		t.Errorf("good ranges = %v", rs)
	}
	var pes ParseErrors
	if !errors.As(err, &pes) || len(pes) != 2 || pes[0].Index != 1 || pes[1].Index != 3 {
		t.Fatalf("err = %#v, want two ParseErrors at 1 and 3", err)
	}
	if !strings.HasPrefix(err.Error(), "192.0.2.5/24 has host bits set; did you mean 192.0.2.0/24?; range \"b-a\"") {
		t.Errorf("joined message: %s", err)
	}
	if _, err := ParseRanges([]string{"192.0.2.1"}); err != nil {
		t.Errorf("all good: err = %v (a typed nil would be a bug)", err)
	}
}

func TestRangePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.0-192.0.2.127":    "192.0.2.0/25",
		"192.0.2.1-192.0.2.128":    "",
		"192.0.2.128-192.0.3.127":  "",
		"10.0.0.0-10.255.255.255":  "10.0.0.0/8",
		"::-::ffff:ffff:ffff:ffff": "::/64",
	} {
		r, err := ParseRange(in)
		if err != nil {
			t.Fatal(err)
		}
		p, ok := r.Prefix()
		if got := map[bool]string{true: p.String(), false: ""}[ok]; got != want {
			t.Errorf("%s.Prefix() = %q, want %q", in, got, want)
		}
	}
}

func TestRangeContains(t *testing.T) {
	r, _ := ParseRange("192.0.2.10-192.0.2.20")
	for ip, want := range map[string]bool{"192.0.2.9": false, "192.0.2.10": true, "192.0.2.20": true, "192.0.2.21": false, "::ffff:192.0.2.15": false} {
		if got := r.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Contains(%s) = %v", ip, got)
		}
	}
}

// FuzzParseRange checks that the parser never panics, that every accepted
// entry round-trips through its canonical spelling, and that every error is
// a *ParseError naming the entry.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"192.0.2.0/24", "192.0.2.5/24", "192.0.2.1-192.0.2.9", "2001:db8::/64", "::/0",
		"2001:db8::1-2001:db8::2", "192.0.2.1-2001:db8::1", "fe80::1%eth0", "::ffff:1.2.3.4", "1-2-3", "", " / ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Entry != s || pe.Msg == "" {
				t.Fatalf("ParseRange(%q): bad error %#v", s, err)
			}
			return
		}
		if !r.First.IsValid() || r.First.Is4() != r.Last.Is4() || r.First.Compare(r.Last) > 0 || r.First.Zone() != "" {
			t.Fatalf("ParseRange(%q) = invalid range [%v, %v]", s, r.First, r.Last)
		}
		again, err := ParseRange(r.String())
		if err != nil || again != r {
			t.Fatalf("ParseRange(%q) = %s, which re-parses as %v, %v", s, r, again, err)
		}
		if r.Size().Sign() <= 0 {
			t.Fatalf("ParseRange(%q): size %v", s, r.Size())
		}
	})
}

func TestIntervalAlgebra(t *testing.T) {
	rs := func(ss ...string) []Range {
		out, err := ParseRanges(ss)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	str := func(rs []Range) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.String())
		}
		return strings.Join(s, " ")
	}
	if got := str(normalize(rs("2001:db8::/64", "192.0.2.128/25", "192.0.2.0/25", "192.0.2.7"))); got != "192.0.2.0/24 2001:db8::/64" {
		t.Errorf("normalize = %s", got)
	}
	if got := str(subtract(rs("192.0.2.0/24"), rs("192.0.2.16/28", "192.0.2.255"))); got != "192.0.2.0/28 192.0.2.32-192.0.2.254" {
		t.Errorf("subtract = %s", got)
	}
	if got := str(intersect(rs("192.0.2.0/24", "2001:db8::/64"), rs("192.0.2.250-192.0.3.5", "2001:db8::5"))); got != "192.0.2.250-192.0.2.255 2001:db8::5" {
		t.Errorf("intersect = %s", got)
	}
}
