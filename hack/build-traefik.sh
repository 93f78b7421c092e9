#!/usr/bin/env bash
# Builds a real Traefik v3 (the Ingress controller the lab runs behind a Portico
# LoadBalancer IP) from the Go module proxy into bin/traefik/ (or $1). Traefik's go.mod
# carries replace directives, so `go install ...@version` refuses it: this downloads the
# module, copies it to a scratch directory and builds ./cmd/traefik there. Nothing of
# Traefik's source is kept in this repository. A second run with the same version does
# nothing.
set -euo pipefail

# v3.6.12, the newest v3.6 release: every v3.7 release (v3.7.11 to v3.7.13) needs
# modules the Go module proxy does not serve ("403 ... This module version is not
# available", checked 2026-11-30: Traefik's fork of go-http-auth and 14 of lego's DNS
# provider SDKs), so it cannot be built unpatched; v3.6.12 builds as released.
TRAEFIK_VERSION=v3.6.12
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bin/traefik}
mkdir -p "$out"
stamp="$out/.version"
want="traefik=$TRAEFIK_VERSION"

if [[ -x $out/traefik && -f $stamp && $(cat "$stamp") == "$want" ]]; then
	echo "traefik up to date in $out ($want)"
	exit 0
fi

echo "building traefik $TRAEFIK_VERSION into $out (first build takes several minutes)"
start=$SECONDS
mod=github.com/traefik/traefik/v3@$TRAEFIK_VERSION
dir=$(go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n $dir && -d $dir ]] || { echo "build-traefik: go mod download $mod gave no directory" >&2; exit 1; }

# The module cache is read-only and lives outside any module of ours: build in a copy.
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
export GOFLAGS=-mod=mod GOWORK=off
(
	cd "$work"
	CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION -X github.com/traefik/traefik/v3/pkg/version.BuildDate=1970-01-01T00:00:00Z" \
		-o "$out/traefik.tmp" ./cmd/traefik
)
mv "$out/traefik.tmp" "$out/traefik"
"$out/traefik" version
echo "$want" >"$stamp"
echo "traefik built in $((SECONDS - start)) s"
