#!/usr/bin/env bash
# tests/node/run.sh [SCENARIO...] — the real-node tier: a network namespace standing in for the
# node, the throwaway control plane (tests/cluster/) and a kubelet + containerd node
# (tests/node/up.sh) in it, started once for every scenario (default: tests/node/NNN-*.sh), then
# torn down in order (tests/node/down.sh, then the control plane). Pods are applied with kubectl
# and reach wasmcni through kubelet → containerd → libcni. Prints one PASS/FAIL line per check
# and "node: N passed, N failed"; exits non-zero on any failure. Needs root.
# WASMCNI: the binary under test (default target/debug/wasmcni).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export REPO=$(cd "$HERE/../.." && pwd)
export WASMCNI=${WASMCNI:-$REPO/target/debug/wasmcni}
summary() { echo "node: $1 passed, $2 failed"; }
[[ $(id -u) == 0 ]] || { echo "node: needs root"; summary 0 1; exit 1; }
[[ -x $WASMCNI ]] || { echo "node: $WASMCNI not built (cargo build)"; summary 0 1; exit 1; }

if [[ "${1:-}" != --in-node ]]; then
    node=wcni-rnode-$$
    ip netns add "$node" || exit 1
    trap 'ip netns del '"$node" EXIT
    ip -n "$node" link set lo up
    export E2E_RESULTS=$(mktemp /tmp/wasmcni-node-results.XXXXXX)
    # nsenter, not `ip netns exec`: that one also remounts /sys for the namespace, which hides
    # the cgroup hierarchy the kubelet and runc manage.
    nsenter --net="/run/netns/$node" "$REPO/tests/cluster/with-cluster.sh" "$0" --in-node "$@"
    rc=$?
    passed=$(grep -c '^PASS' "$E2E_RESULTS"); failed=$(grep -c '^FAIL' "$E2E_RESULTS")
    grep '^FAIL' "$E2E_RESULTS" | sed 's/^/  /'
    rm -f "$E2E_RESULTS"
    [[ $rc == 0 ]] || { echo "node: the tier exited $rc"; failed=$((failed + 1)); }
    summary "$passed" "$failed"
    [[ $failed == 0 ]]
    exit
fi

# Inside the node's namespace, with the control plane up (with-cluster.sh sourced its env).
shift
export STATE_DIR=$(dirname "$KUBECONFIG")
t0=$(date +%s)
env_file=$("$HERE/up.sh" "$STATE_DIR/node") || { echo "FAIL node-up: tests/node/up.sh failed" >>"$E2E_RESULTS"; exit 1; }
echo "PASS node-up: kubelet + containerd node Ready in $(($(date +%s) - t0)) s" >>"$E2E_RESULTS"
. "$env_file"
scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=("$HERE"/[0-9][0-9][0-9]-*.sh)
rc=0
for s in "${scenarios[@]}"; do
    echo "=== $(basename "$s")" >&2
    bash "$s"
    status=$?
    if [[ $status != 0 ]]; then echo "FAIL $(basename "$s" .sh): the scenario exited $status" >>"$E2E_RESULTS"; rc=1; fi
done
# The orderly end: delete every pod still bound to the node; the kubelet stops each sandbox
# (containerd calls CNI DEL and removes its netns), so no task may be left running; the stopped
# sandboxes themselves stay until the kubelet's container GC, and down.sh removes them.
"$KUBECTL" delete pods -A --field-selector "spec.nodeName=$NODE_NAME" --wait=true --timeout=120s >/dev/null 2>&1
left=$(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls 2>/dev/null | awk '$3 == "RUNNING"' | wc -l)
if [[ $left == 0 ]]; then echo "PASS node-down: the node's pods deleted, no task left running in containerd" >>"$E2E_RESULTS"
else echo "FAIL node-down: $left task(s) still running in containerd after the pods were deleted" >>"$E2E_RESULTS"; rc=1; fi
"$HERE/down.sh" "$NODE_DIR" || { echo "FAIL node-down: tests/node/down.sh failed" >>"$E2E_RESULTS"; rc=1; }
# What the node left behind after an orderly teardown: nothing of containerd's may survive it.
left=$(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" | wc -l)
if [[ $left == 0 ]]; then echo "PASS node-down: no shim left" >>"$E2E_RESULTS"
else echo "FAIL node-down: $left shim(s) left" >>"$E2E_RESULTS"; rc=1; fi
exit $rc
