#!/usr/bin/env bash
# tests/e2e/run.sh [SCENARIO...] — the netns + cluster tier: makes a "node" network namespace,
# starts the throwaway control plane inside it (so its loopback is the namespace's, not the
# machine's), and runs each scenario (default: every tests/e2e/NNN-*.sh) in it. Prints one
# PASS/FAIL line per check and "e2e: N passed, N failed"; exits non-zero on any failure.
# Needs root. WASMCNI: the binary under test (default target/debug/wasmcni).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export REPO=$(cd "$HERE/../.." && pwd)
export WASMCNI=${WASMCNI:-$REPO/target/debug/wasmcni}
[[ $(id -u) == 0 ]] || { echo "e2e: needs root (network namespaces)"; echo "e2e: 0 passed, 1 failed"; exit 1; }
[[ -x $WASMCNI ]] || { echo "e2e: $WASMCNI not built (cargo build)"; echo "e2e: 0 passed, 1 failed"; exit 1; }

if [[ "${1:-}" != --in-node ]]; then
    node=wcni-node-$$
    ip netns add "$node" || exit 1
    trap 'ip netns del '"$node" EXIT
    ip -n "$node" link set lo up
    export E2E_RESULTS=$(mktemp /tmp/wasmcni-e2e-results.XXXXXX)
    ip netns exec "$node" "$REPO/tests/cluster/with-cluster.sh" "$0" --in-node "$@"
    rc=$?
    passed=$(grep -c '^PASS' "$E2E_RESULTS"); failed=$(grep -c '^FAIL' "$E2E_RESULTS")
    grep '^FAIL' "$E2E_RESULTS" | sed 's/^/  /'
    rm -f "$E2E_RESULTS"
    [[ $rc == 0 ]] || { echo "e2e: a scenario exited $rc"; failed=$((failed + 1)); }
    echo "e2e: $passed passed, $failed failed"
    [[ $failed == 0 ]]
    exit
fi

# Inside the node namespace, with the cluster up (with-cluster.sh sourced its env).
shift
export STATE_DIR=$(dirname "$KUBECONFIG")
scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=("$HERE"/[0-9][0-9][0-9]-*.sh)
rc=0
for s in "${scenarios[@]}"; do
    echo "=== $(basename "$s")" >&2
    bash "$s"
    status=$?
    if [[ $status != 0 ]]; then echo "FAIL $(basename "$s" .sh): the scenario exited $status" >> "$E2E_RESULTS"; rc=1; fi
done
exit $rc
