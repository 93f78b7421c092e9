#!/usr/bin/env bash
# `make bench`: every benchmark, each figure on a line of its own. Go micro-benchmarks
# print Go's standard `BenchmarkName-N  iterations  value ns/op ...` lines; the
# end-to-end benchmarks print `BENCH name value unit` lines.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$PWD/bin/k8s}

echo "== micro-benchmarks: allocator and election"
go test -run '^$' -bench . -benchmem -count 1 ./internal/ipam/ ./internal/election/ | grep -E '^(Benchmark|ok|FAIL)'
