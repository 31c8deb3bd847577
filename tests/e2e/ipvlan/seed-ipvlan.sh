#!/usr/bin/env bash
# tests/e2e/ipvlan/seed-ipvlan.sh — the seed's pod with the seed's own NAD (ipvlan l2 on eth1,
# whereabouts 172.16.1.0/24), end to end through cnitool. Needs a kernel with ipvlan: run by
# 003-seed-ipvlan.sh natively when the kernel has it, else inside the kernel VM (tests/vm/).
source "$(dirname "$0")/../lib.sh"

make_master eth1
new_netns wcni-ipv-a
new_netns wcni-ipv-b
# Under TCG a guest call can take far longer than on hardware: a generous deadline.
write_wasmcni_conf 0.4.0 '"guestTimeoutMs":5000'
apply_seed_nad seed-ipvlan ipvlan eth1
make_pod ipv-a "default/seed-ipvlan"
make_pod ipv-b "default/seed-ipvlan"
defer "kc delete pod ipv-a ipv-b --wait=false"
POOL=172.16.1.0-24
before=$(pool_allocations $POOL)

out=$(WASMCNI_LOG=info cni add wcni-ipv-a ipv-a); rc=$?
check_eq "ADD pod a exits 0" 0 "$rc"
echo "$out" > "$WORK/result-a.json"
check_json "ADD result is a 0.4.0 result with eth0 and versioned ips" "$WORK/result-a.json" \
    '.cniVersion=="0.4.0" and (.interfaces|map(.name)|index("eth0")!=null) and .ips[0].version=="4"'
check "the delegation guest chose the network (log)" \
    grep -q 'delegation guest multus-default (sha256 [0-9a-f]\{64\}) chose 1 extra network(s) for default/ipv-a' "$WORK/wasmcni.log"
check "the ipam guest proposed the address (log)" \
    grep -q 'ipam guest lowest-free (sha256 [0-9a-f]\{64\}) proposed 172.16.1.1/24 for default/ipv-a' "$WORK/wasmcni.log"

kind=$(ip -n wcni-ipv-a -d -j link show net1 | jq -r '.[0].linkinfo.info_kind + " " + .[0].linkinfo.info_data.mode')
check_eq "net1 is an ipvlan in l2 mode" "ipvlan l2" "$kind"
check_eq "net1 has the lowest free address" "172.16.1.1/24" \
    "$(ip -n wcni-ipv-a -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|"\(.local)/\(.prefixlen)"')"
master_mac=$(ip -j link show eth1 | jq -r '.[0].address')
check_eq "net1 shares its master's MAC (ipvlan)" "$master_mac" "$(ip -n wcni-ipv-a -j link show net1 | jq -r '.[0].address')"
check_eq "IPPool records offset 1 for default/ipv-a net1" '"default/ipv-a net1"' \
    "$(kc -n kube-system get ippools.whereabouts.cni.cncf.io $POOL -o json | jq -c '.spec.allocations["1"] | "\(.podref) \(.ifname)"')"
kc get pod ipv-a -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}' > "$WORK/status-a.json"
check_json "network-status lists eth0 (default) and net1 with its address" "$WORK/status-a.json" \
    'length==2 and .[0].interface=="eth0" and .[0].default==true and .[1].name=="default/seed-ipvlan" and .[1].interface=="net1" and .[1].ips==["172.16.1.1"]'

out=$(cni add wcni-ipv-b ipv-b); rc=$?
check_eq "ADD pod b exits 0" 0 "$rc"
check_eq "pod b gets the next address" "172.16.1.2" \
    "$(ip -n wcni-ipv-b -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|.local')"
check "pod a reaches pod b over ipvlan l2" ip netns exec wcni-ipv-a ping -c 2 -W 3 172.16.1.2
check "CHECK pod a succeeds" cni check wcni-ipv-a ipv-a

for p in a b; do
    check "DEL pod $p exits 0" cni del wcni-ipv-$p ipv-$p
    check_eq "DEL pod $p removed net1 and eth0" "lo" "$(ip -n wcni-ipv-$p -j link show | jq -r 'map(.ifname)|join(",")')"
done
check_eq "the IPPool is back as before" "$before" "$(pool_allocations $POOL)"
check "a second DEL succeeds" cni del wcni-ipv-a ipv-a
check_empty "the delegate cache is empty" "$(ls -A "$WORK/delegates")"
