# Portico's Makefile. Every target runs as root on a fresh machine; see README.md.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/portico-lb/portico/internal/version.Version=$(VERSION)
# The real kube-apiserver and etcd, built from the Go module proxy by hack/.
K8S_BIN := $(CURDIR)/bin/k8s
export KUBEBUILDER_ASSETS := $(K8S_BIN)
# -race doubles build and run time; CI keeps it on, `make test RACE=` turns it off.
RACE ?= -race
GO_TEST_FLAGS ?=

.PHONY: all build generate lint test test-unit setup control-plane bench demo lab-up lab-down e2e bench-lab clean

all: build

build:
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o bin/portico-controller ./cmd/portico-controller
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o bin/portico-speaker ./cmd/portico-speaker
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o bin/portico ./cmd/portico
	ln -sf portico bin/kubectl-portico # the same CLI as a kubectl plugin: kubectl portico ...

# DeepCopy code, CRD manifests and RBAC roles come from controller-gen (pinned by go.mod's tool line);
# docs/reference.md from the CRDs (hack/refdoc). Tests fail when any of them is stale.
generate:
	go tool controller-gen object paths=./api/...
	go tool controller-gen crd paths=./api/... output:crd:artifacts:config=config/crd
	go tool controller-gen rbac:roleName=portico-controller paths=./controller/... output:rbac:artifacts:config=config/rbac/controller
	go tool controller-gen rbac:roleName=portico-speaker paths=./speaker/... output:rbac:artifacts:config=config/rbac/speaker
	go generate ./internal/crdschema
	go run ./hack/refdoc # docs/reference.md from the CRDs and api/v1alpha1's annotation constants
	@$(MAKE) --no-print-directory fmt-generated

fmt-generated:
	gofmt -w api/

# gofmt, go vet and staticcheck (pinned in hack/install-tools.sh, built into bin/tools).
# ./... is the main module: hack/controlplane holds separate modules (the vendored
# control-plane build helpers), which neither vet nor staticcheck enter.
STATICCHECK := $(CURDIR)/bin/tools/staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^hack/controlplane/')); \
	if [[ -n "$$out" ]]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	go vet ./...
	@./hack/install-tools.sh staticcheck >/dev/null
	$(STATICCHECK) ./...

control-plane:
	./hack/build-control-plane.sh $(K8S_BIN)

# What the tests, the lab and the demo need: the Debian packages (installed when missing),
# kubectl (checked), and the control plane (built as by control-plane when not up to date).
setup:
	./hack/setup.sh $(K8S_BIN)

# go test's output through hack/testsummary: plain go test output, then a line counting
# passed, failed and skipped tests and one line per skip with its reason.
TEST_SUMMARY := go run ./hack/testsummary $(if $(filter -v,$(GO_TEST_FLAGS)),-v)

# Unit and integration tests (the integration tests run the real API server from
# bin/k8s), then the lab tests on their own: the lab's memberlist timers are tuned
# for sub-second failover and must not share the two cores with other packages'
# API servers and routers.
test: lint setup build
	{ a=0; b=0; go test -json $(RACE) -count=1 -timeout 20m $(GO_TEST_FLAGS) $$(go list ./... | grep -v '/e2etest$$') || a=$$?; \
	  go test -json $(RACE) -count=1 -timeout 25m $(GO_TEST_FLAGS) ./e2etest/ || b=$$?; exit $$((a | b)); } | $(TEST_SUMMARY)

bench: setup build
	./hack/bench.sh

# The lab (e2etest/lab): a whole cluster on this machine, as root. See e2etest/cmd/lab.
LAB := bin/lab
$(LAB): FORCE
	go build -o $(LAB) ./e2etest/cmd/lab

# Start a lab that keeps running; it prints KUBECONFIG and how to reach a Service.
lab-up: build setup $(LAB)
	./$(LAB) up

# Stop it, and remove leftovers of failed or interrupted runs.
lab-down: $(LAB)
	./$(LAB) down

# Start a lab, show an L2 Service and its failover, tear the lab down.
demo: build setup $(LAB)
	./$(LAB) demo

# Only the end-to-end tests (they also run in `make test`).
e2e: setup build
	go test -json -count=1 -timeout 25m $(GO_TEST_FLAGS) ./e2etest/... | $(TEST_SUMMARY)

# Only the lab benchmarks (failover, announcement latency, speaker memory).
bench-lab: setup build
	./hack/bench-lab.sh

FORCE:

# The CLI into $(PREFIX)/bin, as portico and as the kubectl plugin kubectl-portico.
PREFIX ?= /usr/local
.PHONY: install-cli
install-cli: build
	install -D -m 0755 bin/portico $(DESTDIR)$(PREFIX)/bin/portico
	ln -sf portico $(DESTDIR)$(PREFIX)/bin/kubectl-portico

clean:
	rm -rf bin/portico bin/kubectl-portico bin/portico-controller bin/portico-speaker

# Installing Portico: the Helm chart, the manifests rendered from it and the images
# (package deploy tests all three; docs/install.md). helm comes from hack/install-tools.sh.
HELM_CLI := $(CURDIR)/bin/tools/helm
IMAGE_PREFIX ?= ghcr.io/portico-lb
IMAGE_TAG ?= $(VERSION)

.PHONY: helm manifests images

# Copies the generated CRDs and RBAC roles into the chart, lints it, packages it into bin/.
helm:
	./hack/install-tools.sh
	rm -f charts/portico/crds/*.yaml
	cp config/crd/*.yaml charts/portico/crds/
	cp config/rbac/controller/role.yaml charts/portico/files/rbac/controller.yaml
	cp config/rbac/speaker/role.yaml charts/portico/files/rbac/speaker.yaml
	$(HELM_CLI) lint --strict charts/portico
	$(HELM_CLI) package charts/portico --destination bin/

# config/install.yaml and the kustomize base config/default, rendered from the chart.
manifests: helm
	go run ./deploy/cmd/manifests

# Both images (Dockerfile.controller, Dockerfile.speaker) from static binaries built here,
# saved to bin/images/*.tar; starts a private Docker daemon when none is running.
images:
	go run ./deploy/cmd/images -prefix "$(IMAGE_PREFIX)" -tag "$(IMAGE_TAG)" -version "$(VERSION)" \
		-revision "$$(git rev-parse HEAD 2>/dev/null || echo unknown)"
