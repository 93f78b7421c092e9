#!/usr/bin/env bash
# `make bench`: every benchmark, each figure on a line of its own. Go micro-benchmarks
# print Go's standard `BenchmarkName-N  iterations  value ns/op ...` lines; the
# end-to-end benchmarks (the fault benchmarks too) print `BENCH name value unit` lines.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$PWD/bin/k8s}

echo "== micro-benchmarks: allocator and election"
go test -run '^$' -bench . -benchmem -count 1 ./internal/ipam/ ./internal/election/ | grep -E '^(Benchmark|ok|FAIL)'

echo "== speaker: memory and recompute time with 1,000 L2 Services (in-process)"
go test -run '^$' -bench 'SpeakerMemory' -benchtime 1x -benchmem ./speaker/ | grep -E '^(Benchmark|BENCH|ok|FAIL)'
go test -run '^$' -bench 'Compute1000' -benchmem ./speaker/l2plan/ | grep -E '^(Benchmark|BENCH|ok|FAIL)'

echo "== BGP announcer against FRR: 10,000 paths to two sessions, then one more and one fewer (one UPDATE each, asserted)"
PORTICO_BGP_UPDATE_PATHS=10000 go test -count=1 -run '^TestLabOneUpdatePerPeer$' -v ./internal/bgp/ | sed -n -E 's/^ *(BENCH .*)/\1/p; /^(--- |ok|FAIL)/p'

echo "== controller end to end on the real API server (10,000 Services; PORTICO_BENCH_SERVICES to change)"
./hack/bench-controller.sh

echo "== lab: L2 announcement latency, failover on node death, speaker memory (TRIALS, SERVICES to change)"
LAB_BENCH=l2 ./hack/bench-lab.sh

echo "== lab: BGP route latency, node death with BFD and with the hold timer, a burst of up to 10,000 Services for 30 minutes (BGP_TRIALS, BGP_FAILOVER_TRIALS, BGP_SERVICES, BGP_SCALE_BUDGET to change)"
./hack/bench-bgp.sh

echo "== lab: the controller leader killed during a burst of 1,000 Services (LEADER_SERVICES), then a soak of Service churn under speaker kills, link flaps, controller restarts and a 20 s API outage for 4 minutes (SOAK_SECONDS)"
LAB_BENCH=leader,soak ./hack/bench-lab.sh
