package e2etest

import (
	"maps"
	"net/netip"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	porticov1 "github.com/portico-lb/portico/api/v1alpha1"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mapsKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func l2adv(name string) *porticov1.L2Advertisement {
	return &porticov1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
}
