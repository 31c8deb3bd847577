#!/usr/bin/env bash
# tests/e2e/001-seed-macvlan.sh — the seed's pod end to end on this machine's kernel, which has
# no ipvlan: the seed's NAD with a macvlan link (the ipvlan original runs in the kernel VM,
# 003-seed-ipvlan-vm.sh). Two pods attach through cnitool: eth0 from the exec'd bridge plugin,
# net1 a macvlan on eth1 with a whereabouts address chosen by the lowest-free guest; they ping
# each other over net1; DEL (twice) leaves the IPPool as it was.
source "$(dirname "$0")/lib.sh"

make_master eth1
new_netns wcni-seed-a
new_netns wcni-seed-b
write_wasmcni_conf 1.0.0
apply_seed_nad seed-macvlan macvlan eth1
make_pod seed-a "default/seed-macvlan"
make_pod seed-b "seed-macvlan"        # unqualified: the pod's namespace
defer "kc delete pod seed-a seed-b --wait=false"
POOL=172.16.1.0-24
before=$(pool_allocations $POOL)

out=$(cni add wcni-seed-a seed-a); rc=$?
check_eq "ADD pod a exits 0" 0 "$rc"
echo "$out" > "$WORK/result-a.json"
check_json "ADD result is cniVersion 1.0.0 with eth0 from the cluster network" "$WORK/result-a.json" \
    '.cniVersion=="1.0.0" and (.interfaces|map(.name)|index("eth0")!=null) and (.ips[0].address|startswith("10.244.1."))'
# What the guests decided, read from what they produced (not from log prose): the plan written
# to the delegate cache, and the compiled guests in the root-only cache, named by their sha256.
record=$(ls "$WORK/delegates")
check_json "the delegation guest's plan: default/seed-macvlan as net1, for default/seed-a" "$WORK/delegates/$record" \
    '.podref=="default/seed-a" and .ifname=="eth0" and (.attachments|map({network, ifname}))==[{"network":"default/seed-macvlan","ifname":"net1"}]'
sha() { "$WASMCNI" guest list | awk -v n="$1" '$1==n {print $2}'; }
want=$(printf '%s\n' "$(sha multus-default)" "$(sha lowest-free)" | sort | tr '\n' ' ')
check_eq "multus-default and lowest-free, and nothing else, were compiled once into the cache" \
    "$want" "$(ls "$WORK/guests" | sed 's/-.*//' | sort | tr '\n' ' ')"
check_eq "the compiled-guest cache is root-only" 700 "$(stat -c %a "$WORK/guests")"

kind=$(ip -n wcni-seed-a -d -j link show net1 | jq -r '.[0].linkinfo.info_kind + " " + .[0].linkinfo.info_data.mode')
check_eq "net1 is a macvlan in bridge mode" "macvlan bridge" "$kind"
check_eq "net1 has the lowest free address" "172.16.1.1/24" \
    "$(ip -n wcni-seed-a -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|"\(.local)/\(.prefixlen)"')"
check "eth0 is the bridge plugin's veth with a 10.244.1.x address" \
    bash -c "ip -n wcni-seed-a -j addr show eth0 | jq -e '.[0].addr_info[]|select(.family==\"inet\")|.local|startswith(\"10.244.1.\")'"

alloc=$(kc -n kube-system get ippools.whereabouts.cni.cncf.io $POOL -o json | jq -c '.spec.range as $r | .spec.allocations["1"] | {r:$r, podref, ifname, id:(.id|startswith("cnitool-"))}')
check_eq "IPPool records offset 1 for default/seed-a net1 (whereabouts format)" \
    '{"r":"172.16.1.0/24","podref":"default/seed-a","ifname":"net1","id":true}' "$alloc"

status=$(kc get pod seed-a -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}')
echo "$status" > "$WORK/status-a.json"
check_json "network-status is shaped like Multus' (cluster network default, net1 with ip and mac)" "$WORK/status-a.json" \
    'length==2 and .[0].name=="cbr0" and .[0].interface=="eth0" and .[0].default==true and (.[0].ips[0]|startswith("10.244.1."))
           and .[1].name=="default/seed-macvlan" and .[1].interface=="net1" and .[1].ips==["172.16.1.1"]
           and (.[1].mac|test("^([0-9a-f]{2}:){5}[0-9a-f]{2}$")) and (.[1]|has("default")|not) and .[1].dns=={}'
mac=$(ip -n wcni-seed-a -j link show net1 | jq -r '.[0].address')
check_eq "network-status mac is net1's" "$mac" "$(jq -r '.[1].mac' "$WORK/status-a.json")"

out=$(cni add wcni-seed-b seed-b); rc=$?
check_eq "ADD pod b exits 0" 0 "$rc"
check_eq "pod b gets the next address" "172.16.1.2" \
    "$(ip -n wcni-seed-b -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|.local')"
check "pod a reaches pod b over net1 (macvlan bridge on eth1)" ip netns exec wcni-seed-a ping -c 2 -W 2 -I net1 172.16.1.2

check "CHECK pod a succeeds" cni check wcni-seed-a seed-a

for p in a b; do
    check "DEL pod $p exits 0" cni del wcni-seed-$p seed-$p
    check_eq "DEL pod $p removed net1 and eth0" "lo" "$(ip -n wcni-seed-$p -j link show | jq -r 'map(.ifname)|join(",")')"
done
check_eq "the IPPool is back as before" "$before" "$(pool_allocations $POOL | sed 's/^null$/{}/')"
check "a second DEL succeeds" cni del wcni-seed-a seed-a
check_empty "the delegate cache is empty" "$(ls -A "$WORK/delegates")"
check "host-local released the cluster addresses" bash -c "! ls '$WORK/host-local/cbr0' | grep -q '^10\.'"
check_eq "the log file (it names every tenant's pods and addresses) is root-only" 600 "$(stat -c %a "$WORK/wasmcni.log")"
