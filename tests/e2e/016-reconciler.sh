#!/usr/bin/env bash
# tests/e2e/016-reconciler.sh — `wasmcni reconcile` on the real API server, with its own
# least-privilege identity (deploy/reconciler.yaml):
#   - frees the allocation (and its ORIP) of a pod deleted without a DEL (a lost node), and
#     reservations no pool accounts for whose pod is gone or completed (a DEL that died between
#     its two writes), each with an Event; keeps the allocations of pods that exist, and the
#     reservations of pods not running yet;
#   - never frees the address of a pod being created: an ADD held (sleep_for_race) while the
#     reconciler passes keeps its address;
#   - one leader: a second reconciler is refused while the Lease is held;
#   - RBAC: it can list pods and delete reservations, and cannot write pods or create pools.
# It first checks that the earlier scenarios left no reservation behind: the reconciler judges
# every reservation in kube-system, and a leak anywhere is a bug to name, not noise to count.
source "$(dirname "$0")/lib.sh"

RK=$STATE_DIR/reconciler.kubeconfig
reconcile() { "$WASMCNI" reconcile --kubeconfig "$RK" --once "$@"; }
make_master eth1
write_wasmcni_conf 1.0.0
nad() { apply_nad "$1" "{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":$2}]}"; }
nad rec-net '{"type":"whereabouts","range":"172.16.60.0/24"}'
nad rec-slow '{"type":"whereabouts","range":"172.16.60.0/24","sleep_for_race":4}'
orips() { orips_matching '172\.16\.60\.'; }
cleanup() {
    delete_orips '172\.16\.60\.'
    kc -n kube-system delete ippools.whereabouts.cni.cncf.io 172.16.60.0-24 --ignore-not-found >/dev/null
    kc -n kube-system delete lease wasmcni-reconciler --ignore-not-found >/dev/null
}
cleanup
defer cleanup
check_empty "the earlier scenarios left no reservation (name, pod)" "$(kc -n kube-system get overlappingrangeipreservations.whereabouts.cni.cncf.io -o json |
    jq -r '.items[]|"\(.metadata.name) \(.spec.podref)"')"
net1_v4() { ip -n "$1" -j addr show net1 2>/dev/null | jq -r '.[0].addr_info[]|select(.family=="inet")|.local'; }

can() { "$KUBECTL" --kubeconfig "$RK" auth can-i "$@" 2>/dev/null; }
check_eq "reconciler identity: list pods" yes "$(can list pods --all-namespaces)"
check_eq "…delete reservations" yes "$(can -n kube-system delete overlappingrangeipreservations.whereabouts.cni.cncf.io)"
check_eq "…patch pools" yes "$(can -n kube-system patch ippools.whereabouts.cni.cncf.io)"
check_eq "…not patch pods" no "$(can patch pods)"
check_eq "…not create pools" no "$(can -n kube-system create ippools.whereabouts.cni.cncf.io)"
check_eq "…not delete pools" no "$(can -n kube-system delete ippools.whereabouts.cni.cncf.io)"

for p in rec-a rec-b rec-c; do new_netns wcni-$p; make_pod $p rec-net; done
defer "kc delete pod rec-a rec-b rec-c rec-d rec-e --wait=false --ignore-not-found"
for p in rec-a rec-b rec-c; do check "ADD $p" bash -c "$(declare -f cni); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni add wcni-$p $p >/dev/null"; done
a=$(net1_v4 wcni-rec-a)
# A lost node: the pod object is deleted and no DEL ever comes.
kc delete pod rec-a --grace-period=0 --force >/dev/null 2>&1
# Reservations no pool records: one whose pod is gone and one of a completed pod (both leaks),
# and one of a pod that exists and is not running yet (kept, however long: a pass reads the
# pools before the reservations, so an ADD writing both in between looks the same).
make_pod rec-e rec-net
kc patch pod rec-e --subresource=status --type=merge -p '{"status":{"phase":"Succeeded"}}' >/dev/null
for x in "172.16.60.200 default/ghost" "172.16.60.201 default/rec-e" "172.16.60.202 default/rec-b"; do
    read -r name podref <<<"$x"
    kc apply -f - >/dev/null <<EOF
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: OverlappingRangeIPReservation
metadata: {name: $name, namespace: kube-system}
spec: {podref: $podref, ifname: net1}
EOF
done

# A pod being created: its ADD holds 4 s between choosing and recording (whereabouts'
# sleep_for_race) while the reconciler passes (grace 6 s); it records and reserves meanwhile.
new_netns wcni-rec-d
make_pod rec-d rec-slow
( cni add wcni-rec-d rec-d > "$WORK/add-d.out" 2>&1; echo $? > "$WORK/add-d.rc" ) &
sleep 1
out=$(reconcile --grace 6 --identity e2e-1 2>"$WORK/reconcile.err")
wait
log "reconciler: $out"
check_eq "the slow ADD succeeds" 0 "$(cat "$WORK/add-d.rc")"
check_json "the reconciler freed 1 allocation and 2 reservations" <(echo "$out") \
    '.freed_entries == 1 and .freed_reservations == 2'
d=$(net1_v4 wcni-rec-d)
want=$( { for p in rec-b rec-c rec-d; do echo "$(net1_v4 wcni-$p) default/$p"; done
          echo "172.16.60.202 default/rec-b"; } | sort)
check_eq "ORIPs left: those of the live pods b, c, the new d, and b's unrecorded one" "$want" "$(orips)"
check_eq "the pool keeps b, c, d and not a ($a)" "default/rec-b default/rec-c default/rec-d" \
    "$(pool_allocations 172.16.60.0-24 | jq -r '[.[].podref]|sort|join(" ")')"
check "d's address ($d) is recorded for d" test -n "$d"
ev=$(kc get events -A --field-selector reason=AddressReleased -o json | jq -r '.items[].message')
check_grep "an Event for a's address" "released $a .*default/rec-a.*no longer exists" "$ev"
check_grep "an Event for the ghost reservation" "172.16.60.200 .*default/ghost" "$ev"
check_grep "an Event for the completed pod's reservation" "172.16.60.201 .*default/rec-e.*completed" "$ev"

# One leader: the Lease is held (30 s) by e2e-1.
check "a second reconciler is refused while the Lease is held" bash -c "! $WASMCNI reconcile --kubeconfig $RK --once --identity e2e-2 --grace 1 2>$WORK/second.err"
check_grep "…saying who holds what" 'Lease kube-system/wasmcni-reconciler' "$(cat "$WORK/second.err")"
out=$(reconcile --grace 1 --identity e2e-1 2>/dev/null)
check_json "the leader again: nothing more to free" <(echo "$out") '.freed_entries == 0 and .freed_reservations == 0'

for p in rec-b rec-c rec-d; do cni del wcni-$p $p >/dev/null 2>&1; done
check_eq "DELs of the live pods leave the pool empty" '{}' "$(pool_allocations 172.16.60.0-24)"
