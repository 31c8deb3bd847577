#!/usr/bin/env bash
# tests/node/004-outages.sh — what a real node does to wasmcni's addresses when things go wrong,
# and that nothing is lost or given twice:
#   1. a pod deleted with --grace-period=0 --force while the API server is down: the kubelet
#      tears the sandbox down during the outage, wasmcni's DEL cannot release the address
#      (code 11, links removed), the kubelet retries, and the address is released once the API
#      server is back;
#   2. a node "reboot": kubelet, containerd, the shims and every pod process SIGKILLed, the pods'
#      network namespaces dropped, containerd and kubelet started again. The kubelet makes new
#      sandboxes (new container IDs) for the same pods: each gets one address again, the IPPool
#      entries are the new sandboxes', the old sandboxes' DELs free nothing of the new ones, and
#      the reconciler finds nothing to free.
# Prints what it counted ("outages: …").
source "$(dirname "$0")/lib.sh"

install_wasmcni 1.0.0
apply_seed_nad seed-macvlan macvlan eth1
POOL=172.16.1.0-24
before=$(pool_allocations $POOL)
defer "kc delete pod out-a out-b out-c --ignore-not-found --wait=false"
APISERVER_PID=$(cat "$CLUSTER_STATE_DIR/kube-apiserver.pid")
# Resumed whatever happens: a stopped API server would hang every later step and the teardown.
defer "kill -CONT $APISERVER_PID"
net1_of() { kc get pod "$1" -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}' | jq -r '.[1].ips[0] // empty'; }
holders() { pool_allocations $POOL | jq -r 'to_entries|map("\(.value.podref) \(.value.id)")|sort|join(", ")'; }
entry_id() { pool_allocations $POOL | jq -r --arg p "default/$1" '[.[]|select(.podref==$p)|.id]|join(" ")'; }
log_lines() { [[ -f $WASMCNI_NODE_LOG ]] && wc -l <"$WASMCNI_NODE_LOG" || echo 0; }

# ---------------------------------------------------------------- 1. forced delete, API down
node_pod out-a "default/seed-macvlan"
check "pod out-a becomes Ready" wait_pod_ready out-a
ip_a=$(net1_of out-a)
check_grep "out-a holds a net1 address in the IPPool" "default/out-a" "$(holders)"
dels0=$(cni_calls DEL) lines0=$(log_lines)
netns_a=$(pod_netns out-a)
# The kubelet is paused while the delete is made, and the API server stopped right after: the
# deletion reaches the kubelet's watch (buffered in its socket), but every call wasmcni's DEL
# then makes finds the API server silent.
kill -STOP "$(cat "$NODE_DIR/kubelet.pid")"
kc delete pod out-a --grace-period=0 --force >/dev/null 2>&1
sleep 1
kill -STOP "$APISERVER_PID"
kill -CONT "$(cat "$NODE_DIR/kubelet.pid")"
during_outage() { for _ in $(seq 1 120); do [[ $(cni_calls DEL) -gt $dels0 ]] && return 0; sleep 0.5; done; return 1; }
check "the kubelet tears out-a down while the API server is stopped (containerd calls DEL)" during_outage
# wasmcni's DEL waits its request deadline on the silent server, then answers code 11.
sleep 15
outage_dels=$(( $(cni_calls DEL) - dels0 ))
failed_dels=$(tail -n +"$((lines0 + 1))" "$WASMCNI_NODE_LOG" | grep -c ' ERROR ' || true)
check "wasmcni's DEL during the outage failed (logged as an error), not pretended" test "$failed_dels" -ge 1
# The failed DEL keeps the sandbox (containerd retries its teardown), so its namespace is
# still there: wasmcni removed the link before it failed on the address.
check "during the outage out-a's namespace is kept and holds no net1 (links removed, address kept)" \
    bash -c "[[ -n '$netns_a' && -e '$netns_a' ]] && ! nsenter --net='$netns_a' ip link show net1 >/dev/null 2>&1"
