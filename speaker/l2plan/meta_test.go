package l2plan

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/portico-lb/portico/internal/election"
	"github.com/portico-lb/portico/internal/membership"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{Ready: true, Interfaces: eth1(true)},
		{Ready: false, Interfaces: []election.Interface{}},
		{Ready: true},
		{Ready: true, Interfaces: []election.Interface{
			{Name: "eth0", Carrier: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
			{Name: "eth1", Prefixes: []netip.Prefix{dataNet, netip.MustParsePrefix("2001:db8::/64")}},
		}},
	} {
		b := EncodeMeta(m, membership.MaxMetaSize)
		got, err := DecodeMeta(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("%+v -> %s -> %+v, %v", m, b, got, err)
		}
	}
}

func TestMetaTooBigDegrades(t *testing.T) {
	var ifs []election.Interface
	for i := range 12 {
		ifs = append(ifs, election.Interface{Name: fmt.Sprintf("ens%d", i), Carrier: true,
			Prefixes: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/64", i))}})
	}
	b := EncodeMeta(Meta{Ready: true, Interfaces: ifs}, membership.MaxMetaSize)
	got, err := DecodeMeta(b)
	if err != nil || len(b) > membership.MaxMetaSize || !got.Ready || len(got.Interfaces) != 12 || got.Interfaces[0].Prefixes != nil {
		t.Errorf("%d bytes -> %+v, %v (want prefixes dropped)", len(b), got, err)
	}
	for i := range 40 {
		ifs = append(ifs, election.Interface{Name: fmt.Sprintf("extra%d", i)})
	}
	got, err = DecodeMeta(EncodeMeta(Meta{Ready: true, Interfaces: ifs}, membership.MaxMetaSize))
	if err != nil || !got.Ready || got.Interfaces != nil {
		t.Errorf("far too many interfaces: %+v, %v (want unknown interfaces)", got, err)
	}
}

func TestMetaForeignAndMalformed(t *testing.T) {
	for in, wantErr := range map[string]bool{
		``:                     false,
		`{"v":2,"x":"future"}`: false,
		`not json`:             true,
		`{"v":1,"r":true,"k":true,"i":[{"n":""}]}`:                 true,
		`{"v":1,"r":true,"k":true,"i":[{"n":"eth0","p":["bad"]}]}`: true,
	} {
		got, err := DecodeMeta([]byte(in))
		// Malformed metadata must not count as ready; foreign versions do.
		if (err != nil) != wantErr || got.Ready == wantErr || got.Interfaces != nil {
			t.Errorf("%q: %+v, %v", in, got, err)
		}
	}
}

// FuzzDecodeMeta: metadata comes from other hosts; decoding never panics and
// whatever decodes re-encodes to the same meaning.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(EncodeMeta(Meta{Ready: true, Interfaces: eth1(true)}, membership.MaxMetaSize))
	f.Add([]byte(`{"v":1,"k":true,"i":[{"n":"x","c":true,"p":["::/0"]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		again, err := DecodeMeta(EncodeMeta(m, 1<<20))
		if err != nil || !reflect.DeepEqual(normMeta(again), normMeta(m)) {
			t.Fatalf("%q: %+v re-decodes as %+v, %v", b, m, again, err)
		}
	})
}

func normMeta(m Meta) Meta {
	m.Interfaces = sortedIfaces(m.Interfaces)
	for i := range m.Interfaces {
		if len(m.Interfaces[i].Prefixes) == 0 {
			m.Interfaces[i].Prefixes = nil
		}
	}
	return m
}
