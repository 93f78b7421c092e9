package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is the speaker's garbage-collection target when GOGC is
// not set: the heap may grow to 1.25 times what is live before a
// collection, not Go's default of twice. A speaker runs on every node, so
// its memory is paid once per node: with 10,000 BGP Services its live heap
// (informer cache, plans, gobgp's tables, recent events) is about 51 MB,
// and Go's default would let it reach about 100 MB between collections. The cost is CPU:
// collections about four times as often as Go's default (the BGP scale
// bench prints the speakers' CPU time beside their memory). GOGC overrides
// it (GOGC=100 is Go's default).
const defaultGCPercent = 25

func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}
