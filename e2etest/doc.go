// Package e2etest holds Portico's end-to-end tests: each runs against a whole
// cluster on this machine (package e2etest/lab: real API server, controller and
// speakers in network namespaces) and checks what a client on the data segment
// sees: ARP/NDP replies and HTTP answers naming the node.
//
// They need root, iproute2, arping, ndisc6 and the binaries of `make build
// control-plane`. Without them they fail under CI=true and are skipped
// otherwise; `go test -short` skips them too.
package e2etest
