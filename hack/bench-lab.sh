#!/usr/bin/env bash
# Lab benchmarks (as root, after `make build control-plane`): L2 announcement latency
# (Service created -> the client's first HTTP answer), failover on node death (speaker
# killed and data link cut -> the client's first HTTP answer from another node), each
# over TRIALS trials, and a speaker's peak memory (VmHWM) with SERVICES L2 Services;
# then the BGP benchmarks of hack/bench-bgp.sh (BGP_* variables), in a lab of their
# own. LAB_BENCH=l2 or LAB_BENCH=bgp runs only one suite.
# Figures: `BENCH name value unit`, one per line, on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$PWD/bin/k8s}
mkdir -p bin
go build -o bin/lab ./e2etest/cmd/lab
LAB_BENCH=${LAB_BENCH:-l2,bgp} exec ./bin/lab bench -trials "${TRIALS:-10}" -services "${SERVICES:-1000}"
