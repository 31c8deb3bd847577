#!/usr/bin/env bash
# tests/e2e/007-gc.sh — GC (spec 1.1): what the runtime no longer lists in
# cni.dev/valid-attachments is released (IPPool entries, cluster-network addresses, the delegate
# cache); what it lists is untouched. Then `cnitool gc` (libcni, an empty list) releases the rest.
source "$(dirname "$0")/lib.sh"

make_master eth1
new_netns wcni-gc-a
new_netns wcni-gc-b
write_wasmcni_conf 1.1.0
apply_seed_nad gc-net macvlan eth1 172.16.11.0/24
make_pod gc-a gc-net
make_pod gc-b gc-net
defer "kc delete pod gc-a gc-b --wait=false"
POOL=172.16.11.0-24
check "ADD pod a" cni add wcni-gc-a gc-a
check "ADD pod b" cni add wcni-gc-b gc-b
mapfile -t ids < <(ls "$WORK/delegates")
check_eq "two attachments recorded" 2 "${#ids[@]}"
a_id=$(for i in "${ids[@]}"; do jq -r 'select(.podref=="default/gc-a")|.container_id' "$WORK/delegates/$i"; done)

CONF=$(jq -c '.plugins[0] + {name: .name, cniVersion: .cniVersion}' "$NETDIR/00-wasmcni.conflist")
gc_with() {  # gc_with VALID_JSON
    jq -c --argjson v "$1" '. + {"cni.dev/valid-attachments": $v}' <<<"$CONF" |
        env -i PATH="$PATH" CNI_PATH="$CNI_BIN" CNI_COMMAND=GC "$WASMCNI"
}
check "GC keeping only pod a exits 0" gc_with "[{\"containerID\":\"$a_id\",\"ifname\":\"eth0\"}]"
check_eq "pod b's address is released, pod a's kept" '["1"]' "$(pool_allocations $POOL | jq -c 'keys')"
check_eq "only pod a's record is left" "$a_id" "$(ls "$WORK/delegates")"
check_eq "pod a still has its address" "172.16.11.1" \
    "$(ip -n wcni-gc-a -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|.local')"
check "pod b's cluster-network address is released (host-local)" \
    bash -c "[[ \$(ls '$WORK/host-local/cbr0' | grep -c '^10\.') == 1 ]]"
out=$(jq -c 'del(.["cni.dev/valid-attachments"])' <<<"$CONF" | env -i PATH="$PATH" CNI_PATH="$CNI_BIN" CNI_COMMAND=GC "$WASMCNI"); rc=$?
check_eq "GC without a valid-attachments list is refused (code 7), releasing nothing" "1 7 1" \
    "$rc $(jq -r .code <<<"$out") $(ls "$WORK/delegates" | wc -l)"

NETCONFPATH=$NETDIR CNI_PATH=$CNI_BIN "$TOOLS/bin/cnitool" gc wasmcni /var/run/netns/wcni-gc-a >/dev/null 2>&1
check_eq "cnitool gc (libcni, nothing valid) releases the rest" '{}' "$(pool_allocations $POOL)"
check_empty "the delegate cache is empty" "$(ls -A "$WORK/delegates")"
