#!/usr/bin/env bash
# BGP lab benchmarks (as root, after `make build control-plane`), against the lab's
# FRR router, in a lab of their own (e2etest/cmd/lab/bench_bgp.go):
#   - route latency: Service IP assigned -> the router forwards it over every node,
#     and Service deleted -> route gone, over BGP_TRIALS trials (default 20);
#   - node death (speaker SIGSTOPped and data link cut at once) -> the router drops
#     the node's next hop, and -> the external client's requests all succeed again,
#     BGP_FAILOVER_TRIALS times (default 5) with BFD 100 ms x 3, then with BFD off
#     and a 3 s hold time;
#   - BGP_SERVICES IPv6 Services (default 10000) -> every prefix from every node at
#     the router: time, speaker memory, UPDATEs for one more Service, withdrawal;
#     the burst stops after BGP_SCALE_BUDGET (default 30m) and bgp_scale_services
#     says how many Services were measured.
# 0 skips a part. Figures: `BENCH bgp_... value unit` on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$PWD/bin/k8s}
mkdir -p bin
go build -o bin/lab ./e2etest/cmd/lab
LAB_BENCH=bgp exec ./bin/lab bench
