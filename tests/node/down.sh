#!/usr/bin/env bash
# tests/node/down.sh NODE_DIR — stop the node tests/node/up.sh started so that nothing of it
# survives, in order: the controllers and the kubelet first (so nothing restarts what is being
# removed), then any container containerd still runs (killed: a crash or a test left it; an
# orderly end deletes the node's pods first, so the kubelet stops their sandboxes and CNI DEL
# runs), containerd, its shims, the pod network namespaces it made, and mounts under NODE_DIR.
# Prints what it had to force ("forced: N container(s)"). Safe to run twice, or after the
# processes died. Keeps the logs in NODE_DIR.
set -uo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 NODE_DIR" >&2; exit 2; }
[[ -d $1 ]] || { echo "node/down.sh: $1: no such dir, nothing to stop" >&2; exit 0; }
D=$(cd "$1" && pwd -P)
log() { echo "node/down.sh: $*" >&2; }
SOCK=$D/containerd/containerd.sock
rc=0

running() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null && [[ $(ps -o stat= -p "$1" 2>/dev/null) != Z* ]]; }
stop() { # stop NAME: SIGTERM the pid in NAME.pid, SIGKILL after 20 s
    local f=$D/$1.pid pid
    [[ -f $f ]] || return 0
    pid=$(cat "$f")
    if running "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$D"; then
        kill -TERM "$pid"
        for _ in $(seq 1 200); do running "$pid" || break; sleep 0.1; done
        if running "$pid"; then log "$1 ignored SIGTERM for 20 s: SIGKILL"; kill -KILL "$pid"; sleep 0.5; fi
    fi
    rm -f "$f"
}

stop kube-controller-manager   # nothing recreates a DaemonSet's pods
stop kube-scheduler
stop kubelet

# Containers still there: kill their tasks, and remember the network namespaces of the sandboxes
# (containerd removes those only when the CRI removes the sandbox, which no one will now).
netns=()
if [[ -S $SOCK ]]; then
    ctr() { timeout 60 command ctr --address "$SOCK" -n k8s.io "$@"; }
    ids=$(ctr containers ls -q 2>/dev/null)
    [[ -z $ids ]] || log "forced: $(wc -w <<<"$ids") container(s)"
    for id in $ids; do
        ns=$(ctr containers info "$id" 2>/dev/null | jq -r '.Spec.linux.namespaces[]? | select(.type=="network") | .path // empty')
        [[ -n $ns ]] && netns+=("$ns")
        ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1
        ctr tasks delete -f "$id" >/dev/null 2>&1
        ctr containers delete "$id" >/dev/null 2>&1
    done
fi

stop containerd

# A containerd that died leaves its shims (and their containers) running: they name its address.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null); do
    log "killing leftover shim $pid and its containers"
    pkill -KILL -P "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null
done
# Mounts under NODE_DIR (container rootfs, the kubelet's volumes), deepest first.
mounts=$(awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
for m in $mounts; do umount -l "$m" 2>/dev/null && log "unmounted $m"; done
for ns in "${netns[@]}"; do
    [[ $ns == /var/run/netns/cni-* || $ns == /run/netns/cni-* ]] || continue
    umount "$ns" 2>/dev/null; rm -f "$ns" && log "removed pod netns $ns"
done
exit $rc
