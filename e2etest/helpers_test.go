package e2etest

import (
	"maps"
	"net/netip"
	"os"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
)

// requireTool fails t under CI=true (where hack/setup.sh must have
// installed everything) and skips it elsewhere when err says a tool the
// test needs is missing.
func requireTool(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %v", err)
	}
	t.Skip(err)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mapsKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func l2adv(name string) *porticov1.L2Advertisement {
	return &porticov1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
}
