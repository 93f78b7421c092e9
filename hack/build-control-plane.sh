#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd from the Go module proxy into bin/k8s/ (or $1),
# for envtest (KUBEBUILDER_ASSETS) and the lab. No prebuilt download is reachable from
# our machines, so this is how the control plane gets here. A second run with the same
# versions does nothing.
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bin/k8s}
mkdir -p "$out"
stamp="$out/.versions"
want="kube-apiserver=$KUBE_VERSION etcd=$ETCD_VERSION"

if [[ -x $out/kube-apiserver && -x $out/etcd && -f $stamp && $(cat "$stamp") == "$want" ]]; then
	echo "control plane up to date in $out ($want)"
	exit 0
fi

build() { # name dir ldflags
	local name=$1 dir=$2 ldflags=$3
	echo "building $name into $out (first build takes a few minutes)"
	(cd "$dir" && go mod download && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" .)
	mv "$out/$name.tmp" "$out/$name"
}

minor=${KUBE_VERSION#v1.}
minor=${minor%%.*}
pkg=k8s.io/component-base/version
build kube-apiserver "$root/hack/controlplane/kube-apiserver" \
	"-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
build etcd "$root/hack/controlplane/etcd" "-s -w"

"$out/kube-apiserver" --version
# Read all of etcd's answer (head would close the pipe early: SIGPIPE, exit 141
# under pipefail) and print its first line.
etcd_version=$("$out/etcd" --version)
echo "${etcd_version%%$'\n'*}"
echo "$want" >"$stamp"
