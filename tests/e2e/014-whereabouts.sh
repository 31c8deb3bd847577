#!/usr/bin/env bash
# tests/e2e/014-whereabouts.sh — whereabouts semantics on the real API server:
#   - overlapping ranges (172.16.40.0/23 and 172.16.40.0/24, two NADs, pods attached at once)
#     never give an address twice: each address is claimed by an OverlappingRangeIPReservation
#     named as whereabouts names it, and a reservation whereabouts made is honoured;
#   - DEL frees the pool entry and the reservation, and leaves others' reservations alone;
#   - a pod back with a new sandbox (same pod, same interface, new container ID) keeps its
#     address, and the old sandbox's late DEL frees nothing;
#   - ipRanges: one address per range (dual-stack), all in the result and in network-status.
# (Keys refused with code 7, naming them: 002-bad-input.sh.)
source "$(dirname "$0")/lib.sh"

make_master eth1
write_wasmcni_conf 1.0.0
nad() { # NAME IPAM_JSON
    apply_nad "$1" "{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":$2}]}"
}
nad wide-net '{"type":"whereabouts","range":"172.16.40.0/23"}'
nad narrow-net '{"type":"whereabouts","range":"172.16.40.0/24"}'
orips() { orips_matching '172\.16\.4[01]\.'; }
cleanup_orips() {
    delete_orips '172\.16\.(40|41)\.|blue-|fd00-'
}
cleanup_orips
defer cleanup_orips
defer "kc -n kube-system delete ippools.whereabouts.cni.cncf.io 172.16.40.0-23 172.16.40.0-24 blue-172.16.30.0-24 blue-fd00-30---120 --ignore-not-found"

# A reservation whereabouts made (it writes podref and ifname, no container ID) for .8.1.
kc apply -f - >/dev/null <<'EOF'
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: OverlappingRangeIPReservation
metadata: {name: 172.16.40.1, namespace: kube-system}
spec: {podref: other/whereabouts-pod, ifname: net1}
EOF

N=12
pods=()
for i in $(seq 1 $N); do
    new_netns wcni-ovl-$i
    if ((i % 2)); then make_pod ovl-$i wide-net; else make_pod ovl-$i narrow-net; fi
    pods+=(ovl-$i)
done
defer "kc delete pod ${pods[*]} --wait=false"
for i in $(seq 1 $N); do
    ( cni add wcni-ovl-$i ovl-$i > "$WORK/add-$i.out" 2>&1; echo $? > "$WORK/add-$i.rc" ) &
done
wait
ok=0; for i in $(seq 1 $N); do [[ $(cat "$WORK/add-$i.rc") == 0 ]] && ok=$((ok + 1)); done
check_eq "$N concurrent ADDs over two overlapping ranges all succeed" "$N" "$ok"
addrs=$(for i in $(seq 1 $N); do ip -n wcni-ovl-$i -j addr show net1 2>/dev/null | jq -r '.[0].addr_info[]|select(.family=="inet")|.local'; done | sort)
check_eq "$N distinct addresses across both ranges" "$N" "$(sort -u <<<"$addrs" | grep -c .)"
check "…none of them the address whereabouts reserved (172.16.40.1)" bash -c "! grep -qx 172.16.40.1 <<<'$addrs'"
want=$( { for i in $(seq 1 $N); do echo "$(ip -n wcni-ovl-$i -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|.local') default/ovl-$i"; done
          echo "172.16.40.1 other/whereabouts-pod"; } | sort)
check_eq "one OverlappingRangeIPReservation per address, named as whereabouts names it, for its pod" "$want" "$(orips)"
check_eq "the two pools hold $N entries between them" "$N" \
    "$(( $(pool_allocations 172.16.40.0-23 | jq length) + $(pool_allocations 172.16.40.0-24 | jq length) ))"
check "CHECK of a pod on the narrow range" cni check wcni-ovl-2 ovl-2

