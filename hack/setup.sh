#!/usr/bin/env bash
# Installs what the tests, the lab and the demo need on a fresh Debian machine, and says
# what it installs: the Debian packages below (as root, with apt-get), then the real
# kube-apiserver and etcd, built from the Go module proxy into bin/k8s/ (or $1), and
# Traefik into bin/traefik/. kubectl
# comes with the machine and is only checked. `make test`, `make demo`, `make lab-up`,
# `make e2e`, `make bench` and .ci/run all call it; when everything is present it only
# checks (no apt-get update, no build) and takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# iproute2 builds the lab's network namespaces; arping and ndisc6 observe ARP and NDP
# from a client namespace; curl is the lab client; tcpdump and nftables for the network
# tests; procps for sysctl and ps; frr is the real BGP router of the lab (the lab runs
# its daemons from /usr/lib/frr itself; this script never starts or stops a service).
packages=(iproute2 iputils-arping ndisc6 curl tcpdump nftables procps frr)
# docker.io: the image tests build and run Portico's images with a private dockerd.
packages+=(docker.io)

missing=()
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null || true)
for p in "${packages[@]}"; do
	grep -qxF "$p install ok installed" <<<"$installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
	echo "setup: Debian packages present (${packages[*]})"
else
	if ((EUID != 0)); then
		echo "setup: missing Debian packages: ${missing[*]}; run as root to install them (apt-get install ${missing[*]})" >&2
		exit 1
	fi
	echo "setup: installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
	echo "setup: installed ${missing[*]}"
fi

for c in kubectl go; do
	command -v "$c" >/dev/null || { echo "setup: $c is required on PATH (it comes with this machine)" >&2; exit 1; }
done

# helm and staticcheck, built into bin/tools, for the chart and manifest tests and make lint.
./hack/install-tools.sh

# kube-apiserver and etcd from the Go module proxy (a no-op when up to date).
./hack/build-control-plane.sh "$@"

# Traefik, the Ingress controller the lab runs behind a Portico IP, from the Go module
# proxy into bin/traefik/ (several minutes the first time; a no-op when up to date).
./hack/build-traefik.sh
