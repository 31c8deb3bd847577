#!/usr/bin/env bash
# tests/node/001-seed.sh — the seed's guide on a real node: wasmcni installed as the README says,
# the seed's NAD (macvlan standing in for ipvlan, which this kernel lacks; the ipvlan original
# runs in the kernel VM, tests/e2e/003), two Pods with the seed's annotation applied with kubectl.
# The kubelet starts them through containerd, which calls wasmcni through libcni: both Running
# with eth0 from the cluster network and net1 from the IPPool, network-status on the Pod as
# `kubectl describe` shows it, a ping between them over net1; deleting them releases everything.
source "$(dirname "$0")/lib.sh"

install_wasmcni 1.0.0
apply_seed_nad seed-macvlan macvlan eth1
POOL=172.16.1.0-24
before=$(pool_allocations $POOL)
defer "kc delete pod seed-a seed-b --wait=false"
node_pod seed-a "default/seed-macvlan"
node_pod seed-b "default/seed-macvlan"

check "pod seed-a becomes Ready through kubelet and containerd" wait_pod_ready seed-a
check "pod seed-b becomes Ready" wait_pod_ready seed-b
check_eq "containerd called wasmcni's ADD once per pod" 2 "$(cni_calls ADD)"

status=$(kc get pod seed-a -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}')
echo "$status" >"$WORK/status-a.json"
check_json "network-status: cbr0 on eth0 (default), default/seed-macvlan on net1 with an address from the IPPool" "$WORK/status-a.json" \
    'length==2 and .[0].name=="cbr0" and .[0].interface=="eth0" and .[0].default==true and (.[0].ips[0]|startswith("10.244.1."))
       and .[1].name=="default/seed-macvlan" and .[1].interface=="net1" and (.[1].ips[0]|startswith("172.16.1."))'
check_grep "kubectl describe pod shows the network-status annotation" \
    'k8s\.v1\.cni\.cncf\.io/network-status:' "$(kc describe pod seed-a)"

ip_a=$(jq -r '.[1].ips[0]' "$WORK/status-a.json")
ip_b=$(kc get pod seed-b -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}' | jq -r '.[1].ips[0]')
check_eq "net1 in pod seed-a's netns (containerd's) has the address network-status reports" "$ip_a/24" \
    "$(in_pod seed-a ip -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|"\(.local)/\(.prefixlen)"')"
check_eq "net1 is a macvlan in bridge mode on the node's eth1" "macvlan bridge" \
    "$(in_pod seed-a ip -d -j link show net1 | jq -r '.[0].linkinfo.info_kind + " " + .[0].linkinfo.info_data.mode')"
check "pod seed-a reaches pod seed-b over net1" in_pod seed-a ping -c 2 -W 2 -I net1 "$ip_b"
check_eq "the IPPool holds one entry for each pod, by podref (whereabouts' format)" "default/seed-a default/seed-b" \
    "$(pool_allocations $POOL | jq -r '[.[]|.podref]|sort|join(" ")')"
check_eq "the kubelet reports the cluster network's address as the pod IP" \
    "$(jq -r '.[0].ips[0]' "$WORK/status-a.json")" "$(kc get pod seed-a -o jsonpath='{.status.podIP}')"

kc delete pod seed-a seed-b --wait=false >/dev/null
check "pod seed-a is gone after kubectl delete" wait_pod_gone seed-a
check "pod seed-b is gone" wait_pod_gone seed-b
# The kubelet deletes the API object once the sandbox is stopped (CNI DEL done).
check_eq "containerd called wasmcni's DEL for each pod" "yes" "$([[ $(cni_calls DEL) -ge 2 ]] && echo yes || echo "no: $(cni_calls DEL)")"
check_eq "deleting the pods released their addresses: the IPPool is as before" "$before" "$(pool_allocations $POOL)"
check_empty "no reservation left for the pods" "$(orips_matching '172\.16\.1\.')"
check_empty "no macvlan left on the node" "$(ip -d -j link show | jq -r '.[]|select(.linkinfo.info_kind=="macvlan")|.ifname')"
