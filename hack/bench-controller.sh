#!/usr/bin/env bash
# End-to-end controller benchmark: a real kube-apiserver + etcd (bin/k8s) and the real
# bin/portico-controller process. Prints "BENCH name value unit" lines.
# PORTICO_BENCH_SERVICES overrides the number of Services (default 10000).
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$PWD/bin/k8s}"
[[ -x bin/portico-controller ]] || CGO_ENABLED=0 go build -o bin/portico-controller ./cmd/portico-controller
go test -run '^$' -bench '^BenchmarkControllerEndToEnd$' -benchtime 1x -timeout 30m ./hack/bench-controller/ | grep -E '^(BENCH|ok|FAIL|---| +bench_test)'
