package ipam

import (
	"slices"
	"sort"
)

// runSet is an ordered set of u128 values stored as maximal runs of
// consecutive values ([lo, hi], no two runs touching). It answers "which run
// contains x" in O(log n), which is what makes "lowest free address" cheap:
// the lowest free value at or after x is x itself, or one past the end of the
// run containing x.
//
// Runs live in sorted chunks of at most chunkMax runs (a one-level B-tree):
// inserting or removing moves at most chunkMax runs, whatever the set size,
// and there is no per-value node to allocate.
type runSet struct {
	chunks [][]run
	runs   int // number of runs, for tests and memory accounting
}

type run struct{ lo, hi u128 }

const chunkMax = 64

// locate returns the position of the first run with hi >= x; ci ==
// len(s.chunks) if there is none.
func (s *runSet) locate(x u128) (ci, ri int) {
	ci = sort.Search(len(s.chunks), func(i int) bool {
		c := s.chunks[i]
		return c[len(c)-1].hi.cmp(x) >= 0
	})
	if ci == len(s.chunks) {
		return ci, 0
	}
	c := s.chunks[ci]
	return ci, sort.Search(len(c), func(i int) bool { return c[i].hi.cmp(x) >= 0 })
}

// containing returns the run that contains x.
func (s *runSet) containing(x u128) (run, bool) {
	ci, ri := s.locate(x)
	if ci == len(s.chunks) {
		return run{}, false
	}
	r := s.chunks[ci][ri]
	return r, r.lo.cmp(x) <= 0
}

func (s *runSet) has(x u128) bool {
	_, ok := s.containing(x)
	return ok
}

// prev returns the position of the run before (ci, ri).
func (s *runSet) prev(ci, ri int) (int, int, bool) {
	if ri > 0 {
		return ci, ri - 1, true
	}
	if ci > 0 {
		return ci - 1, len(s.chunks[ci-1]) - 1, true
	}
	return 0, 0, false
}

// add inserts x and reports whether it was absent.
func (s *runSet) add(x u128) bool {
	ci, ri := s.locate(x)
	var next *run
	if ci < len(s.chunks) {
		next = &s.chunks[ci][ri]
		if next.lo.cmp(x) <= 0 {
			return false
		}
	}
	var prev *run
	if pci, pri, ok := s.prev(ci, ri); ok {
		prev = &s.chunks[pci][pri]
	}
	joinPrev := prev != nil && prev.hi.add1() == x
	joinNext := next != nil && x.add1() == next.lo
	switch {
	case joinPrev && joinNext:
		prev.hi = next.hi
		s.deleteAt(ci, ri)
	case joinPrev:
		prev.hi = x
	case joinNext:
		next.lo = x
	default:
		s.insertAt(ci, ri, run{x, x})
	}
	return true
}

// remove deletes x and reports whether it was present.
func (s *runSet) remove(x u128) bool {
	ci, ri := s.locate(x)
	if ci == len(s.chunks) {
		return false
	}
	r := &s.chunks[ci][ri]
	switch {
	case r.lo.cmp(x) > 0:
		return false
	case r.lo == r.hi:
		s.deleteAt(ci, ri)
	case r.lo == x:
		r.lo = x.add1()
	case r.hi == x:
		r.hi = x.sub1()
	default:
		tail := run{x.add1(), r.hi}
		r.hi = x.sub1()
		s.insertAt(ci, ri+1, tail)
	}
	return true
}

func (s *runSet) insertAt(ci, ri int, r run) {
	if ci == len(s.chunks) {
		if ci == 0 {
			s.chunks = append(s.chunks, make([]run, 0, chunkMax))
		} else {
			ci--
		}
		ri = len(s.chunks[ci])
	}
	if c := s.chunks[ci]; len(c) == chunkMax {
		// Full: split into two halves and insert into the proper one.
		// Every chunk has capacity chunkMax, so slices.Insert below never
		// reallocates.
		half := chunkMax / 2
		right := append(make([]run, 0, chunkMax), c[half:]...)
		s.chunks = slices.Insert(s.chunks, ci+1, right)
		s.chunks[ci] = c[:half]
		if ri > half {
			ci, ri = ci+1, ri-half
		}
	}
	s.chunks[ci] = slices.Insert(s.chunks[ci], ri, r)
	s.runs++
}

func (s *runSet) deleteAt(ci, ri int) {
	s.runs--
	c := s.chunks[ci]
	if len(c) == 1 {
		s.chunks = slices.Delete(s.chunks, ci, ci+1)
		return
	}
	s.chunks[ci] = slices.Delete(c, ri, ri+1)
}
