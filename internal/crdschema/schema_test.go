package crdschema

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/portico-lb/portico/internal/manifest"
)

// TestEmbeddedCRDsAreCurrent fails when crds/ differs from config/crd, so the
// CLI never checks against stale schemas.
func TestEmbeddedCRDsAreCurrent(t *testing.T) {
	want, _ := filepath.Glob("../../config/crd/*.yaml")
	got, _ := filepath.Glob("crds/*.yaml")
	base := func(ps []string) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = filepath.Base(p)
		}
		return out
	}
	if len(want) == 0 || !slices.Equal(base(want), base(got)) {
		t.Fatalf("crds/ holds %v, config/crd holds %v: run `go generate ./internal/crdschema`", base(got), base(want))
	}
	for _, w := range want {
		a, _ := os.ReadFile(w)
		b, _ := os.ReadFile(filepath.Join("crds", filepath.Base(w)))
		if !bytes.Equal(a, b) {
			t.Errorf("crds/%s differs from %s: run `go generate ./internal/crdschema`", filepath.Base(w), w)
		}
	}
}

// TestEveryRuleHasAnEquivalent fails when a CRD carries a CEL rule that rules.go
// does not evaluate (a new rule, or an edited one).
func TestEveryRuleHasAnEquivalent(t *testing.T) {
	set, err := Portico()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range set.Kinds() {
		forEachSchema(k.schema, func(s *specSchema) {
			for _, r := range celRules(s) {
				n++
				if rules[ruleKey(r.text)] == nil {
					t.Errorf("%s: no Go equivalent for the rule %q (message %q): add one to rules.go under key %q",
						k.Kind, r.text, r.message, ruleKey(r.text))
				}
			}
		})
	}
	if n < len(rules) {
		t.Errorf("only %d rules in the CRDs for %d equivalents: remove the ones no CRD uses", n, len(rules))
	}
}

func TestKinds(t *testing.T) {
	set, err := Portico()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range set.Kinds() {
		names = append(names, k.Kind)
	}
	want := []string{"BFDProfile", "BGPAdvertisement", "BGPPeer", "Community", "IPAddressPool", "L2Advertisement", "ServiceAnnouncement", "SpeakerStatus"}
	if !slices.Equal(names, want) {
		t.Errorf("kinds %v", names)
	}
	if k := set.Lookup("portico.dev/v1alpha1", "ServiceAnnouncement"); k == nil || !k.Namespaced || k.Plural != "serviceannouncements" {
		t.Errorf("ServiceAnnouncement: %+v", k)
	}
	if set.Lookup("portico.dev/v1", "IPAddressPool") != nil {
		t.Error("found a version that does not exist")
	}
}

