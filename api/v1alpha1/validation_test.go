package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/portico-lb/portico/internal/testcluster"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(testcluster.Main(m, &cluster))
}

// object builds a cluster-scoped Portico object of kind with the given spec (YAML).
func object(t *testing.T, kind, name, spec string) *unstructured.Unstructured {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: portico.dev/v1alpha1\nkind: %s\nmetadata:\n  name: %s\nspec:\n%s", kind, name, indent(spec))
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("bad test YAML for %s: %v\n%s", name, err, doc)
	}
	return u
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// strict makes creates refuse unknown fields, as kubectl apply does by default.
var strict = client.FieldValidation(metav1.FieldValidationStrict)

// TestSchemaRefusesBadInput checks that the API server itself, with no webhook, refuses
// each bad input with a message naming the field and saying what to write instead.
func TestSchemaRefusesBadInput(t *testing.T) {
	cases := []struct {
		name, kind, spec string
		// every string must appear in the API server's error
		want []string
	}{
		{"address not a CIDR, range or IP", "IPAddressPool", "addresses: [192.0.2.0/24, not-an-address]",
			[]string{`spec.addresses[1]`, `"not-an-address"`, "must be a CIDR (192.0.2.0/24), an inclusive range"}},
		{"range with spaces", "IPAddressPool", "addresses: [192.0.2.1 - 192.0.2.9]",
			[]string{`spec.addresses[0]`, "range without spaces"}},
		{"IPv4 range end before start", "IPAddressPool", "addresses: [192.0.2.20-192.0.2.10]",
			[]string{`spec.addresses[0]`, "range end is before its start: write the lower address first"}},
		{"range end before start in the last octets only", "IPAddressPool", "addresses: [198.51.100.9-198.51.99.200]",
			[]string{`spec.addresses[0]`, "range end is before its start"}},
		{"range mixing IPv4 and IPv6", "IPAddressPool", "addresses: [192.0.2.1-2001:db8::1]",
			[]string{`spec.addresses[0]`, "range mixes IPv4 and IPv6"}},
		{"IPv4 CIDR with host bits", "IPAddressPool", "addresses: [192.0.2.5/24]",
			[]string{`spec.addresses[0]`, `"192.0.2.5/24"`, "host bits set: write the network address instead"}},
		{"IPv6 CIDR with host bits", "IPAddressPool", "addresses: [2001:db8::5/64]",
			[]string{`spec.addresses[0]`, "host bits set"}},
		{"empty address list", "IPAddressPool", "addresses: []",
			[]string{`spec.addresses`, "at least 1 items"}},
		{"missing address list", "IPAddressPool", "autoAssign: true",
			[]string{`spec.addresses`, "Required value"}},
		{"negative priority", "IPAddressPool", "addresses: [192.0.2.0/24]\nallocation: {priority: -1}",
			[]string{`spec.allocation.priority`, "greater than or equal to 0"}},

		{"ASN 0", "BGPPeer", "myASN: 0\npeerASN: 64500\npeerAddress: 198.51.100.1",
			[]string{`spec.myASN`, "greater than or equal to 1"}},
		{"ASN above 4294967295", "BGPPeer", "myASN: 64512\npeerASN: 4294967296\npeerAddress: 198.51.100.1",
			[]string{`spec.peerASN`, "less than or equal to 4294967295"}},
		{"hold time 1s", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1\nholdTime: 1s",
			[]string{`spec.holdTime`, "must be 0s (no keepalives) or at least 3s"}},
		{"hold time 2s", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1\nholdTime: 2s",
			[]string{`spec.holdTime`, "must be 0s (no keepalives) or at least 3s"}},
		{"hold time not a duration", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1\nholdTime: ninety",
			[]string{`spec.holdTime`, "must be a duration such as 90s"}},
		{"keepalive above hold time", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1\nholdTime: 9s\nkeepaliveTime: 10s",
			[]string{`spec`, "keepaliveTime must not be greater than holdTime"}},
		{"keepalive above default hold time", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1\nkeepaliveTime: 2m",
			[]string{"keepaliveTime must not be greater than holdTime"}},
		{"peerAddress with prefix length", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1/24",
			[]string{`spec.peerAddress`, "must be an IPv4 or IPv6 address without a prefix length"}},
		{"peerAddress a name", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: tor1.example",
			[]string{`spec.peerAddress`, "must be an IPv4 or IPv6 address"}},
		{"routerID IPv6", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 2001:db8::1\nrouterID: 2001:db8::2",
			[]string{`spec.routerID`, "must be an IPv4 address"}},
		{"peer port 0", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1\npeerPort: 0",
			[]string{`spec.peerPort`, "greater than or equal to 1"}},
		{"plain-text password", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1\npassword: secret",
			[]string{`unknown field "spec.password"`}},

		{"BFD receive interval below 10 ms", "BFDProfile", "receiveInterval: 9",
			[]string{`spec.receiveInterval`, "greater than or equal to 10"}},
		{"BFD transmit interval above 60000 ms", "BFDProfile", "transmitInterval: 60001",
			[]string{`spec.transmitInterval`, "less than or equal to 60000"}},
		{"BFD detect multiplier 1", "BFDProfile", "detectMultiplier: 1",
			[]string{`spec.detectMultiplier`, "greater than or equal to 2"}},
		{"BFD detect multiplier 256", "BFDProfile", "detectMultiplier: 256",
			[]string{`spec.detectMultiplier`, "less than or equal to 255"}},

		{"aggregation length 33", "BGPAdvertisement", "aggregationLength: 33",
			[]string{`spec.aggregationLength`, "less than or equal to 32"}},
		{"aggregation length negative", "BGPAdvertisement", "aggregationLength: -1",
			[]string{`spec.aggregationLength`, "greater than or equal to 0"}},
		{"IPv6 aggregation length 129", "BGPAdvertisement", "aggregationLengthV6: 129",
			[]string{`spec.aggregationLengthV6`, "less than or equal to 128"}},
		{"community part above 16 bits", "BGPAdvertisement", "communities: ['65536:1']",
			[]string{`spec.communities[0]`, "must be a standard community A:B (each 0-65535"}},
		{"community with three parts", "BGPAdvertisement", "communities: ['1:2:3']",
			[]string{`spec.communities[0]`, "large community large:A:B:C"}},
		{"large community with two parts", "BGPAdvertisement", "communities: ['large:1:2']",
			[]string{`spec.communities[0]`, "must be a standard community"}},
		{"large community part above 32 bits", "BGPAdvertisement", "communities: ['large:4294967296:1:2']",
			[]string{`spec.communities[0]`, "must be a standard community"}},
		{"community alias not a name", "BGPAdvertisement", "communities: [No_Export]",
			[]string{`spec.communities[0]`, "the name of an alias in a Community object"}},
		{"community alias value not a value", "Community", "communities: [{name: x, value: no-export}]",
			[]string{`spec.communities[0].value`, "must be a standard community A:B"}},
		{"community alias value above 16 bits", "Community", "communities: [{name: x, value: '64500:70000'}]",
			[]string{`spec.communities[0].value`, "each 0-65535"}},

		{"interface name too long", "L2Advertisement", "interfaces: [a-name-longer-than-15]",
			[]string{`spec.interfaces[0]`, "may not be more than 15 bytes"}},
	}
	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, tc.kind, fmt.Sprintf("bad-%d", i), tc.spec)
			err := cluster.Client.Create(ctx, obj, strict)
			if err == nil {
				_ = cluster.Client.Delete(ctx, obj)
				t.Fatalf("the API server accepted %s with spec:\n%s", tc.kind, tc.spec)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestSchemaAcceptsEdgeValues checks the values just inside each bound.
func TestSchemaAcceptsEdgeValues(t *testing.T) {
	cases := []struct{ name, kind, spec string }{
		{"hold time 0s", "BGPPeer", "myASN: 1\npeerASN: 4294967295\npeerAddress: 2001:db8::1\nholdTime: 0s\nkeepaliveTime: 0s"},
		{"hold time 3s", "BGPPeer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1\nholdTime: 3s\nkeepaliveTime: 1s"},
		{"BFD bounds", "BFDProfile", "receiveInterval: 10\ntransmitInterval: 60000\ndetectMultiplier: 255\nminimumTTL: 1"},
		{"BFD low multiplier", "BFDProfile", "detectMultiplier: 2"},
		{"every address form", "IPAddressPool", "addresses: [192.0.2.0/24, 198.51.100.1-198.51.100.1, 203.0.113.9, '2001:db8::/64', '2001:db8:1::1-2001:db8:1::ff', '2001:db8:2::7']"},
		{"community bounds", "BGPAdvertisement", "communities: ['0:0', '65535:65535', 'large:4294967295:0:4294967295', my-alias]\naggregationLength: 0\naggregationLengthV6: 128"},
	}
	ctx := context.Background()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, tc.kind, fmt.Sprintf("edge-%d", i), tc.spec)
			if err := cluster.Client.Create(ctx, obj); err != nil {
				t.Fatalf("refused: %v", err)
			}
			t.Cleanup(func() { _ = cluster.Client.Delete(ctx, obj) })
		})
	}
}

