package ipam

import (
	"math/rand/v2"
	"testing"
)

// TestRunSetAgainstModel drives the chunked run set and a plain map with the
// same random operations and checks they agree, and that the runs stay
// sorted, maximal and within their chunk bounds.
func TestRunSetAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, space := range []uint64{10, 300, 5000} {
		var s runSet
		model := map[uint64]bool{}
		for i := 0; i < 20000; i++ {
			x := rng.Uint64N(space)
			v := u128{7, x} // a high word exercises the two-word compare
			if rng.IntN(2) == 0 {
				if got, want := s.add(v), !model[x]; got != want {
					t.Fatalf("space %d op %d: add(%d) = %v, want %v", space, i, x, got, want)
				}
				model[x] = true
			} else {
				if got, want := s.remove(v), model[x]; got != want {
					t.Fatalf("space %d op %d: remove(%d) = %v, want %v", space, i, x, got, want)
				}
				delete(model, x)
			}
			if i%97 == 0 {
				checkRunSet(t, &s, model, space)
			}
		}
		checkRunSet(t, &s, model, space)
	}
}

func checkRunSet(t *testing.T, s *runSet, model map[uint64]bool, space uint64) {
	t.Helper()
	var prev *run
	n := 0
	for _, c := range s.chunks {
		if len(c) == 0 || len(c) > chunkMax || cap(c) != chunkMax {
			t.Fatalf("chunk with len %d cap %d", len(c), cap(c))
		}
		for i := range c {
			r := c[i]
			if r.lo.cmp(r.hi) > 0 {
				t.Fatalf("run %v reversed", r)
			}
			if prev != nil && prev.hi.add1().cmp(r.lo) >= 0 {
				t.Fatalf("runs %v and %v touch or overlap", *prev, r)
			}
			prev = &c[i]
			n++
		}
	}
	if n != s.runs {
		t.Fatalf("runs counter %d, counted %d", s.runs, n)
	}
	for x := uint64(0); x < space; x++ {
		if got := s.has(u128{7, x}); got != model[x] {
			t.Fatalf("has(%d) = %v, want %v", x, got, model[x])
		}
	}
}

func TestRunSetEdges(t *testing.T) {
	var s runSet
	for _, v := range []u128{maxU128, {}, maxU128.sub1(), {0, 1}} {
		if !s.add(v) {
			t.Fatalf("add(%v) reported present", v)
		}
	}
	if s.runs != 2 {
		t.Fatalf("want 2 runs at both ends of the space, got %d", s.runs)
	}
	if r, ok := s.containing(maxU128); !ok || r.lo != maxU128.sub1() {
		t.Fatalf("containing(max) = %v, %v", r, ok)
	}
	if !s.remove(u128{}) || s.remove(u128{}) || s.has(u128{}) {
		t.Fatal("remove(0) misbehaved")
	}
}
