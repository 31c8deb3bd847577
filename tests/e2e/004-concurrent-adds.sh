#!/usr/bin/env bash
# tests/e2e/004-concurrent-adds.sh — eight pods attach to the same range at once: every ADD
# succeeds, the addresses are distinct, the IPPool holds exactly those eight (the API server's
# per-key conditional writes are the only lock), and eight parallel DELs empty it again.
source "$(dirname "$0")/lib.sh"

N=8
make_master eth1
write_wasmcni_conf 1.0.0 '"guestTimeoutMs":2000'
apply_seed_nad race-net macvlan eth1 172.16.5.0/24
POOL=172.16.5.0-24
pods=()
for i in $(seq 1 $N); do
    new_netns wcni-race-$i
    make_pod race-$i "race-net"
    pods+=(race-$i)
done
defer "kc delete pod ${pods[*]} --wait=false"

for i in $(seq 1 $N); do
    ( WASMCNI_LOG=info cni add wcni-race-$i race-$i > "$WORK/add-$i.out" 2>&1; echo $? > "$WORK/add-$i.rc" ) &
done
wait
ok=0; for i in $(seq 1 $N); do [[ $(cat "$WORK/add-$i.rc") == 0 ]] && ok=$((ok + 1)); done
check_eq "$N concurrent ADDs all succeed" "$N" "$ok"

addrs=$(for i in $(seq 1 $N); do ip -n wcni-race-$i -j addr show net1 2>/dev/null | jq -r '.[0].addr_info[]|select(.family=="inet")|.local'; done | sort -u)
check_eq "$N distinct addresses" "$N" "$(grep -c . <<<"$addrs")"
check_eq "the IPPool holds exactly those addresses" \
    "$(sed 's/^172\.16\.5\.//' <<<"$addrs" | sort -n | paste -sd,)" \
    "$(kc -n kube-system get ippools.whereabouts.cni.cncf.io $POOL -o json | jq -r '.spec.allocations|keys|map(tonumber)|sort|map(tostring)|join(",")')"
races=$(grep -c 'went to another writer' "$WORK/wasmcni.log")
log "addresses lost to another writer and retried: $races"

for i in $(seq 1 $N); do ( cni del wcni-race-$i race-$i > /dev/null 2>&1; echo $? > "$WORK/del-$i.rc" ) & done
wait
ok=0; for i in $(seq 1 $N); do [[ $(cat "$WORK/del-$i.rc") == 0 ]] && ok=$((ok + 1)); done
check_eq "$N concurrent DELs all succeed" "$N" "$ok"
check_eq "the IPPool is empty again" '{}' "$(pool_allocations $POOL)"