// TestValidate lists inputs and the errors they must produce: every string of
// want must be in the field+message of one error; none means no error.
func TestValidate(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"good pool", "kind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [192.0.2.0/24, 198.51.100.1-198.51.100.9, 2001:db8::/64, 203.0.113.7]}", nil},
		{"exported pool with status and server fields", "kind: IPAddressPool\nmetadata: {name: a, uid: x, resourceVersion: '5', creationTimestamp: '2024-01-01T00:00:00Z', annotations: {a: b}}\nspec: {addresses: [192.0.2.0/24]}\nstatus: {assignedIPv4: 3, bogus: 1}", nil},
		{"unknown spec field with suggestion", "kind: IPAddressPool\nmetadata: {name: a}\nspec: {adresses: [192.0.2.0/24]}",
			[]string{`spec.adresses: unknown field "adresses"; did you mean "addresses"?`, "spec.addresses: Required value"}},
		{"unknown top-level field", "kind: IPAddressPool\nmetadata: {name: a}\nspecs: {}\nspec: {addresses: [192.0.2.0/24]}", []string{`specs: unknown field "specs"; did you mean "spec"?`}},
		{"unknown field far from any", "kind: BFDProfile\nmetadata: {name: a}\nspec: {echoMode: true}", []string{`spec.echoMode: unknown field "echoMode"; the fields here are detectMultiplier, minimumTTL`}},
		{"unknown metadata field", "kind: BFDProfile\nmetadata: {name: a, lables: {x: y}}", []string{`metadata.lables: unknown field "lables"; did you mean "labels"?`}},
		{"no metadata", "kind: BFDProfile\nspec: {}", []string{"metadata.name: Required value"}},
		{"bad name", "kind: BFDProfile\nmetadata: {name: Fast_BFD}", []string{`metadata.name: Invalid value: "Fast_BFD": a lowercase RFC 1123 subdomain`}},
		{"bad label", "kind: BFDProfile\nmetadata: {name: a, labels: {'a b': x}}", []string{"metadata.labels: Invalid value"}},
		{"wrong type", "kind: BGPPeer\nmetadata: {name: a}\nspec: {myASN: '64500', peerASN: 1, peerAddress: 192.0.2.1}", []string{"spec.myASN: must be of type integer"}},
		{"bounds", "kind: BFDProfile\nmetadata: {name: a}\nspec: {receiveInterval: 5, detectMultiplier: 300}",
			[]string{"spec.receiveInterval: should be greater than or equal to 10", "spec.detectMultiplier: should be less than or equal to 255"}},
		{"address rules", "kind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [not-an-ip, 192.0.2.5/24, 192.0.2.9-192.0.2.1, 192.0.2.1-2001:db8::1, '::ffff:192.0.2.1', 2001:db8::9-2001:db8::1]}",
			[]string{"spec.addresses[0]: must be a CIDR", "spec.addresses[1]: CIDR has host bits set", "spec.addresses[2]: range end is before its start", "spec.addresses[3]: range mixes IPv4 and IPv6", "spec.addresses[4]: must be a CIDR"}},
		{"duplicate in a set list", "kind: L2Advertisement\nmetadata: {name: a}\nspec: {ipAddressPools: [x, y, x]}", []string{`spec.ipAddressPools[2]: duplicate value "x"`}},
		{"duplicate in a map list", "kind: Community\nmetadata: {name: a}\nspec: {communities: [{name: x, value: '1:1'}, {name: x, value: '1:2'}]}", []string{`spec.communities[1]: duplicate entry with name "x"`}},
		{"community values", "kind: Community\nmetadata: {name: a}\nspec: {communities: [{name: a, value: '65536:1'}, {name: b, value: 'large:1:2:3'}, {name: c, value: 'nope'}]}",
			[]string{"spec.communities[0].value: must be a standard community", "spec.communities[2].value: must be a standard community"}},
		{"community refs", "kind: BGPAdvertisement\nmetadata: {name: a}\nspec: {communities: ['64500:100', 'large:1:2:4294967296', no-export, NO_EXPORT]}",
			[]string{"spec.communities[1]: must be a standard community", "spec.communities[3]: must be a standard community"}},
		{"peer rules", "kind: BGPPeer\nmetadata: {name: a}\nspec: {myASN: 1, peerASN: 2, peerAddress: 192.0.2.1/32, sourceAddress: fe80::1%eth0, routerID: 2001:db8::1, holdTime: 2s, connectTime: '10', keepaliveTime: 1m}",
			[]string{"spec.peerAddress: must be an IPv4 or IPv6 address", "spec.sourceAddress: must be an IPv4 or IPv6 address", "spec.routerID: must be an IPv4 address",
				"spec.holdTime: must be 0s (no keepalives) or at least 3s", "spec.connectTime: must be a duration such as 90s", "spec: keepaliveTime must not be greater than holdTime"}},
		{"keepalive against the default hold time", "kind: BGPPeer\nmetadata: {name: a}\nspec: {myASN: 1, peerASN: 2, peerAddress: 192.0.2.1, keepaliveTime: 100s}",
			[]string{"spec: keepaliveTime must not be greater than holdTime"}},
		{"missing required", "kind: BGPPeer\nmetadata: {name: a}\nspec: {myASN: 0}", []string{"spec.myASN: should be greater than or equal to 1", "spec.peerASN: Required value", "spec.peerAddress: Required value"}},
		{"namespaced kind", "kind: ServiceAnnouncement\nmetadata: {name: web, namespace: shop}\nstatus: {l2: [{ip: x}]}", nil},
	}
	set, err := Portico()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs := manifest.Parse("t", []byte("apiVersion: portico.dev/v1alpha1\n"+tc.doc))
			if len(docs) != 1 || docs[0].Err != nil {
				t.Fatalf("bad test input: %+v", docs)
			}
			k := set.Lookup(docs[0].APIVersion(), docs[0].Kind())
			_, errs := k.Validate(docs[0].Object)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
					t.Errorf("no error %q in:\n  %s", w, strings.Join(got, "\n  "))
				}
			}
			if len(tc.want) == 0 && len(got) > 0 {
				t.Errorf("unexpected errors:\n  %s", strings.Join(got, "\n  "))
			}
		})
	}
}

func TestValidateAppliesDefaultsAndKeepsInput(t *testing.T) {
	set, _ := Portico()
	docs := manifest.Parse("t", []byte("apiVersion: portico.dev/v1alpha1\nkind: BGPPeer\nmetadata: {name: a}\nspec: {myASN: 1, peerASN: 2, peerAddress: 192.0.2.1}\n"))
	in := docs[0].Object
	out, errs := set.Lookup("portico.dev/v1alpha1", "BGPPeer").Validate(in)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	spec := out["spec"].(map[string]any)
	if spec["holdTime"] != "90s" || spec["peerPort"] != int64(179) {
		t.Errorf("defaults not applied: %v", spec)
	}
	if _, ok := in["spec"].(map[string]any)["holdTime"]; ok {
		t.Error("the input was modified")
	}
}

type specSchema = spec.Schema

// forEachSchema calls f on s and every schema below it.
func forEachSchema(s *spec.Schema, f func(*spec.Schema)) {
	f(s)
	for _, p := range s.Properties {
		forEachSchema(&p, f)
	}
	if s.Items != nil && s.Items.Schema != nil {
		forEachSchema(s.Items.Schema, f)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		forEachSchema(s.AdditionalProperties.Schema, f)
	}
}
