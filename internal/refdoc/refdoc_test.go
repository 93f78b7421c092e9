package refdoc_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-lb/portico/internal/refdoc"
	"github.com/portico-lb/portico/internal/testcluster"
)

// TestReferenceIsFresh regenerates docs/reference.md and fails when the
// committed one differs: run `make generate`.
func TestReferenceIsFresh(t *testing.T) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := refdoc.Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, refdoc.Output))
	if err != nil {
		t.Fatalf("%v: run `make generate`", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run `make generate` and commit the result", refdoc.Output)
	}
}

// TestReferenceCoversEverything checks the reference names every kind, a
// field of each (nested ones too), defaults, bounds, the API server's
// messages and every annotation.
func TestReferenceCoversEverything(t *testing.T) {
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := refdoc.Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## IPAddressPool", "## L2Advertisement", "## BGPAdvertisement", "## BGPPeer", "## BFDProfile",
		"## Community", "## SpeakerStatus", "## ServiceAnnouncement",
		"| `allocation.priority` |", "| `passwordSecretRef.name` |", "`90s`", "1 to 4294967295",
		"must be 0s (no keepalives) or at least 3s",
		"`portico.dev/loadBalancerIPs`", "`portico.dev/address-pool`", "`portico.dev/allow-shared-ip`",
		"`portico.dev/ip-allocated-from-pool`", "`node.kubernetes.io/exclude-from-external-load-balancers`",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}
