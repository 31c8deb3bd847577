#!/usr/bin/env bash
# tests/cluster/down.sh STATE_DIR [--purge] — stop the control plane that
# tests/cluster/up.sh STATE_DIR started: exactly the processes in STATE_DIR/*.pid
# (kube-apiserver first, then etcd), SIGTERM, then SIGKILL after DOWN_TIMEOUT
# seconds (default 30), and wait until they are gone. Keeps STATE_DIR (logs, data,
# kubeconfigs) unless --purge is given or DOWN_PURGE=1 is set.
# Safe to run twice, or on a dir whose processes already died.
set -euo pipefail

PURGE=${DOWN_PURGE:-0}
STATE_ARG=""
for a in "$@"; do
    case "$a" in
    --purge) PURGE=1 ;;
    -*) echo "usage: $0 STATE_DIR [--purge]" >&2; exit 2 ;;
    *) STATE_ARG=$a ;;
    esac
done
if [[ -z "$STATE_ARG" ]]; then
    echo "usage: $0 STATE_DIR [--purge]" >&2
    exit 2
fi
if [[ ! -d "$STATE_ARG" ]]; then
    echo "down.sh: $STATE_ARG: no such dir, nothing to stop" >&2
    exit 0
fi
STATE=$(cd "$STATE_ARG" && pwd -P)
TIMEOUT=${DOWN_TIMEOUT:-30}

# running = exists and is not a zombie
running() {
    local st
    [[ -r "/proc/$1/stat" ]] || return 1
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# only signal a pid whose command line still names this state dir (pid reuse guard)
ours() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$STATE"; }

rc=0
for name in kube-apiserver etcd; do
    f="$STATE/$name.pid"
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    if [[ ! "$pid" =~ ^[0-9]+$ ]]; then
        rm -f "$f"
        continue
    fi
    if ! running "$pid"; then
        echo "down.sh: $name (pid $pid) not running" >&2
        rm -f "$f"
        continue
    fi
    if ! ours "$pid"; then
        echo "down.sh: pid $pid is no longer $name of $STATE; not touching it" >&2
        rm -f "$f"
        continue
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((TIMEOUT * 10))); do
        running "$pid" || break
        sleep 0.1
    done
    if running "$pid"; then
        echo "down.sh: $name (pid $pid) ignored SIGTERM for ${TIMEOUT}s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            running "$pid" || break
            sleep 0.1
        done
    fi
    if running "$pid"; then
        echo "down.sh: ERROR: $name (pid $pid) still running" >&2
        rc=1
    else
        echo "down.sh: stopped $name (pid $pid)" >&2
        rm -f "$f"
    fi
done

if [[ "$PURGE" == 1 && $rc -eq 0 ]]; then
    rm -rf -- "$STATE"
    echo "down.sh: removed $STATE" >&2
fi
exit $rc