for i in $(seq 1 $N); do ( cni del wcni-ovl-$i ovl-$i > /dev/null 2>&1; echo $? > "$WORK/del-$i.rc" ) & done
wait
ok=0; for i in $(seq 1 $N); do [[ $(cat "$WORK/del-$i.rc") == 0 ]] && ok=$((ok + 1)); done
check_eq "$N concurrent DELs all succeed" "$N" "$ok"
check_eq "both pools are empty" '{}{}' "$(pool_allocations 172.16.40.0-23)$(pool_allocations 172.16.40.0-24)"
check_eq "only whereabouts' reservation is left" "172.16.40.1 other/whereabouts-pod" "$(orips)"
check "DEL again: idempotent" cni del wcni-ovl-1 ovl-1

# The same pod and interface with a new sandbox (another netns: cnitool derives the container
# ID from it) keeps its address; the old sandbox's late DEL frees nothing.
new_netns wcni-sts-a
new_netns wcni-sts-b
make_pod web-0 narrow-net
defer "kc delete pod web-0 --wait=false"
check "ADD web-0 (first sandbox)" bash -c "$(declare -f cni); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni add wcni-sts-a web-0 >/dev/null"
first=$(ip -n wcni-sts-a -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|.local')
check "ADD web-0 again (new sandbox, old one not yet deleted)" bash -c "$(declare -f cni); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni add wcni-sts-b web-0 >/dev/null"
second=$(ip -n wcni-sts-b -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|.local')
check_eq "web-0 keeps its address ($first)" "$first" "$second"
check_eq "the pool has one entry for web-0" 1 "$(pool_allocations 172.16.40.0-24 | jq '[.[]|select(.podref=="default/web-0")]|length')"
check "DEL of the old sandbox" cni del wcni-sts-a web-0
check_eq "…freed nothing" 1 "$(pool_allocations 172.16.40.0-24 | jq length)"
check "DEL of the new sandbox" cni del wcni-sts-b web-0
check_eq "…freed the address and its reservation" '{} 172.16.40.1 other/whereabouts-pod' "$(pool_allocations 172.16.40.0-24) $(orips)"

# ipRanges: an address from each range, in the result and in network-status.
nad dual-net '{"type":"whereabouts","network_name":"blue","range":"172.16.30.0/24","gateway":"172.16.30.1","ipRanges":[{"range":"fd00:30::/120"}]}'
new_netns wcni-dual
make_pod dual-pod dual-net
defer "kc delete pod dual-pod --wait=false"
check "ADD on a dual-stack network (range + ipRanges)" bash -c "$(declare -f cni); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni add wcni-dual dual-pod >/dev/null"
check_eq "net1 has an address of each range" "172.16.30.2/24 fd00:30::1/120" \
    "$(ip -n wcni-dual -j addr show net1 | jq -r '[.[0].addr_info[]|select(.scope=="global")|"\(.local)/\(.prefixlen)"]|join(" ")')"
check_eq "network-status lists both" '["172.16.30.2","fd00:30::1"]' \
    "$(kc get pod dual-pod -o json | jq -c '.metadata.annotations["k8s.v1.cni.cncf.io/network-status"]|fromjson|map(select(.interface=="net1"))[0].ips')"
check_eq "each range has its pool and reservation, prefixed by network_name" "1 1 2" \
    "$(pool_allocations blue-172.16.30.0-24 | jq length) $(pool_allocations blue-fd00-30---120 | jq length) \
$(kc -n kube-system get overlappingrangeipreservations.whereabouts.cni.cncf.io -o name | grep -cE '/blue-(172\.16\.30\.2|fd00-30--1)$')"
check "CHECK of the dual-stack pod" cni check wcni-dual dual-pod
check "DEL of the dual-stack pod" cni del wcni-dual dual-pod
check_eq "…both pools empty, both reservations gone" '{}{} 0' \
    "$(pool_allocations blue-172.16.30.0-24)$(pool_allocations blue-fd00-30---120) $(kc -n kube-system get overlappingrangeipreservations.whereabouts.cni.cncf.io -o name | grep -c blue-)"

