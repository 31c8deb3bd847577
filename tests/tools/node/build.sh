#!/usr/bin/env bash
# tests/tools/node/build.sh — build the real-node tier's components from the Go modules pinned
# here (kubelet, kube-scheduler, kube-controller-manager: k8s.io/kubernetes v1.37.2, the same
# pin as ../go.mod; the pause binary from ./cmd/pause) and point tests/.node at them.
#
# Output: ${WASMCNI_TOOLS_CACHE:-/var/cache/wasmcni-tools}/node-<key>/bin/
#   kubelet kube-scheduler kube-controller-manager pause
# <key> hashes go.mod, go.sum, this script, cmd/pause/main.go and the Go version/OS/arch: a
# change of pins builds a fresh dir; a complete one is reused (well under a second). A new one
# is built in a temp dir and renamed into place, so a dir that exists is complete. Built apart
# from ../build.sh so the node's extra dependencies (cadvisor, runc's cgroups) neither change
# kube-apiserver's pins nor rebuild it; the Go build cache is shared, so kube-controller-manager
# reuses what kube-apiserver compiled.
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
KEY=$( { cat go.mod go.sum build.sh cmd/pause/main.go; go env GOVERSION GOOS GOARCH; } | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/node-$KEY"
BINS=(kubelet kube-scheduler kube-controller-manager pause)
link() { ln -sfn "$OUT" "$TESTS_DIR/.node.tmp.$$" && mv -T "$TESTS_DIR/.node.tmp.$$" "$TESTS_DIR/.node"; }
complete() { local b; [[ -f "$OUT/.complete" ]] || return 1; for b in "${BINS[@]}"; do [[ -x "$OUT/bin/$b" ]] || return 1; done; }
if complete; then link; echo "node/build.sh: up to date (cached): $OUT"; exit 0; fi
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.node.lock"
flock 9
if complete; then link; echo "node/build.sh: built by a concurrent run: $OUT"; exit 0; fi
TMP=$(mktemp -d "$CACHE_ROOT/.tmp-node-$KEY.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/bin"
K8S_VERSION=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
K8S_MAJOR=${K8S_VERSION#v}; K8S_MAJOR=${K8S_MAJOR%%.*}
K8S_MINOR=${K8S_VERSION#v*.}; K8S_MINOR=${K8S_MINOR%%.*}
# the version stamps of upstream's hack/lib/version.sh, so the kubelet reports v1.37.2 in
# its Node object (the apiserver's version skew rules read it)
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$K8S_MAJOR"
    ldflags+=" -X $p.gitMinor=$K8S_MINOR -X $p.gitTreeState=clean"
done
declare -A PKG=(
    [kubelet]=k8s.io/kubernetes/cmd/kubelet
    [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [pause]=./cmd/pause
)
printf 'k8s.io/kubernetes=%s\ngo=%s\n' "$K8S_VERSION" "$(go env GOVERSION)" >"$TMP/BUILDINFO"
t0=$(date +%s)
for b in "${BINS[@]}"; do
    s=$(date +%s)
    go build -buildvcs=false -trimpath -ldflags="$ldflags" -o "$TMP/bin/$b" "${PKG[$b]}"
    echo "time.$b=$(($(date +%s) - s))s" >>"$TMP/BUILDINFO"
    echo "node/build.sh: built $b in $(($(date +%s) - s)) s" >&2
done
echo "total=$(($(date +%s) - t0))s" >>"$TMP/BUILDINFO"
touch "$TMP/.complete"
chmod 755 "$TMP"
rm -rf "$OUT"
mv -T "$TMP" "$OUT"
trap - EXIT
link
echo "node/build.sh: built ${BINS[*]} ($K8S_VERSION) in $(($(date +%s) - t0)) s: $OUT"
