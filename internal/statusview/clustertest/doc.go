// Package clustertest holds only tests: `portico status` against a real API
// server with Portico's CRDs (internal/testcluster), reading objects and statuses
// created the way the controller and the speakers write them, and against servers
// that cannot be reached. It is a package of its own so that statusview's unit
// tests run without an API server.
package clustertest
