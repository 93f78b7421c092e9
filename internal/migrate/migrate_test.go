package migrate

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/portico-lb/portico/api/v1alpha1"
	"github.com/portico-lb/portico/internal/manifest"
)

var update = flag.Bool("update", false, "rewrite the .out.yaml and .notes golden files")

// TestGolden converts each input of testdata and compares the YAML written and
// the notes (with the commands and what portico check says of the result) with
// the golden files next to it. go test -run TestGolden -update rewrites them.
func TestGolden(t *testing.T) {
	cases := []struct {
		from      From
		input     string
		malformed bool
		findings  int // what check finds in the converted objects
	}{
		{MetalLB, "metallb/l2-simple.yaml", false, 0},
		{MetalLB, "metallb/bgp-export.yaml", false, 1},
		{MetalLB, "metallb/legacy-configmap.yaml", false, 1},
		{MetalLB, "metallb/addresspool.yaml", false, 0},
		{MetalLB, "metallb/bad.yaml", true, 0},
		{OpenELB, "openelb/bgp.yaml", false, 0},
		{OpenELB, "openelb/layer2.yaml", false, 0},
		{OpenELB, "openelb/asperrack.yaml", true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.input, func(t *testing.T) {
			path := filepath.Join("testdata", tc.input)
			docs, err := manifest.ReadFiles([]string{path}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Convert(tc.from, docs, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Malformed() != tc.malformed {
				t.Errorf("malformed %v, want %v", r.Malformed(), tc.malformed)
			}
			out, err := r.YAML("converted by a test")
			if err != nil {
				t.Fatal(err)
			}
			findings, err := r.Check("")
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) != tc.findings {
				t.Errorf("check found %d problems in the result, want %d: %v", len(findings), tc.findings, findings)
			}
			var notes strings.Builder
			for _, n := range r.Notes {
				level := "note"
				if n.Error {
					level = "error"
				}
				notes.WriteString(level + ": " + n.String() + "\n")
			}
			for _, cmd := range r.Commands() {
				notes.WriteString("run: " + cmd + "\n")
			}
			for _, f := range findings {
				notes.WriteString("check: " + f.String() + "\n")
			}
			base := strings.TrimSuffix(path, ".yaml")
			golden(t, base+".out.yaml", out)
			golden(t, base+".notes", []byte(notes.String()))
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (go test -run TestGolden -update rewrites it after review):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestFields checks, field by field, conversions a user relies on.
func TestFields(t *testing.T) {
	cases := []struct {
		name, from, doc string
		check           func(t *testing.T, r *Result)
	}{
		{"MetalLB password moves to a Secret", "metallb",
			"apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: tor, namespace: metallb-system}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1, password: pa55}",
			func(t *testing.T, r *Result) {
				p := only[*v1.BGPPeer](t, r)
				if p.Spec.PasswordSecretRef == nil || p.Spec.PasswordSecretRef.Name != "tor-password" {
					t.Errorf("passwordSecretRef %+v", p.Spec.PasswordSecretRef)
				}
				wantNote(t, r, "spec.password", "plain-text password is not carried over")
				if cmds := r.Commands(); len(cmds) != 1 || cmds[0] != "kubectl create secret generic tor-password -n portico-system --from-literal=password='pa55'" {
					t.Errorf("commands %q", cmds)
				}
			}},
		{"MetalLB vrf is reported and the peer kept", "metallb",
			"apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1, vrf: red}",
			func(t *testing.T, r *Result) {
				only[*v1.BGPPeer](t, r)
				wantNote(t, r, "spec.vrf", `not carried over: Portico opens sessions in the node's default VRF, not in VRF "red"`)
			}},
		{"MetalLB ranges with spaces and CIDRs with host bits", "metallb",
			"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [' 10.0.0.1 - 10.0.0.9 ', 10.1.0.5/16, '2001:db8::1/64']}",
			func(t *testing.T, r *Result) {
				p := only[*v1.IPAddressPool](t, r)
				if got := p.Spec.Addresses; !slices.Equal(got, []v1.AddressEntry{"10.0.0.1-10.0.0.9", "10.1.0.0/16", "2001:db8::/64"}) {
					t.Errorf("addresses %v", got)
				}
				wantNote(t, r, "spec.addresses[1]", "10.1.0.5/16 has host bits set")
			}},
		{"MetalLB community alias renamed with its users", "metallb",
			"apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c}\nspec: {communities: [{name: NO_ADVERTISE, value: '65535:65282'}]}\n---\n" +
				"apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a}\nspec: {communities: [NO_ADVERTISE, '1:1']}",
			func(t *testing.T, r *Result) {
				a := only[*v1.BGPAdvertisement](t, r)
				if !slices.Equal(a.Spec.Communities, []v1.CommunityRef{"no-advertise", "1:1"}) {
					t.Errorf("communities %v", a.Spec.Communities)
				}
			}},
		{"MetalLB field names are case-sensitive, as in Kubernetes", "metallb",
			"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24], AutoAssign: false}",
			func(t *testing.T, r *Result) {
				if p := only[*v1.IPAddressPool](t, r); p.Spec.AutoAssign != nil {
					t.Errorf("AutoAssign read as autoAssign: %v", *p.Spec.AutoAssign)
				}
				wantNote(t, r, "spec.AutoAssign", "not carried over: the converter does not know this field")
			}},
		{"OpenELB peer takes its AS from the BgpConf", "openelb",
			"apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpPeer\nmetadata: {name: p}\nspec: {conf: {peerAs: 1, neighborAddress: 10.0.0.1}}\n---\n" +
				"apiVersion: network.kubesphere.io/v1alpha2\nkind: BgpConf\nmetadata: {name: default}\nspec: {as: 2}",
			func(t *testing.T, r *Result) {
				if p := only[*v1.BGPPeer](t, r); p.Spec.MyASN != 2 || p.Spec.PeerASN != 1 {
					t.Errorf("ASNs %d %d", p.Spec.MyASN, p.Spec.PeerASN)
				}
			}},
		{"names taken twice across namespaces", "metallb",
			"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: a}\nspec: {addresses: [10.0.0.0/24]}\n---\n" +
				"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: b}\nspec: {addresses: [10.0.1.0/24]}",
			func(t *testing.T, r *Result) {
				if len(r.Objects) != 2 || r.Objects[1].Obj.GetName() != "p-2" {
					t.Errorf("objects %v", r.Objects)
				}
				wantNote(t, r, "", `IPAddressPool "p" is taken by another converted IPAddressPool`)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Convert(From(tc.from), manifest.Parse("in.yaml", []byte(tc.doc)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Malformed() {
				t.Fatalf("malformed: %v", r.Notes)
			}
			tc.check(t, r)
		})
	}
	if _, err := Convert("calico", nil, Options{}); err == nil || !strings.Contains(err.Error(), `"metallb" and "openelb"`) {
		t.Errorf("unknown source: %v", err)
	}
}

// only returns the single converted object of type T.
func only[T any](t *testing.T, r *Result) T {
	t.Helper()
	var out []T
	for _, o := range r.Objects {
		if x, ok := o.Obj.(T); ok {
			out = append(out, x)
		}
	}
	if len(out) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T in %v", len(out), zero, r.Objects)
	}
	return out[0]
}

func wantNote(t *testing.T, r *Result, field, text string) {
	t.Helper()
	for _, n := range r.Notes {
		if n.Field == field && strings.Contains(n.Message, text) {
			return
		}
	}
	t.Errorf("no note on %q containing %q in %v", field, text, r.Notes)
}
