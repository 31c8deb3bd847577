#!/usr/bin/env bash
# tests/tools/build.sh — build the pinned test tools (kube-apiserver, kubectl,
# etcd, cnitool, cniconvert and the CNI reference plugins) from the Go modules
# pinned in tests/tools/go.mod + go.sum, and point the symlink tests/.tools at
# them.
#
#   tests/tools/build.sh            # build if needed, then print the tools dir
#
# Output: ${WASMCNI_TOOLS_CACHE:-/var/cache/wasmcni-tools}/<key>/{bin,cni}
#   bin/: kube-apiserver kubectl etcd cnitool cniconvert
#   cni/: bridge host-local loopback ipvlan macvlan ptp static tuning
#         dummy host-device vlan bandwidth firewall portmap sbr vrf
# <key> is a hash of go.mod, go.sum, build.sh, every cmd/*/main.go and the Go
# version/OS/arch, so any change of pins or build flags builds a fresh dir.
# A complete dir is reused as is (about a second); a new one is built in a
# temp dir next to it and renamed into place, so a dir that exists is complete.
# Concurrent runs are serialised with flock on <cache>/.lock.
#
# Env: WASMCNI_TOOLS_CACHE (cache root; when unset and /var/cache is not
# writable, ~/.cache/wasmcni-tools), GOCACHE/GOMODCACHE/GOPROXY as usual.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTS_DIR=$(dirname "$HERE")
if [[ -n "${WASMCNI_TOOLS_CACHE:-}" ]]; then
    CACHE_ROOT=$WASMCNI_TOOLS_CACHE
elif mkdir -p /var/cache/wasmcni-tools 2>/dev/null && [[ -w /var/cache/wasmcni-tools ]]; then
    CACHE_ROOT=/var/cache/wasmcni-tools
else # not root: fall back to the user's cache dir
    CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/wasmcni-tools
fi

export CGO_ENABLED=0
# the module names its Go version; use the machine's Go, never download one
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}

