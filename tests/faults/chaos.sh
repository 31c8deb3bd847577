#!/usr/bin/env bash
# tests/faults/chaos.sh — the fault tier (run by tests/run.sh through tests/e2e/run.sh, on its
# own throwaway cluster). Bounded: a few minutes. What happens, in order:
#   1. 10 simulated nodes (a wasmcni conflist each: its own nodeName and delegate cache) ADD 60
#      pods at once over two overlapping NADs (172.16.70.0/23 kept in per-node /27 blocks, and
#      172.16.70.0/24 in whereabouts' one IPPool: the ORIPs keep them apart); about one
#      plugin process in five is SIGKILLed at a random moment, and the kube-apiserver is
#      SIGKILLed and restarted in the middle;
#   2. the runtime's retries: every ADD that failed is DEL'd (until that succeeds) and ADDed
#      again (until that succeeds), as the kubelet does with a failed sandbox;
#   3. 20 pods are DEL'd at once with the same SIGKILLs, each DEL retried until it succeeds,
#      and their pod objects deleted;
#   4. node-10 is lost: its pods' objects and namespaces vanish, no DEL, its disk is gone;
#   5. the reconciler runs.
# Then: no address twice among live pods (across both ranges), every live pod holds exactly
# its one address in the pools and one ORIP, nothing recorded for a pod that is not live, no
# link or cache file left for a deleted pod; and after the final DELs, nothing at all. The
# counts of what was killed and retried are printed.
source "$REPO/tests/e2e/lib.sh"

