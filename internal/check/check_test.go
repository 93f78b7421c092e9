package check

import (
	"cmp"
	"strings"
	"testing"

	"github.com/portico-lb/portico/internal/manifest"
)

func TestRun(t *testing.T) {
	cases := []struct {
		name    string
		files   []string
		opts    Options
		stdin   string
		want    []string // every finding, in order
		checked int
		skipped int
	}{
		{name: "good configuration", files: []string{"testdata/good.yaml"}, checked: 6},
		{
			name:  "mixed file",
			files: []string{"testdata/mixed.yaml"},
			want: []string{
				`testdata/mixed.yaml: IPAddressPool/office: spec.addresses[1]: must be a CIDR (192.0.2.0/24), an inclusive range without spaces (192.0.2.10-192.0.2.20) or a single IP (192.0.2.7)`,
				`testdata/mixed.yaml: IPAddressPool/lab: spec.autoAsign: unknown field "autoAsign"; did you mean "autoAssign"?`,
				`testdata/mixed.yaml: L2Advertisement/office: spec.ipAddressPools[1]: IPAddressPool "warehouse" does not exist; create it or remove it from the list (the other pools are still advertised)`,
				`testdata/mixed.yaml: BGPPeer/tor: spec.bfdProfile: BFDProfile "fast" does not exist; create it or clear spec.bfdProfile (the session runs without BFD until then)`,
				`testdata/mixed.yaml: BGPPeer/tor: spec.holdTime: must be 0s (no keepalives) or at least 3s (RFC 4271); for fast failure detection use a BFDProfile instead`,
				`testdata/mixed.yaml: BGPAdvertisement/routed: spec.aggregationLength: 24 is shorter than the prefix 192.0.2.128/25 of pool "lab": the aggregated route would cover addresses outside the pool; use at least 25 or list this pool in another BGPAdvertisement`,
				`testdata/mixed.yaml: BGPAdvertisement/routed: spec.communities[0]: community alias "no-export" is not defined by any Community object; define it or write the value (e.g. 64500:100)`,
				`testdata/mixed.yaml: BGPAdvertisement/routed: spec.localPref: LOCAL_PREF is an iBGP attribute and is not sent to the eBGP peers tor (myASN differs from peerASN); list only iBGP peers in spec.peers or remove spec.localPref (the routes are announced without it)`,
				`testdata/mixed.yaml: IPAddressPool/lab: defined again (first in testdata/mixed.yaml, document 2 (line 12)): kubectl apply keeps only the last one; remove or rename one of them`,
				`testdata/mixed.yaml: IPAdressPool/typo: unknown kind: portico.dev/v1alpha1 IPAdressPool does not exist; did you mean apiVersion: portico.dev/v1alpha1, kind: IPAddressPool?`,
				`testdata/mixed.yaml: IPAddressPool/old: not a Portico object but metallb.io/v1beta1 IPAddressPool: convert it with ` + "`portico migrate --from metallb`",
				`testdata/mixed.yaml: Deployment/web: not a Portico object (apps/v1 Deployment): portico check reads only portico.dev/v1alpha1 objects (BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement, ServiceAnnouncement, SpeakerStatus); use --skip-other-kinds to pass over the others`,
				`testdata/mixed.yaml: document 10 (line 76): malformed YAML: yaml: line 79: did not find expected key`,
			},
			checked: 5,
		},
		{
			name:  "overlapping pools and a wrong version",
			files: []string{"-"},
			stdin: "apiVersion: portico.dev/v1alpha1\nkind: IPAddressPool\nmetadata: {name: b}\nspec: {addresses: [192.0.2.0/24]}\n---\n" +
				"apiVersion: portico.dev/v1alpha1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [192.0.2.128-192.0.2.200]}\n---\n" +
				"apiVersion: portico.dev/v1\nkind: BGPPeer\nmetadata: {name: x}\n",
			want: []string{
				`<stdin>: IPAddressPool/b: spec.addresses: overlaps pool "a" on 192.0.2.128-192.0.2.200; this pool is older and keeps those addresses`,
				`<stdin>: IPAddressPool/a: spec.addresses: overlaps pool "b" on 192.0.2.128-192.0.2.200; "b" is older and keeps those addresses, so this pool does not allocate them`,
				`<stdin>: BGPPeer/x: unknown kind: portico.dev/v1 BGPPeer does not exist; did you mean apiVersion: portico.dev/v1alpha1, kind: BGPPeer?`,
			},
			checked: 2,
		},
		{
			name:    "other kinds skipped when asked",
			files:   []string{"testdata/good.yaml", "-"},
			opts:    Options{SkipOtherKinds: true},
			checked: 6, skipped: 1,
		},
		{
			name:  "files form one configuration",
			files: []string{"testdata/good.yaml", "testdata/good.yaml"},
			want: []string{
				`testdata/good.yaml: IPAddressPool/default: defined again (first in testdata/good.yaml, document 1 (line 2)): kubectl apply keeps only the last one; remove or rename one of them`,
				`testdata/good.yaml: L2Advertisement/default: defined again (first in testdata/good.yaml, document 2 (line 8)): kubectl apply keeps only the last one; remove or rename one of them`,
				`testdata/good.yaml: BGPPeer/tor: defined again (first in testdata/good.yaml, document 3 (line 14)): kubectl apply keeps only the last one; remove or rename one of them`,
				`testdata/good.yaml: BFDProfile/fast: defined again (first in testdata/good.yaml, document 5 (line 24)): kubectl apply keeps only the last one; remove or rename one of them`,
				`testdata/good.yaml: BGPAdvertisement/default: defined again (first in testdata/good.yaml, document 6 (line 29)): kubectl apply keeps only the last one; remove or rename one of them`,
				`testdata/good.yaml: Community/well-known: defined again (first in testdata/good.yaml, document 7 (line 34)): kubectl apply keeps only the last one; remove or rename one of them`,
			},
			checked: 6,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdin := cmp.Or(tc.stdin, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
			docs, err := manifest.ReadFiles(tc.files, strings.NewReader(stdin))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Run(docs, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range r.Findings {
				got = append(got, f.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if r.Checked != tc.checked || len(r.Skipped) != tc.skipped {
				t.Errorf("checked %d skipped %v, want %d and %d", r.Checked, r.Skipped, tc.checked, tc.skipped)
			}
		})
	}
}

// TestDecodeLeavesOutBadFields: an object with a field of the wrong type still
// takes part in the cross-object checks, so its references are not reported as
// missing.
func TestDecodeLeavesOutBadFields(t *testing.T) {
	docs := manifest.Parse("f.yaml", []byte(`apiVersion: portico.dev/v1alpha1
kind: IPAddressPool
metadata: {name: p}
spec: {addresses: [192.0.2.0/24], autoAssign: "no", allocation: {priority: high}}
---
apiVersion: portico.dev/v1alpha1
kind: L2Advertisement
metadata: {name: a}
spec: {ipAddressPools: [p]}
`))
	r, err := Run(docs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		if f.Kind != "IPAddressPool" || !strings.Contains(f.Message, "must be of type") {
			t.Errorf("unexpected finding %s", f)
		}
	}
	if len(r.Findings) != 2 {
		t.Errorf("findings %v", r.Findings)
	}
	if _, ok := r.Config.Pool("p"); !ok {
		t.Error("the pool is not in the configuration")
	}
}