kill -CONT "$APISERVER_PID"
t_back=$(date +%s)
released() { for _ in $(seq 1 180); do [[ $(holders) != *default/out-a* ]] && return 0; sleep 1; done; return 1; }
check "once the API server is back, the kubelet's retried DEL releases out-a's address" released
released_after=$(( $(date +%s) - t_back ))
check_empty "and its reservation" "$(orips_matching "${ip_a//./\\.}\$")"

# ---------------------------------------------------------------- 2. node reboot
node_pod out-b "default/seed-macvlan"
node_pod out-c "default/seed-macvlan"
check "pod out-b becomes Ready" wait_pod_ready out-b
check "pod out-c becomes Ready" wait_pod_ready out-c
ip_b=$(net1_of out-b) ip_c=$(net1_of out-c)
sb_b=$(entry_id out-b)
check "out-b's IPPool entry is its running sandbox's" test -n "$sb_b" -a "$sb_b" == "$(pod_sandbox out-b)"
held_before=$(holders)
netns_b=$(pod_netns out-b) netns_c=$(pod_netns out-c)
# The "power cut": nothing gets to stop cleanly.
kill -KILL "$(cat "$NODE_DIR/kubelet.pid")" "$(cat "$NODE_DIR/containerd.pid")" 2>/dev/null
pkill -KILL -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK"
for ns in "$netns_b" "$netns_c"; do
    for pid in $(ip netns pids "$(basename "$ns")" 2>/dev/null); do kill -KILL "$pid"; done
done
sleep 1
for ns in "$netns_b" "$netns_c"; do umount "$ns" 2>/dev/null; rm -f "$ns"; done
# Dead, or a zombie no one reaps (this machine's PID 1 does not): not running either way.
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]; }
nothing_survived() {
    ! running "$(cat "$NODE_DIR/kubelet.pid")" && ! running "$(cat "$NODE_DIR/containerd.pid")" || return 1
    local pid; for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK"); do running "$pid" && return 1; done
    return 0
}
check "nothing of the node's runtime survived the power cut" nothing_survived
check_eq "the IPPool still holds both pods' entries (nothing ran a DEL)" "$held_before" "$(holders)"
dels1=$(cni_calls DEL) adds1=$(cni_calls ADD)
bash "$NODE_DIR/start-containerd.sh"
for _ in $(seq 1 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
bash "$NODE_DIR/start-kubelet.sh"
new_sandbox() { for _ in $(seq 1 180); do
    [[ $(pod_netns "$1") && $(pod_netns "$1") != "$2" ]] && wait_pod_ready "$1" 5 && return 0; sleep 1; done; return 1; }
check "after the restart, out-b runs in a new sandbox" new_sandbox out-b "$netns_b"
check "and out-c" new_sandbox out-c "$netns_c"
# The kubelet stops a dead sandbox (CNI DEL, which frees that sandbox's entry) before it makes
# the new one, so the pods may come back with each other's addresses (lowest free, in the order
# of their ADDs) — or with their own, when the ADD comes first and reuses the entry by podref +
# ifname. Either way: one address per pod, distinct, each what its net1 has.
ip_b=$(net1_of out-b) ip_c=$(net1_of out-c)
check "out-b and out-c have distinct net1 addresses from the range" \
    test -n "$ip_b" -a -n "$ip_c" -a "$ip_b" != "$ip_c"
check_eq "net1 in out-b's new namespace has the address its network-status reports" "$ip_b/24" \
    "$(in_pod out-b ip -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|"\(.local)/\(.prefixlen)"')"
check "out-b reaches out-c over net1 again" in_pod out-b ping -c 2 -W 2 -I net1 "$ip_c"
sleep 5   # the kubelet's DELs of the dead sandboxes
sb_b_new=$(entry_id out-b)
check "the IPPool entry of out-b is its new sandbox's, not the dead one's" \
    test -n "$sb_b_new" -a "$sb_b_new" == "$(pod_sandbox out-b)" -a "$sb_b_new" != "$sb_b"
check_eq "one entry per pod, no other" "default/out-b default/out-c" \
    "$(pool_allocations $POOL | jq -r '[.[]|.podref]|sort|join(" ")')"
out=$("$WASMCNI" reconcile --kubeconfig "$RECONCILER_KUBECONFIG" --once --grace 2 --identity node-004 2>"$WORK/reconcile.err")
echo "$out" >"$WORK/reconcile.json"
check_json "the reconciler finds nothing to free after the reboot" "$WORK/reconcile.json" \
    '.freed_entries == 0 and .freed_reservations == 0'
kc delete pod out-b out-c --wait=false >/dev/null
check "out-b is deleted" wait_pod_gone out-b
check "out-c is deleted" wait_pod_gone out-c
check_eq "the IPPool is as before" "$before" "$(pool_allocations $POOL)"
check_empty "no reservation left" "$(orips_matching '172\.16\.1\.')"
echo "outages: forced delete — $outage_dels DEL(s) during the 15 s outage ($failed_dels log line(s) naming the API server), released ${released_after} s after it; reboot — $(( $(cni_calls ADD) - adds1 )) ADD(s) and $(( $(cni_calls DEL) - dels1 )) DEL(s) after the restart, reconciler: $(tr -d '\n' <"$WORK/reconcile.json")" >&2