NODES=10 PER_NODE=6 KILL_PCT=20
make_master eth1
nad() { apply_nad "$1" "{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":{\"type\":\"whereabouts\",\"range\":\"$2\"${3:-}}}]}"; }
nad chaos-wide 172.16.70.0/23 ',"block_size":27'
nad chaos-narrow 172.16.70.0/24
# The allocations of both ranges, one JSON object each: the /23's blocks merged, the /24's pool.
wide_allocations() {
    kc -n kube-system get ippools.whereabouts.cni.cncf.io -l wasmcni.io/pool=172.16.70.0-23 -o json |
        jq -cS '[.items[].spec.allocations // {}]|add // {}'
}
write_wasmcni_conf 1.0.0
# One conflist and cache per node; CNI_PATH's "wasmcni" is a wrapper that, in KILL_PCT of the
# calls when armed, SIGKILLs the plugin process itself 0–400 ms into the call (exec keeps the pid).
for n in $(seq 1 $NODES); do
    mkdir -p "$WORK/node-$n/net.d" "$WORK/node-$n/bin"
    # Its own disk: delegate cache, and the cluster network's host-local leases.
    sed -e "s#$WORK/host-local#$WORK/node-$n/host-local#" -e "s#10.244.1.0/24#10.244.$n.0/24#" -e "s#\"cni0\"#\"cni$n\"#" "$WORK/cluster.conflist" > "$WORK/node-$n/cluster.conflist"
    sed -e "s#\"nodeName\":\"node-1\"#\"nodeName\":\"node-$n\"#" -e "s#$WORK/delegates#$WORK/node-$n/delegates#" \
        -e "s#$WORK/cluster.conflist#$WORK/node-$n/cluster.conflist#" \
        "$NETDIR/00-wasmcni.conflist" > "$WORK/node-$n/net.d/00-wasmcni.conflist"
    for p in "$CNI_BIN"/*; do [[ $(basename "$p") == wasmcni ]] || ln -s "$(readlink -f "$p")" "$WORK/node-$n/bin/"; done
    cat > "$WORK/node-$n/bin/wasmcni" <<EOF
#!/bin/bash
if [[ -f $WORK/armed && \$((RANDOM % 100)) -lt $KILL_PCT ]]; then
    # The pid is killed only while it is still this process (same start time, not a zombie):
    # after a long run pids wrap, and a pid freed by a fast call may already be someone else's
    # (the restarted kube-apiserver, once).
    started=\$(awk '{print \$22}' /proc/\$\$/stat)
    ( sleep "\$(printf '0.%03d' \$((RANDOM % 400)))"
      read -r -a st < /proc/\$\$/stat 2>/dev/null || exit 0
      [[ \${st[21]} == "\$started" && \${st[2]} == [RSD] ]] && kill -9 \$\$ 2>/dev/null &&
          echo "\$CNI_COMMAND" >> $WORK/killed ) >/dev/null 2>&1 &
fi
exec $WASMCNI
EOF
    chmod +x "$WORK/node-$n/bin/wasmcni"
done
# node NODE VERB NETNS POD: the runtime on NODE calls the plugin for pod default/POD.
node_cni() {
    NETCONFPATH=$WORK/node-$1/net.d CNI_PATH=$WORK/node-$1/bin CNI_IFNAME=eth0 \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$4;K8S_POD_INFRA_CONTAINER_ID=infra-$4;K8S_POD_UID=uid-$4" \
    WASMCNI_LOG_FILE="$WORK/wasmcni.log" timeout 120 "$TOOLS/bin/cnitool" "$2" wasmcni "/var/run/netns/$3"
}
cleanup() {
    delete_orips '172\.16\.7[01]\.'
    kc -n kube-system delete ippools.whereabouts.cni.cncf.io 172.16.70.0-24 --ignore-not-found >/dev/null
    kc -n kube-system delete ippools.whereabouts.cni.cncf.io -l wasmcni.io/pool=172.16.70.0-23 >/dev/null
    kc delete pods -l chaos=1 --force --grace-period=0 >/dev/null 2>&1
}
cleanup
defer cleanup

pods=()
declare -A NODE_OF
for n in $(seq 1 $NODES); do
    for k in $(seq 1 $PER_NODE); do
        p=chaos-$n-$k
        pods+=("$p"); NODE_OF[$p]=$n
        new_netns "wcni-$p"
        if ((k % 2)); then make_pod "$p" chaos-wide; else make_pod "$p" chaos-narrow; fi
    done
done
kc label pods "${pods[@]}" chaos=1 >/dev/null

# ---- 1. concurrent ADDs under SIGKILL, the apiserver killed and restarted mid-way
touch "$WORK/armed"
for p in "${pods[@]}"; do
    ( node_cni "${NODE_OF[$p]}" add "wcni-$p" "$p" > "$WORK/$p.add" 2>&1; echo $? > "$WORK/$p.rc" ) &
done
# The apiserver goes down once a third of the ADDs have answered: the rest meet the outage.
for _ in $(seq 1 600); do
    (( $(find "$WORK" -maxdepth 1 -name '*.rc' | wc -l) >= ${#pods[@]} / 3 )) && break
    sleep 0.1
done
api_pid=$(cat "$STATE_DIR/kube-apiserver.pid")
mapfile -d '' api_cmd < "/proc/$api_pid/cmdline"
kill -9 "$api_pid"
log "kube-apiserver (pid $api_pid) SIGKILLed"
sleep 3
# Started outside this script's jobs (the `wait` below must not wait for it); down.sh stops it.
# A restart that is not ready within 60 s is killed and made again (up to 3 times), as up.sh
# retries a start: under the retrying clients it has been seen to hang before listening.
for attempt in 1 2 3; do
    ( setsid "${api_cmd[@]}" >> "$STATE_DIR/kube-apiserver.log" 2>&1 < /dev/null &
      echo $! > "$STATE_DIR/kube-apiserver.pid" )
    for _ in $(seq 1 60); do kc get --raw /readyz >/dev/null 2>&1 && break 2; sleep 1; done
    log "kube-apiserver restart $attempt not ready in 60 s: $(tail -3 "$STATE_DIR/kube-apiserver.log" | cut -c1-200)"
    kill -9 "$(cat "$STATE_DIR/kube-apiserver.pid")" 2>/dev/null
    sleep 1
done
check_eq "the kube-apiserver is back after its SIGKILL" ok "$(kc get --raw /readyz 2>&1)"
wait
failed_adds=0
for p in "${pods[@]}"; do
    [[ $(cat "$WORK/$p.rc") == 0 ]] && continue
    failed_adds=$((failed_adds + 1))
    # What the runtime was told (cnitool prints the plugin's message on its first line).
    head -1 "$WORK/$p.add" | sed -E 's/^Error: plugin type="wasmcni" failed \(add\): //; s/[0-9a-f]{8,}|[0-9]+(\.[0-9]+){3}|chaos-[0-9]+-[0-9]+|pid [0-9]+/…/g' | cut -c1-90 >> "$WORK/first-round"
done
[[ -s $WORK/first-round ]] && log "first-round failures by message: $(sort "$WORK/first-round" | uniq -c | sort -rn | head -5 | tr -s ' ' | tr '\n' ';')"
killed_adds=$(grep -c ADD "$WORK/killed" 2>/dev/null); killed_adds=${killed_adds:-0}
rm -f "$WORK/armed"

# ---- 2. the runtime's retries (no more kills): DEL the failed sandbox until it succeeds, ADD again
retries=0 gave_up=0
for p in "${pods[@]}"; do
    [[ $(cat "$WORK/$p.rc") == 0 ]] && continue
    ok=""
    for _ in 1 2 3 4 5; do
        retries=$((retries + 1))
        node_cni "${NODE_OF[$p]}" del "wcni-$p" "$p" > /dev/null 2>&1 || continue
        if node_cni "${NODE_OF[$p]}" add "wcni-$p" "$p" > "$WORK/$p.add" 2>&1; then ok=1; break; fi
    done
    [[ -n $ok ]] || { gave_up=$((gave_up + 1)); log "$p: no ADD succeeded: $(tail -c 300 "$WORK/$p.add")"; }
done
check_eq "every pod is attached after the retries" 0 "$gave_up"

# ---- 3. 20 concurrent DELs under SIGKILL, each retried until it succeeds; their pods deleted
touch "$WORK/armed"
deleted=("${pods[@]:0:20}")
for p in "${deleted[@]}"; do
    ( node_cni "${NODE_OF[$p]}" del "wcni-$p" "$p" > /dev/null 2>&1; echo $? > "$WORK/$p.delrc" ) &
done
wait
rm -f "$WORK/armed"
killed_dels=$(grep -c DEL "$WORK/killed" 2>/dev/null); killed_dels=${killed_dels:-0}
del_retries=0 del_gave_up=0
for p in "${deleted[@]}"; do
    [[ $(cat "$WORK/$p.delrc") == 0 ]] && continue
    ok=""
    for _ in 1 2 3 4 5; do
        del_retries=$((del_retries + 1))
        node_cni "${NODE_OF[$p]}" del "wcni-$p" "$p" > /dev/null 2>&1 && { ok=1; break; }
    done
    [[ -n $ok ]] || del_gave_up=$((del_gave_up + 1))
done
check_eq "every DEL succeeds within its retries" 0 "$del_gave_up"
kc delete pod "${deleted[@]}" --force --grace-period=0 >/dev/null 2>&1

# ---- 4. node-10 lost: its pods go, no DEL, its disk with them
lost=()
for p in "${pods[@]}"; do [[ ${NODE_OF[$p]} == "$NODES" ]] && lost+=("$p"); done
kc delete pod "${lost[@]}" --force --grace-period=0 >/dev/null 2>&1
for p in "${lost[@]}"; do ip netns del "wcni-$p" 2>/dev/null; done
rm -rf "$WORK/node-$NODES/delegates" "$WORK/node-$NODES/host-local"

# ---- 5. the reconciler
rec=$("$WASMCNI" reconcile --kubeconfig "$STATE_DIR/reconciler.kubeconfig" --once --grace 2 --identity chaos 2>"$WORK/reconcile.err")
log "reconciler: $rec"

live=()
for p in "${pods[@]}"; do
    [[ ${NODE_OF[$p]} == "$NODES" ]] && continue
    [[ " ${deleted[*]} " == *" $p "* ]] && continue
    live+=("$p")
done
addr_of() { ip -n "wcni-$1" -j addr show net1 2>/dev/null | jq -r '.[0].addr_info[]|select(.family=="inet")|.local'; }
addrs=$(for p in "${live[@]}"; do addr_of "$p"; done)
n_addrs=$(grep -c . <<<"$addrs")
check_eq "each of the ${#live[@]} live pods has one net1 address" "${#live[@]}" "$n_addrs"
check_eq "no address twice among live pods, across both ranges" "$n_addrs" "$(sort -u <<<"$addrs" | grep -c .)"
want=$(for p in "${live[@]}"; do echo "$(addr_of "$p") default/$p"; done | sort)
recorded=$( { wide_allocations; pool_allocations 172.16.70.0-24; } | jq -r '.[].podref' | sort)
check_eq "the pools record exactly the live pods, each once" \
    "$(printf 'default/%s\n' "${live[@]}" | sort)" "$recorded"
orips=$(orips_matching '172\.16\.7[01]\.')
check_eq "one ORIP per live pod's address, and no other" "$want" "$orips"
left=""
for p in "${deleted[@]}"; do
    l=$(ip -n "wcni-$p" -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep -v '^lo$' | tr '\n' ' ')
    [[ -z $l ]] || left+=" $p: $l;"
done
check_empty "no link left in the DEL'd pods' namespaces" "$left"
cached=$(for n in $(seq 1 $((NODES - 1))); do ls "$WORK/node-$n/delegates" 2>/dev/null; done | sort)
want_cached=$(for p in "${live[@]}"; do grep -l "\"default/$p\"" "$WORK"/node-*/delegates/* 2>/dev/null | head -1; done | xargs -r -n1 basename | sort)
check_eq "the delegate caches hold the live pods only (${#live[@]} files)" "${#live[@]}" "$(grep -c . <<<"$cached")"
check_eq "…one per live pod" "$cached" "$want_cached"

n_blocks=$(kc -n kube-system get ippools.whereabouts.cni.cncf.io -l wasmcni.io/pool=172.16.70.0-23 -o name | grep -c .)
# Everything else DEL'd: nothing at all may be left.
for p in "${live[@]}"; do ( node_cni "${NODE_OF[$p]}" del "wcni-$p" "$p" >/dev/null 2>&1 ) & done
wait
check_eq "after the last DELs the pools are empty" '{}{}' "$(wide_allocations)$(pool_allocations 172.16.70.0-24)"
check_empty "…and no ORIP is left" "$(kc -n kube-system get overlappingrangeipreservations.whereabouts.cni.cncf.io -o name | grep -E '/172\.16\.7[01]\.')"
check_empty "…nor a host-local lease of the cluster network" "$(ls "$WORK"/node-*/host-local/*/ 2>/dev/null | grep -E '^[0-9a-f.:]+$')"
check_empty "…nor a cache file" "$(ls "$WORK"/node-*/delegates 2>/dev/null | grep -v ':$' | grep .)"

echo "faults: ${#pods[@]} pods on $NODES nodes; ADDs SIGKILLed $killed_adds, failed in the first round $failed_adds (apiserver down 3 s after a third had answered), retried $retries; DELs SIGKILLed $killed_dels, retried $del_retries; node lost with ${#lost[@]} pods; the /23 in $n_blocks blocks; reconciler $rec" | tee -a "$WORK/counts" >&2
log "$(cat "$WORK/counts")"