// TestDefaults checks the defaults a user relies on without writing them.
func TestDefaults(t *testing.T) {
	ctx := context.Background()
	pool := object(t, "IPAddressPool", "defaults-pool", "addresses: [192.0.2.0/28]")
	peer := object(t, "BGPPeer", "defaults-peer", "myASN: 64512\npeerASN: 64500\npeerAddress: 198.51.100.1")
	bfd := object(t, "BFDProfile", "defaults-bfd", "passiveMode: false")
	for _, o := range []*unstructured.Unstructured{pool, peer, bfd} {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.Client.Delete(ctx, o) })
	}
	checks := []struct {
		obj   *unstructured.Unstructured
		field []string
		want  any
	}{
		{pool, []string{"spec", "autoAssign"}, true},
		{peer, []string{"spec", "holdTime"}, "90s"},
		{peer, []string{"spec", "connectTime"}, "5s"},
		{peer, []string{"spec", "peerPort"}, int64(179)},
		{bfd, []string{"spec", "receiveInterval"}, int64(300)},
		{bfd, []string{"spec", "transmitInterval"}, int64(300)},
		{bfd, []string{"spec", "detectMultiplier"}, int64(3)},
	}
	for _, c := range checks {
		got, _, _ := unstructured.NestedFieldNoCopy(c.obj.Object, c.field...)
		if got != c.want {
			t.Errorf("%s %s: default %s = %v (%T), want %v", c.obj.GetKind(), c.obj.GetName(), strings.Join(c.field, "."), got, got, c.want)
		}
	}
}

