#!/usr/bin/env bash
# Builds the tools that the chart and manifest tests (package deploy), `make helm`,
# `make manifests` and `make lint` need, and says what it builds. Each is pinned below
# and built from the Go module proxy into bin/tools (no prebuilt download is reachable
# from our machines), then reused while its version stamp matches:
#
#   helm         the real helm CLI (helm.sh/helm/v4): about 2 minutes on 2 cores with a
#                cold module cache.
#   staticcheck  honnef.co/go/tools' linter, run by `make lint`: about 30 s.
#
# With tool names as arguments only those are built; without, all of them.
# hack/setup.sh calls it (and installs Debian's docker.io, which the image tests use),
# so `make test` and .ci/run have them. When they are present this only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=${TOOLS_DIR:-$PWD/bin/tools}
declare -A pkg=(
	[helm]=helm.sh/helm/v4/cmd/helm@v4.3.1
	[staticcheck]=honnef.co/go/tools/cmd/staticcheck@v0.8.2
)

build() {
	local name=$1 want=${pkg[$1]}
	local stamp=$tools/.$name-version version=${want##*@}
	if [[ -x $tools/$name && -f $stamp && $(cat "$stamp") == "$version" ]]; then
		echo "tools: $want present in $tools"
		return
	fi
	echo "tools: building $want into $tools from the Go module proxy"
	mkdir -p "$tools"
	local start=$SECONDS
	GOBIN=$tools CGO_ENABLED=0 go install -ldflags "-s -w" "$want"
	echo "$version" >"$stamp"
	echo "tools: built $name in $((SECONDS - start)) s"
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(helm staticcheck)
for n in "${names[@]}"; do
	[[ -n ${pkg[$n]:-} ]] || { echo "tools: unknown tool $n (known: ${!pkg[*]})" >&2; exit 2; }
	build "$n"
done
