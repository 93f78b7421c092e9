package ipam

import (
	"fmt"
	"slices"
	"strings"
)

// LabelMatcher decides whether a label set is selected. It keeps this
// package free of Kubernetes types: the controller wraps a
// labels.Selector in a MatcherFunc.
type LabelMatcher interface {
	Matches(labels map[string]string) bool
}

// MatcherFunc adapts a function to LabelMatcher.
type MatcherFunc func(labels map[string]string) bool

// Matches calls f.
func (f MatcherFunc) Matches(labels map[string]string) bool { return f(labels) }

// MatchLabels selects label sets that contain every key=value pair in it
// (Kubernetes matchLabels semantics). An empty MatchLabels selects everything.
type MatchLabels map[string]string

// Matches reports whether labels contains all of m.
func (m MatchLabels) Matches(labels map[string]string) bool {
	for k, v := range m {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Pinned reports whether the pool is restricted to some namespaces or
// services.
func (p *Pool) Pinned() bool {
	return len(p.Namespaces) > 0 || p.NamespaceSelector != nil || p.ServiceSelector != nil
}

// admits returns nil if the pool's pinning lets svc use it, or an error
// saying which rule keeps it out. Namespaces and NamespaceSelector are
// alternatives (either admits); ServiceSelector must also match.
func (p *Pool) admits(svc *Service) error {
	ns := svc.Namespace()
	if len(p.Namespaces) > 0 || p.NamespaceSelector != nil {
		inList := slices.Contains(p.Namespaces, ns)
		bySelector := p.NamespaceSelector != nil && p.NamespaceSelector.Matches(svc.NamespaceLabels)
		if !inList && !bySelector {
			what := "a namespace selector"
			if len(p.Namespaces) > 0 {
				what = "namespaces " + quoteList(p.Namespaces)
				if p.NamespaceSelector != nil {
					what += " and a namespace selector"
				}
			}
			return errorf(ReasonNotAllowed, "pool %q is reserved for %s, and namespace %q is not one of them", p.Name, what, ns)
		}
	}
	if p.ServiceSelector != nil && !p.ServiceSelector.Matches(svc.Labels) {
		return errorf(ReasonNotAllowed, "pool %q is reserved for services matching its service selector, and %s does not match", p.Name, svc.Key)
	}
	return nil
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// priorityRank makes 0 ("no priority") sort after every explicit priority.
func priorityRank(p int) int {
	if p == 0 {
		return int(^uint(0) >> 1)
	}
	return p
}

func byPriorityThenName(a, b *Pool) int {
	if c := priorityRank(a.Priority) - priorityRank(b.Priority); c != 0 {
		if c < 0 {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Name, b.Name)
}

// SelectPools returns, in the order to try them, the names of the pools svc
// may be allocated from.
//
// If requested is not empty (the service names a pool), the result is just
// that pool, or an error if it does not exist or its pinning excludes the
// service; AutoAssign does not matter then.
//
// Otherwise, among pools with AutoAssign set: first the pinned pools that
// admit svc, then the unpinned pools, each group ordered by Priority (lower
// first, 0 last) then name. Pinned pools that do not admit svc and pools
// with AutoAssign false are left out. The order never depends on the order
// of pools, so every replica chooses alike. If no pool is left, the error
// says why.
func SelectPools(pools []Pool, svc Service, requested string) ([]string, error) {
	ptrs := make([]*Pool, len(pools))
	for i := range pools {
		ptrs[i] = &pools[i]
	}
	return selectPools(ptrs, &svc, requested)
}

func selectPools(pools []*Pool, svc *Service, requested string) ([]string, error) {
	if requested != "" {
		for _, p := range pools {
			if p.Name == requested {
				if err := p.admits(svc); err != nil {
					return nil, err
				}
				return []string{p.Name}, nil
			}
		}
		return nil, errorf(ReasonNoSuchPool, "pool %q does not exist", requested)
	}
	var pinned, open []*Pool
	manual, excluded := 0, 0
	for _, p := range pools {
		switch {
		case !p.AutoAssign:
			manual++
		case !p.Pinned():
			open = append(open, p)
		case p.admits(svc) == nil:
			pinned = append(pinned, p)
		default:
			excluded++
		}
	}
	slices.SortFunc(pinned, byPriorityThenName)
	slices.SortFunc(open, byPriorityThenName)
	out := make([]string, 0, len(pinned)+len(open))
	for _, p := range append(pinned, open...) {
		out = append(out, p.Name)
	}
	if len(out) == 0 {
		if len(pools) == 0 {
			return nil, errorf(ReasonNotAllowed, "no address pool exists; create an IPAddressPool")
		}
		return nil, errorf(ReasonNotAllowed,
			"no address pool is available to %s: %d pool(s) are reserved for other namespaces or services, %d have autoAssign disabled and must be requested by name",
			svc.Key, excluded, manual)
	}
	return out, nil
}
