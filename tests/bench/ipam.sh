#!/usr/bin/env bash
# tests/bench/ipam.sh [--allocs N] [--parallel P] [--runs R] [--taken T,T…] [--taken-ops K] — cluster-wide IPAM
# throughput and latency of wasmcni against whereabouts v0.9.2 (tests/tools/peers), on the same
# apiserver, interleaved in one run. A benchmark, not a test: nothing here asserts a time.
#
# Both are exec'd as the IPAM plugin a main plugin (macvlan, Multus' delegates) would exec:
# CNI_* environment, the network config on stdin, `"ipam": {"type": "whereabouts", "range": …}`
# with whereabouts' flat file naming the kubeconfig — wasmcni is the same binary installed as
# "whereabouts". Four tools: whereabouts, wasmcni on one IPPool per range, wasmcni with the range
# in per-node blocks (`block_size` 26), and those blocks in thick mode (one `wasmcni daemon` per
# node name; the exec'd shim forwards to it); calls come from 10 node names (NODENAME). Per run and per
# tool: N ADDs of distinct pods at P-way concurrency on one /16 (allocations/s, p50/p99 per ADD,
# failures, duplicate addresses), then their DELs (failures, entries and ORIPs left); then K
# sequential ADD+DEL on a /16 that already holds T entries, for each T (default 0,10000,60000).
# Each tool has its own /16 so they never meet; the order of the tools alternates per run.
# --tools picks a subset (wasmcni,wasmcni-blocks,whereabouts,wasmcni-daemon).
# BENCH_DAEMON_LOG=info runs the daemons at info level and prints, at the end, how many of
# their conditional writes lost to a record made first.
#
# Needs root (a node network namespace with the throwaway control plane on its loopback, as the
# e2e tier), tests/setup.sh's tools and peers, and a release build:
#   cargo build --release --locked -p wasmcni && bash tests/bench/ipam.sh
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export REPO
export WASMCNI=${WASMCNI:-$REPO/target/release/wasmcni}
export WHEREABOUTS=${WHEREABOUTS:-$REPO/tests/.peers/bin/whereabouts}
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
export PYTHON

if [[ "${1:-}" != --in-node ]]; then
    [[ $(id -u) == 0 ]] || { echo "ipam.sh: needs root (network namespaces)" >&2; exit 1; }
    [[ -x $WASMCNI ]] || { echo "ipam.sh: $WASMCNI not built (cargo build --release --locked -p wasmcni)" >&2; exit 1; }
    [[ -x $WHEREABOUTS ]] || { echo "ipam.sh: $WHEREABOUTS not built (tests/tools/peers/build.sh)" >&2; exit 1; }
    export BENCH_CMD="bash tests/bench/ipam.sh${*:+ $*}"
    node=wcni-bipam-$$
    ip netns add "$node" || exit 1
    trap 'ip netns del '"$node" EXIT
    ip -n "$node" link set lo up
    ip netns exec "$node" "$REPO/tests/cluster/with-cluster.sh" "$0" --in-node "$@"
    exit
fi

shift
: "${KUBECONFIG:?}" "${KUBECTL:?}" "${TOOLS:?}"
STATE_DIR=$(dirname "$KUBECONFIG")
WORK=$(mktemp -d /tmp/wasmcni-bench-ipam.XXXXXX)
pod_ns=wcnib-ipam-$$
cleanup() { ip netns del "$pod_ns" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
# CNI_NETNS must name a namespace (skel checks it); neither IPAM plugin enters it.
ip netns add "$pod_ns" || exit 1

mkdir -p "$WORK/wasmcni" "$WORK/whereabouts"
cp "$WASMCNI" "$WORK/wasmcni/whereabouts" || exit 1   # a rebuild during the run changes nothing
cp "$WHEREABOUTS" "$WORK/whereabouts/whereabouts" || exit 1
# Each tool's flat file names its identity: wasmcni's least-privilege one, whereabouts' the admin
# (it also takes a cluster-wide Lease, which deploy/rbac.yaml does not grant).
echo "{\"kubernetes\":{\"kubeconfig\":\"$STATE_DIR/wasmcni.kubeconfig\"}}" > "$WORK/wasmcni/flat.conf"
echo "{\"kubernetes\":{\"kubeconfig\":\"$KUBECONFIG\"}}" > "$WORK/whereabouts/flat.conf"

"$PYTHON" "$HERE/ipam_driver.py" --work "$WORK" --netns "/var/run/netns/$pod_ns" \
    --kubectl "$KUBECTL" --command "$BENCH_CMD" "$@"
