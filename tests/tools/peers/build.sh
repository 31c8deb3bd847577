#!/usr/bin/env bash
# tests/tools/peers/build.sh — build the peers wasmcni is measured against and must interoperate
# with (whereabouts v0.9.2 from the Go module pinned here, Multus thin v4.2.4 from multus/'s) and
# point tests/.peers at them.
#
# Output: ${WASMCNI_TOOLS_CACHE:-/var/cache/wasmcni-tools}/peers-<key>/bin/{whereabouts,multus}
# <key> hashes both modules' go.mod and go.sum, this script and the Go version/OS/arch: a change of pins builds a
# fresh dir; a complete one is reused. Built apart from ../build.sh so that pinning a peer does
# not rebuild kube-apiserver (and so the peer keeps its own k8s.io modules; see go.mod).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTS_DIR=$(cd "$HERE/../.." && pwd)
if [[ -n "${WASMCNI_TOOLS_CACHE:-}" ]]; then
    CACHE_ROOT=$WASMCNI_TOOLS_CACHE
elif mkdir -p /var/cache/wasmcni-tools 2>/dev/null && [[ -w /var/cache/wasmcni-tools ]]; then
    CACHE_ROOT=/var/cache/wasmcni-tools
else
    CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/wasmcni-tools
fi
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local}
cd "$HERE"
KEY=$( { cat go.mod go.sum multus/go.mod multus/go.sum build.sh; go env GOVERSION GOOS GOARCH; } | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/peers-$KEY"
link() { ln -sfn "$OUT" "$TESTS_DIR/.peers.tmp.$$" && mv -T "$TESTS_DIR/.peers.tmp.$$" "$TESTS_DIR/.peers"; }
if [[ -f "$OUT/.complete" && -x "$OUT/bin/whereabouts" && -x "$OUT/bin/multus" ]]; then
    link; echo "peers/build.sh: up to date (cached): $OUT"; exit 0
fi
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.peers.lock"
flock 9
if [[ -f "$OUT/.complete" ]]; then link; exit 0; fi
TMP=$(mktemp -d "$CACHE_ROOT/.tmp-peers-$KEY.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
t0=$(date +%s)
version=$(go list -m -f '{{.Version}}' github.com/k8snetworkplumbingwg/whereabouts)
go build -buildvcs=false -trimpath -ldflags="-s -w" -o "$TMP/bin/whereabouts" \
    github.com/k8snetworkplumbingwg/whereabouts/cmd
multus=$(cd multus && go list -m -f '{{.Version}}' gopkg.in/k8snetworkplumbingwg/multus-cni.v4)
(cd multus && go build -buildvcs=false -trimpath -ldflags="-s -w" -o "$TMP/bin/multus" \
    gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus)
printf 'whereabouts=%s\nmultus=%s\ngo=%s\ntime=%ss\n' "$version" "$multus" "$(go env GOVERSION)" "$(($(date +%s) - t0))" >"$TMP/BUILDINFO"
touch "$TMP/.complete"
chmod 755 "$TMP"
rm -rf "$OUT"
mv -T "$TMP" "$OUT"
trap - EXIT
link
echo "peers/build.sh: built whereabouts $version and multus $multus in $(($(date +%s) - t0)) s: $OUT"
