package ipam

import (
	"fmt"
	"testing"
)

func TestSelectPools(t *testing.T) {
	p := func(name string, prio int, auto bool, mod func(*Pool)) Pool {
		pool := Pool{Name: name, Priority: prio, AutoAssign: auto}
		if mod != nil {
			mod(&pool)
		}
		return pool
	}
	nsProd := func(p *Pool) { p.Namespaces = []string{"prod"} }
	nsSel := func(p *Pool) { p.NamespaceSelector = MatchLabels{"team": "red"} }
	svcSel := func(p *Pool) {
		p.ServiceSelector = MatcherFunc(func(l map[string]string) bool { return l["tier"] == "edge" })
	}
	both := func(p *Pool) { nsProd(p); svcSel(p) }
	pools := []Pool{
		p("open-z", 0, true, nil),
		p("open-a", 5, true, nil),
		p("open-b", 0, true, nil),
		p("manual", 0, false, nil),
		p("manual-pinned", 1, false, nsProd),
		p("prod-lo", 10, true, nsProd),
		p("prod-hi", 1, true, nsProd),
		p("prod-none", 0, true, nsProd),
		p("red", 3, true, nsSel),
		p("edge", 2, true, svcSel),
		p("prod-edge", 1, true, both),
	}
	prodEdge := Service{Key: "prod/web", Labels: map[string]string{"tier": "edge"}}
	prod := Service{Key: "prod/web"}
	red := Service{Key: "dev/web", NamespaceLabels: map[string]string{"team": "red"}}
	dev := Service{Key: "dev/web"}
	tests := []struct {
		name      string
		pools     []Pool
		svc       Service
		requested string
		want      string
		err       string
		reason    Reason
	}{
		{"pinned first by priority then name, 0 last; then open pools", pools, prodEdge, "",
			"[prod-edge prod-hi edge prod-lo prod-none open-a open-b open-z]", "", ""},
		{"service selector must match too", pools, prod, "", "[prod-hi prod-lo prod-none open-a open-b open-z]", "", ""},
		{"namespace selector", pools, red, "", "[red open-a open-b open-z]", "", ""},
		{"unpinned only", pools, dev, "", "[open-a open-b open-z]", "", ""},
		{"manual pool by name", pools, dev, "manual", "[manual]", "", ""},
		{"manual pinned pool by name", pools, prod, "manual-pinned", "[manual-pinned]", "", ""},
		{"missing pool", pools, dev, "nope", "", `pool "nope" does not exist`, ReasonNoSuchPool},
		{"pinned to another namespace", pools, dev, "prod-hi", "",
			`pool "prod-hi" is reserved for namespaces "prod", and namespace "dev" is not one of them`, ReasonNotAllowed},
		{"namespace selector refuses", pools, dev, "red", "",
			`pool "red" is reserved for a namespace selector, and namespace "dev" is not one of them`, ReasonNotAllowed},
		{"service selector refuses", pools, prod, "prod-edge", "",
			`pool "prod-edge" is reserved for services matching its service selector, and prod/web does not match`, ReasonNotAllowed},
		{"list and selector", []Pool{p("x", 0, true, func(p *Pool) { nsProd(p); nsSel(p) })}, dev, "x", "",
			`pool "x" is reserved for namespaces "prod" and a namespace selector, and namespace "dev" is not one of them`, ReasonNotAllowed},
		{"list or selector admits", []Pool{p("x", 0, true, func(p *Pool) { nsProd(p); nsSel(p) })}, red, "", "[x]", "", ""},
		{"nothing available", []Pool{p("manual", 0, false, nil), p("prod", 0, true, nsProd)}, dev, "", "",
			`no address pool is available to dev/web: 1 pool(s) are reserved for other namespaces or services, 1 have autoAssign disabled and must be requested by name`, ReasonNotAllowed},
		{"no pools", nil, dev, "", "", `no address pool exists; create an IPAddressPool`, ReasonNotAllowed},
	}
	for _, tt := range tests {
		got, err := SelectPools(tt.pools, tt.svc, tt.requested)
		wantErr(t, tt.name, err, tt.err, tt.reason)
		if err == nil && fmt.Sprint(got) != tt.want {
			t.Errorf("%s: got %v, want %s", tt.name, got, tt.want)
		}
	}
}

// TestSelectPoolsIgnoresInputOrder checks determinism: any order of the
// same pools gives the same answer.
func TestSelectPoolsIgnoresInputOrder(t *testing.T) {
	pools := []Pool{{Name: "c", AutoAssign: true}, {Name: "a", AutoAssign: true, Priority: 2}, {Name: "b", AutoAssign: true, Priority: 2}, {Name: "d", AutoAssign: true, Namespaces: []string{"ns"}}}
	first, _ := SelectPools(pools, Service{Key: "ns/s"}, "")
	for i := range pools {
		rot := append(append([]Pool{}, pools[i:]...), pools[:i]...)
		got, _ := SelectPools(rot, Service{Key: "ns/s"}, "")
		if fmt.Sprint(got) != fmt.Sprint(first) || fmt.Sprint(got) != "[d a b c]" {
			t.Errorf("rotation %d: %v vs %v", i, got, first)
		}
	}
}

func TestAllocatorSelectPools(t *testing.T) {
	manual := mkPool(t, "manual", 0, "192.0.2.0/24")
	manual.AutoAssign = false
	a := newAlloc(t, manual, mkPool(t, "auto", 0, "198.51.100.0/24"))
	got, err := a.SelectPools(Service{Key: "ns/s"}, "")
	if err != nil || fmt.Sprint(got) != "[auto]" {
		t.Errorf("SelectPools = %v, %v", got, err)
	}
}

func TestMatchLabels(t *testing.T) {
	m := MatchLabels{"a": "1"}
	if !m.Matches(map[string]string{"a": "1", "b": "2"}) || m.Matches(map[string]string{"a": "2"}) || m.Matches(nil) || !(MatchLabels{}).Matches(nil) {
		t.Error("MatchLabels semantics")
	}
}
