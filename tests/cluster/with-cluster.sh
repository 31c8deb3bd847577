#!/usr/bin/env bash
# tests/cluster/with-cluster.sh CMD [ARGS...] — run CMD against a fresh throwaway
# control plane: up.sh on a new temp state dir, source its env (KUBECONFIG,
# APISERVER_PORT, KUBECTL, TOOLS, ...), run CMD, and always run down.sh (trap),
# exiting with CMD's status (1 if the cluster did not come up; 128+N on signal N).
# The state dir is removed afterwards unless KEEP_CLUSTER_STATE=1 (it is always
# kept, and its path printed, when CMD or up.sh failed, so the logs can be read).
# WITH_CLUSTER_TMPDIR sets the parent of the state dir (default ${TMPDIR:-/tmp}).
set -uo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=$(mktemp -d "${WITH_CLUSTER_TMPDIR:-${TMPDIR:-/tmp}}/wasmcni-cluster.XXXXXX") || exit 1
status=1
child=""

# shellcheck disable=SC2317  # invoked by trap
cleanup() {
    trap - EXIT INT TERM HUP
    if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null
    fi
    "$HERE/down.sh" "$STATE" || status=1
    if [[ $status -eq 0 && "${KEEP_CLUSTER_STATE:-0}" != 1 ]]; then
        rm -rf -- "$STATE"
    else
        echo "with-cluster.sh: cluster state and logs kept in $STATE" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit 130' INT
trap 'status=143; exit 143' TERM
trap 'status=129; exit 129' HUP

# Children run in the background and are waited for, so a signal to this script
# is handled at once (bash defers traps while a foreground child runs).
# stdin is passed through explicitly (background jobs would get /dev/null).
exec 3<&0
"$HERE/up.sh" "$STATE" >/dev/null <&3 3<&- &
child=$!
if ! wait "$child"; then
    child=""
    echo "with-cluster.sh: up.sh failed" >&2
    status=1
    exit 1
fi
# shellcheck disable=SC1091
source "$STATE/env"
"$@" <&3 3<&- &
child=$!
wait "$child"
status=$?
child=""
exit "$status"
