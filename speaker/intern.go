package speaker

import (
	"strings"
	"sync"
)

// internLimit bounds an interner: past it, strings are kept as they come.
// The strings interned (node, pool, peer and interface names) number in the
// tens in a cluster, not the thousands.
const internLimit = 4096

// interner hands out one shared copy of the strings many cached objects
// repeat, so that 10,000 ServiceAnnouncements naming the same three nodes
// and one peer hold three node names and one peer list between them, not
// 30,000 of each. Cached objects are read only, so sharing is safe. The
// informers' transforms call it from their own goroutines.
type interner struct {
	mu    sync.Mutex
	strs  map[string]string
	lists map[string][]string
}

func newInterner() *interner {
	return &interner{strs: map[string]string{}, lists: map[string][]string{}}
}

// str returns the shared copy of s.
func (in *interner) str(s string) string {
	if s == "" {
		return ""
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.strs[s]; ok {
		return c
	}
	if len(in.strs) < internLimit {
		s = strings.Clone(s) // not a slice of a larger decoded buffer
		in.strs[s] = s
	}
	return s
}

// list returns the shared copy of l (nil when l is empty).
func (in *interner) list(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	key := strings.Join(l, "\x00")
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.lists[key]; ok {
		return c
	}
	out := make([]string, len(l))
	for i, s := range l {
		if c, ok := in.strs[s]; ok {
			out[i] = c
		} else {
			out[i] = strings.Clone(s)
		}
	}
	if len(in.lists) < internLimit {
		in.lists[key] = out
	}
	return out
}
