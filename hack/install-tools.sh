#!/usr/bin/env bash
# Builds the tools that the chart and manifest tests (package deploy) and `make helm`
# and `make manifests` need, and says what it builds:
#
#   helm   the real helm CLI, built from the Go module proxy (helm.sh/helm/v4, pinned
#          below) into bin/tools/helm: about 2 minutes on 2 cores with a cold module
#          cache, then reused (a version stamp decides). No prebuilt download is
#          reachable from our machines.
#
# hack/setup.sh calls it (and installs Debian's docker.io, which the image tests use),
# so `make test` and .ci/run have helm. When it is present this only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v4.3.1
tools=${TOOLS_DIR:-$PWD/bin/tools}
stamp=$tools/.helm-version

if [[ -x $tools/helm && -f $stamp && $(cat "$stamp") == "$HELM_VERSION" ]]; then
	echo "tools: helm $HELM_VERSION present in $tools"
	exit 0
fi
echo "tools: building helm $HELM_VERSION into $tools from the Go module proxy (about 2 minutes the first time)"
mkdir -p "$tools"
start=$SECONDS
GOBIN=$tools CGO_ENABLED=0 go install -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
echo "$HELM_VERSION" >"$stamp"
echo "tools: built helm $HELM_VERSION in $((SECONDS - start)) s"
