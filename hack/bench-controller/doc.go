// Package benchcontroller owns the controller's end-to-end benchmarks: it runs
// the real portico-controller process against a real API server and etcd, and
// prints each figure as a line "BENCH name value unit". Run it with
// hack/bench-controller.sh (make bench calls that script).
package benchcontroller
