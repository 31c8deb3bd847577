#!/usr/bin/env bash
# tests/e2e/008-del-resilience.sh — DEL never blocks and never leaks an address:
#   pod already deleted      → the delegate cache drives DEL; address released, links gone
#   cache corrupt / missing  → DEL still succeeds: cluster network from wasmcni's own config,
#                              every IPPool entry of this container released
#   API server unreachable   → links and cluster network cleaned, the address kept with the cache
#                              and code 11 (try again); the retry, API back, releases it
source "$(dirname "$0")/lib.sh"

make_master eth1
write_wasmcni_conf 1.0.0
apply_seed_nad del-net macvlan eth1 172.16.12.0/24
POOL=172.16.12.0-24
# attach N: a pod del-N in netns wcni-del-N, attached; sets id to its container ID.
# (Not in a $(…) subshell: the netns clean-up registered by new_netns must reach this shell.)
attach() {
    new_netns "wcni-del-$1"; make_pod "del-$1" del-net
    cni add "wcni-del-$1" "del-$1" >/dev/null || fail "ADD del-$1"
    id=$(for f in "$WORK"/delegates/*; do jq -r --arg p "default/del-$1" 'select(.podref==$p)|.container_id' "$f"; done)
}
links() { ip -n "wcni-del-$1" -j link show | jq -r 'map(.ifname)|join(",")'; }
cluster_ips() { ls "$WORK/host-local/cbr0" 2>/dev/null | grep -c '^10\.'; }

attach 1
kc delete pod del-1 --wait=false >/dev/null
check "DEL after the pod is gone exits 0" cni del wcni-del-1 del-1
check_eq "… and released its address and links" '{} lo' "$(pool_allocations $POOL) $(links 1)"

attach 2
echo '{"format": 1, "container_id": "tru' > "$WORK/delegates/$id"
check "DEL with a corrupt cache exits 0" cni del wcni-del-2 del-2
check_eq "… and released its address and its cluster-network address" '{} 0' "$(pool_allocations $POOL) $(cluster_ips)"

attach 3
rm -f "$WORK/delegates/$id"
check "DEL with the cache missing exits 0" cni del wcni-del-3 del-3
check_eq "… and released its address and its cluster-network address" '{} 0' "$(pool_allocations $POOL) $(cluster_ips)"

attach 4
held=$(pool_allocations $POOL)
good=$NETDIR/00-wasmcni.conflist
cp "$good" "$WORK/good.conflist"
sed "s#server: https://127.0.0.1:[0-9]*#server: https://127.0.0.1:1#" "$STATE_DIR/wasmcni.kubeconfig" > "$WORK/down.kubeconfig"
jq --arg k "$WORK/down.kubeconfig" '.plugins[0].kubeconfig = $k' "$WORK/good.conflist" > "$good"
out=$(cni del wcni-del-4 del-4 2>&1); rc=$?
check_eq "DEL with the API server unreachable fails, saying so" "1" "$([[ $rc != 0 && $out == *"API server unreachable"* ]] && echo 1 || echo "$rc $out")"
check_eq "… after removing the links and the cluster network" "lo 0" "$(links 4) $(cluster_ips)"
check_eq "… keeping the address and the cache for the retry" "$held yes" "$(pool_allocations $POOL) $([[ -e $WORK/delegates/$id ]] && echo yes)"
cp "$WORK/good.conflist" "$good"
check "the retry, API back, exits 0" cni del wcni-del-4 del-4
check_eq "… and releases the address and the cache" '{} no' "$(pool_allocations $POOL) $([[ -e $WORK/delegates/$id ]] && echo yes || echo no)"
kc delete pod --all --wait=false >/dev/null 2>&1