// TestSamplesAreAccepted applies every object in config/samples and checks that each
// kind has a sample.
func TestSamplesAreAccepted(t *testing.T) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in config/samples: %v", err)
	}
	ctx := context.Background()
	if err := cluster.Client.Create(ctx, namespace("payments")); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, f := range files {
		for _, obj := range readObjects(t, f) {
			kinds[obj.GetKind()] = true
			if err := cluster.Client.Create(ctx, obj); err != nil {
				t.Errorf("%s: %s %s refused: %v", filepath.Base(f), obj.GetKind(), obj.GetName(), err)
				continue
			}
			t.Cleanup(func() { _ = cluster.Client.Delete(ctx, obj) })
		}
	}
	var missing []string
	for _, k := range []string{"IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer", "BFDProfile", "Community", "SpeakerStatus", "ServiceAnnouncement"} {
		if !kinds[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("config/samples has no example of %v", missing)
	}
}

func namespace(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(name)
	return u
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// TestKubectlApplyRefusesBadPool checks the message a user sees from kubectl apply.
func TestKubectlApplyRefusesBadPool(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pool.yaml")
	bad := "apiVersion: portico.dev/v1alpha1\nkind: IPAddressPool\nmetadata:\n  name: host-bits\nspec:\n  addresses: [192.0.2.5/24]\n"
	if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := kubectlErr(t, "apply", "-f", f)
	if err == nil {
		t.Fatalf("kubectl apply accepted a CIDR with host bits:\n%s", out)
	}
	for _, w := range []string{`spec.addresses[0]`, "192.0.2.5/24", "host bits set: write the network address instead"} {
		if !strings.Contains(out, w) {
			t.Errorf("kubectl apply output lacks %q:\n%s", w, out)
		}
	}
}

// kubectl runs the machine's kubectl against the test cluster and fails on error.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlErr(t, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// kubectlErr runs the machine's kubectl against the test cluster.
func kubectlErr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kubectl is not installed")
		}
		t.Skip("kubectl is not installed")
	}
	cmd := exec.Command(path, append([]string{"--kubeconfig", cluster.KubeconfigPath}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestKubectlExplainAndColumns checks what users see with kubectl: field documentation
// from the Go doc comments, and the pool's printer columns.
func TestKubectlExplainAndColumns(t *testing.T) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// envtest installed the CRDs already; applying them again must succeed too.
	out := kubectl(t, "apply", "-f", filepath.Join(root, "config", "crd"))
	if strings.Count(out, "customresourcedefinition.apiextensions.k8s.io/") != 8 {
		t.Errorf("kubectl apply -f config/crd did not report 8 CRDs:\n%s", out)
	}
	out = kubectl(t, "explain", "ipaddresspools.spec.addresses")
	if !strings.Contains(out, "Addresses this pool hands out") {
		t.Errorf("kubectl explain does not show the field's documentation:\n%s", out)
	}
	out = kubectl(t, "explain", "bgppeers.spec.holdTime")
	if !strings.Contains(out, "RFC 4271") {
		t.Errorf("kubectl explain bgppeers.spec.holdTime:\n%s", out)
	}
	ctx := context.Background()
	pool := object(t, "IPAddressPool", "columns", "addresses: [192.0.2.0/28]")
	if err := cluster.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(ctx, pool) })
	out = kubectl(t, "get", "ipaddresspools", "columns")
	header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	want := []string{"NAME", "ADDRESSES", "ASSIGNED", "V4", "AVAILABLE", "V4", "ASSIGNED", "V6", "AVAILABLE", "V6", "READY", "AGE"}
	if strings.Join(header, " ") != strings.Join(want, " ") {
		t.Errorf("kubectl get ipaddresspools header = %v, want %v", header, want)
	}
	if !strings.Contains(out, "192.0.2.0/28") {
		t.Errorf("kubectl get ipaddresspools does not show the addresses:\n%s", out)
	}
}