cd "$HERE"
KEY=$( {
    cat go.mod go.sum build.sh
    for f in cmd/*/main.go; do echo "$f"; cat "$f"; done # sorted by the glob
    go env GOVERSION GOOS GOARCH
} | sha256sum | cut -c1-16)
OUT="$CACHE_ROOT/$KEY"

BIN_TOOLS=(kube-apiserver kubectl etcd cnitool cniconvert)
CNI_PLUGINS=(bridge host-local loopback ipvlan macvlan ptp static tuning
    dummy host-device vlan bandwidth firewall portmap sbr vrf)

is_complete() {
    local d=$1 f
    [[ -f "$d/.complete" ]] || return 1
    for f in "${BIN_TOOLS[@]}"; do [[ -x "$d/bin/$f" ]] || return 1; done
    for f in "${CNI_PLUGINS[@]}"; do [[ -x "$d/cni/$f" ]] || return 1; done
}

link_tools() {
    # atomic replace of the tests/.tools symlink
    local tmp="$TESTS_DIR/.tools.tmp.$$"
    ln -s "$OUT" "$tmp"
    mv -T "$tmp" "$TESTS_DIR/.tools"
}

if is_complete "$OUT"; then
    link_tools
    echo "build.sh: tools up to date (cached): $OUT"
    exit 0
fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
if ! flock -n 9; then
    echo "build.sh: waiting for another build ($CACHE_ROOT/.lock) ..." >&2
    flock 9
fi
if is_complete "$OUT"; then # another run built it while we waited
    link_tools
    echo "build.sh: tools up to date (built by a concurrent run): $OUT"
    exit 0
fi

TMP=$(mktemp -d "$CACHE_ROOT/.tmp-$KEY.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/bin" "$TMP/cni"

modver() { go list -m -f '{{.Version}}' "$1"; }
K8S_VERSION=$(modver k8s.io/kubernetes)
PLUGINS_VERSION=$(modver github.com/containernetworking/plugins)
CNI_VERSION=$(modver github.com/containernetworking/cni)
ETCD_VERSION=$(modver go.etcd.io/etcd/server/v3)
K8S_MAJOR=${K8S_VERSION#v}; K8S_MAJOR=${K8S_MAJOR%%.*}
K8S_MINOR=${K8S_VERSION#v*.}; K8S_MINOR=${K8S_MINOR%%.*}

# Version stamps like upstream's hack/lib/version.sh (kube) and
# build_linux.sh (plugins), so `kubectl version` etc. report the pin.
k8s_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$K8S_MAJOR"
    k8s_ldflags+=" -X $p.gitMinor=$K8S_MINOR -X $p.gitTreeState=clean"
done
plugins_ldflags="-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$PLUGINS_VERSION"

declare -A PKG=(
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
    [etcd]=./cmd/etcd
    [cnitool]=github.com/containernetworking/cni/cnitool
    [cniconvert]=./cmd/cniconvert
    [bridge]=github.com/containernetworking/plugins/plugins/main/bridge
    [host-local]=github.com/containernetworking/plugins/plugins/ipam/host-local
    [loopback]=github.com/containernetworking/plugins/plugins/main/loopback
    [ipvlan]=github.com/containernetworking/plugins/plugins/main/ipvlan
    [macvlan]=github.com/containernetworking/plugins/plugins/main/macvlan
    [ptp]=github.com/containernetworking/plugins/plugins/main/ptp
    [static]=github.com/containernetworking/plugins/plugins/ipam/static
    [tuning]=github.com/containernetworking/plugins/plugins/meta/tuning
    [dummy]=github.com/containernetworking/plugins/plugins/main/dummy
    [host-device]=github.com/containernetworking/plugins/plugins/main/host-device
    [vlan]=github.com/containernetworking/plugins/plugins/main/vlan
    [bandwidth]=github.com/containernetworking/plugins/plugins/meta/bandwidth
    [firewall]=github.com/containernetworking/plugins/plugins/meta/firewall
    [portmap]=github.com/containernetworking/plugins/plugins/meta/portmap
    [sbr]=github.com/containernetworking/plugins/plugins/meta/sbr
    [vrf]=github.com/containernetworking/plugins/plugins/meta/vrf
)

{
    echo "# built by tests/tools/build.sh $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "key=$KEY"
    echo "go=$(go env GOVERSION)"
    echo "k8s.io/kubernetes=$K8S_VERSION"
    echo "go.etcd.io/etcd/server/v3=$ETCD_VERSION"
    echo "github.com/containernetworking/cni=$CNI_VERSION"
    echo "github.com/containernetworking/plugins=$PLUGINS_VERSION"
} >"$TMP/BUILDINFO"

echo "build.sh: building tools into $OUT (kubernetes $K8S_VERSION, etcd $ETCD_VERSION, cni $CNI_VERSION, plugins $PLUGINS_VERSION)"
total_start=$(date +%s)
build_one() { # name subdir ldflags
    local name=$1 sub=$2 extra=$3 t0 t1
    t0=$(date +%s.%N)
    go build -buildvcs=false -trimpath -ldflags="-s -w$extra" -o "$TMP/$sub/$name" "${PKG[$name]}"
    t1=$(date +%s.%N)
    local secs size
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
    size=$(du -m "$TMP/$sub/$name" | cut -f1)
    printf 'build.sh: built %-15s %7ss  %4s MiB  (%s)\n' "$sub/$name" "$secs" "$size" "${PKG[$name]}"
    echo "time.$sub/$name=${secs}s" >>"$TMP/BUILDINFO"
}
build_one kube-apiserver bin "$k8s_ldflags"
build_one kubectl bin "$k8s_ldflags"
build_one etcd bin ""
build_one cnitool bin ""
build_one cniconvert bin ""
for p in "${CNI_PLUGINS[@]}"; do
    build_one "$p" cni " $plugins_ldflags"
done
echo "total=$(($(date +%s) - total_start))s" >>"$TMP/BUILDINFO"
touch "$TMP/.complete"
chmod 755 "$TMP"

# Atomic publish: rename(2) of the finished dir. A leftover incomplete $OUT
# (only possible if someone created it by hand) is moved aside first.
if [[ -e "$OUT" ]]; then
    mv -T "$OUT" "$OUT.stale.$$" && rm -rf "$OUT.stale.$$"
fi
mv -T "$TMP" "$OUT"
trap - EXIT
link_tools
echo "build.sh: done in $(($(date +%s) - total_start))s: $OUT"
