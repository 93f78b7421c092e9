package ipam

import (
	"testing"
)

func TestU128Arithmetic(t *testing.T) {
	if got := (u128{1, 0}).sub1(); got != (u128{0, ^uint64(0)}) {
		t.Errorf("borrow in sub1: %v", got)
	}
	if got := (u128{0, ^uint64(0)}).add1(); got != (u128{1, 0}) {
		t.Errorf("carry in add1: %v", got)
	}
	if got := (u128{2, 1}).sub(u128{0, 2}); got != (u128{1, ^uint64(0)}) {
		t.Errorf("borrow in sub: %v", got)
	}
	if maxU128.add1() != (u128{}) || (u128{}).sub1() != maxU128 {
		t.Error("wrap-around")
	}
	if maxU128.big().String() != "340282366920938463463374607431768211455" {
		t.Errorf("big: %v", maxU128.big())
	}
}

// TestBuggySlotSpace checks the avoidBuggyIPs slot mapping: .0 and .255
// have no slot, neighbours across a block boundary get consecutive slots,
// and ceil/floor find the nearest allowed address, or none at the ends of
// the IPv4 space.
func TestBuggySlotSpace(t *testing.T) {
	sp := space{IPv4, true}
	s254, _ := sp.slot(ip("192.0.2.254"))
	s1, _ := sp.slot(ip("192.0.3.1"))
	if s254.add1() != s1 || sp.addr(s1) != ip("192.0.3.1") || sp.addr(s254) != ip("192.0.2.254") {
		t.Errorf("slots %v %v", s254, s1)
	}
	for _, bad := range []string{"192.0.2.0", "192.0.2.255"} {
		if _, ok := sp.slot(ip(bad)); ok {
			t.Errorf("%s has a slot", bad)
		}
	}
	tests := []struct {
		in, ceil, floor string // "" = none
	}{
		{"192.0.2.7", "192.0.2.7", "192.0.2.7"},
		{"192.0.2.0", "192.0.2.1", "192.0.1.254"},
		{"192.0.2.255", "192.0.3.1", "192.0.2.254"},
		{"0.0.0.0", "0.0.0.1", ""},
		{"255.255.255.255", "", "255.255.255.254"},
	}
	name := func(s u128, ok bool) string {
		if !ok {
			return ""
		}
		return sp.addr(s).String()
	}
	for _, tt := range tests {
		if got := name(sp.ceil(ip(tt.in))); got != tt.ceil {
			t.Errorf("ceil(%s) = %q, want %q", tt.in, got, tt.ceil)
		}
		if got := name(sp.floor(ip(tt.in))); got != tt.floor {
			t.Errorf("floor(%s) = %q, want %q", tt.in, got, tt.floor)
		}
	}
}
