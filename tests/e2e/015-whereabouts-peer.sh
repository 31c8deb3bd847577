#!/usr/bin/env bash
# tests/e2e/015-whereabouts-peer.sh — wasmcni and the real whereabouts v0.9.2 (tests/tools/peers)
# on the same pools at the same time, as in a cluster where some nodes still run whereabouts:
#   - wasmcni as an IPAM plugin: the reference macvlan execs it as "whereabouts" (the binary
#     swapped, the NAD unchanged), with whereabouts' flat file giving the kubeconfig;
#   - 24 concurrent ADDs, half by each tool, over two overlapping ranges (a /23 and a /24): no
#     address twice among those that succeeded, one reservation (ORIP) per address;
#   - each tool's DEL frees the other's allocation and its ORIP (a node that changed tools);
#   - a pod whereabouts attached, back with a new sandbox under wasmcni, keeps its address;
#   - refusals: no kubeconfig anywhere, ipam.policy in this mode (code 7, naming the key).
source "$(dirname "$0")/lib.sh"

PEERS=$REPO/tests/.peers
[[ -x $PEERS/bin/whereabouts ]] || { fail "whereabouts v0.9.2 is built" "$PEERS/bin/whereabouts missing (tests/tools/peers/build.sh)"; exit 0; }

make_master eth1
# Two "nodes": their CNI_PATHs differ only in what "whereabouts" is.
for tool in real wasm; do
    mkdir -p "$WORK/$tool/bin" "$WORK/$tool/net.d"
    ln -s "$TOOLS/cni/macvlan" "$WORK/$tool/bin/macvlan"
done
ln -s "$PEERS/bin/whereabouts" "$WORK/real/bin/whereabouts"
ln -s "$WASMCNI" "$WORK/wasm/bin/whereabouts"
# Each node's flat file names the identity it runs with: whereabouts' own (here the admin: it
# also takes a cluster-wide Lease), wasmcni's least-privilege one (deploy/rbac.yaml).
echo "{\"kubernetes\":{\"kubeconfig\":\"$KUBECONFIG\"},\"log_level\":\"error\"}" > "$WORK/real/whereabouts.conf"
echo "{\"kubernetes\":{\"kubeconfig\":\"$STATE_DIR/wasmcni.kubeconfig\"}}" > "$WORK/wasm/whereabouts.conf"
# conf TOOL NAME RANGE: the network as both nodes have it, but for the flat file's path (the
# default path, /etc/cni/net.d/whereabouts.d/, is the machine's: never written by tests).
conf() {
    cat > "$WORK/$1/net.d/$2.conflist" <<JSON
{"cniVersion":"1.0.0","name":"$2","plugins":[{"type":"macvlan","master":"eth1","mode":"bridge",
 "ipam":{"type":"whereabouts","range":"$3","configuration_path":"$WORK/$1/whereabouts.conf"}}]}
JSON
}
for tool in real wasm; do conf $tool peer-wide 172.16.50.0/23; conf $tool peer-narrow 172.16.50.0/24; done
# peer VERB TOOL NET NETNS POD: cnitool as a runtime (or Multus) drives the NAD's chain.
peer() {
    NETCONFPATH=$WORK/$2/net.d CNI_PATH=$WORK/$2/bin CNI_IFNAME=net1 \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$5;K8S_POD_INFRA_CONTAINER_ID=infra-$5" \
        "$TOOLS/bin/cnitool" "$1" "$3" "/var/run/netns/$4"
}
orips() { orips_matching '172\.16\.5[01]\.'; }
cleanup() {
    delete_orips '172\.16\.5[01]\.'
    kc -n kube-system delete ippools.whereabouts.cni.cncf.io 172.16.50.0-23 172.16.50.0-24 --ignore-not-found >/dev/null
}
cleanup
defer cleanup
net1_v4() { ip -n "$1" -j addr show net1 2>/dev/null | jq -r '.[0].addr_info[]|select(.family=="inet")|.local'; }

N=24
tool_of() { (($1 % 2)) && echo real || echo wasm; }
net_of() { (($1 % 4 < 2)) && echo peer-wide || echo peer-narrow; }
for i in $(seq 1 $N); do new_netns wcni-peer-$i; done
for i in $(seq 1 $N); do
    ( peer add "$(tool_of $i)" "$(net_of $i)" wcni-peer-$i peer-$i > "$WORK/add-$i.out" 2>&1; echo $? > "$WORK/add-$i.rc" ) &
done
wait
ok=0; okby=(0 0)
for i in $(seq 1 $N); do
    if [[ $(cat "$WORK/add-$i.rc") == 0 ]]; then ok=$((ok + 1)); [[ $(tool_of $i) == real ]] && okby[0]=$((okby[0] + 1)) || okby[1]=$((okby[1] + 1)); fi
done
log "concurrent ADDs: $ok of $N succeeded (whereabouts ${okby[0]}, wasmcni ${okby[1]})"
check_eq "every wasmcni ADD beside whereabouts succeeds" "$((N / 2))" "${okby[1]}"
# Whereabouts may lose the race it opens itself (it checks the ORIP, writes the pool, then
# creates the ORIP): such an ADD fails, it never gives an address twice. Most succeed.
check "whereabouts' ADDs beside wasmcni mostly succeed (${okby[0]} of $((N / 2)))" test "${okby[0]}" -ge $((N / 2 - 2))
addrs=$(for i in $(seq 1 $N); do [[ $(cat "$WORK/add-$i.rc") == 0 ]] && net1_v4 wcni-peer-$i; done | sort)
check_eq "no address twice among the $ok attached pods, across both ranges" "$ok" "$(sort -u <<<"$addrs" | grep -c .)"
want=$(for i in $(seq 1 $N); do [[ $(cat "$WORK/add-$i.rc") == 0 ]] && echo "$(net1_v4 wcni-peer-$i) default/peer-$i"; done | sort)
check_eq "one ORIP per address, for its pod, whoever allocated it" "$want" "$(orips)"
recorded=$( { pool_allocations 172.16.50.0-23; pool_allocations 172.16.50.0-24; } | jq -r '.[].podref' | sort)
attached=$(for i in $(seq 1 $N); do [[ $(cat "$WORK/add-$i.rc") == 0 ]] && echo "default/peer-$i"; done | sort)
failed=$(for i in $(seq 1 $N); do [[ $(cat "$WORK/add-$i.rc") == 0 ]] || echo "default/peer-$i"; done | sort)
check_eq "the pools record every attached pod" "$attached" "$(comm -12 <(echo "$recorded") <(echo "$attached"))"
check_empty "…none of them twice" "$(uniq -d <<<"$recorded")"
# Whereabouts writes its pool entry before its ORIP; when the ORIP's create then fails (wasmcni
# claimed that address for another pod first) its ADD fails and leaves the entry. Only failed
# whereabouts ADDs may have such entries.
extra=$(comm -23 <(echo "$recorded") <(echo "$attached"))
check_empty "entries beyond the attached pods are only those of failed whereabouts ADDs" \
    "$(comm -23 <(echo "$extra" | grep .) <(echo "$failed"))"
log "whereabouts ADDs that failed and left an entry: $(grep -c . <<<"$extra")"
i_real=1; i_wasm=4   # both on the wide range
check_json "wasmcni's pool entry has whereabouts' fields (id, podref, ifname)" <(pool_allocations 172.16.50.0-23) \
    "[.[]|select(.podref==\"default/peer-$i_wasm\")] | length == 1 and (.[0]|(.id|startswith(\"cnitool-\")) and .ifname == \"net1\")"

# A node that changed tools: each tool DELs what the other ADDed.
for i in $(seq 1 $N); do
    [[ $(cat "$WORK/add-$i.rc") == 0 ]] || continue
    other=$([[ $(tool_of $i) == real ]] && echo wasm || echo real)
    ( peer del "$other" "$(net_of $i)" wcni-peer-$i peer-$i > /dev/null 2>&1; echo $? > "$WORK/del-$i.rc" ) &
done
wait
bad=0; for i in $(seq 1 $N); do [[ -f $WORK/del-$i.rc && $(cat "$WORK/del-$i.rc") != 0 ]] && bad=$((bad + 1)); done
check_eq "every cross-tool DEL succeeds" 0 "$bad"
# The runtime's DEL of each failed ADD, now that no attached pod is left: whereabouts' DEL
# deletes the ORIP of the address it frees by name, whoever holds it.
for i in $(seq 1 $N); do
    [[ $(cat "$WORK/add-$i.rc") == 0 ]] || peer del "$(tool_of $i)" "$(net_of $i)" wcni-peer-$i peer-$i >/dev/null 2>&1
done
check_eq "both pools are empty" '{}{}' "$(pool_allocations 172.16.50.0-23)$(pool_allocations 172.16.50.0-24)"
check_empty "no ORIP is left" "$(orips)"
check "wasmcni's DEL again: idempotent" peer del wasm peer-wide wcni-peer-$i_real peer-$i_real

# A pod whereabouts attached comes back under wasmcni with a new sandbox: same address.
new_netns wcni-peer-sts-a
new_netns wcni-peer-sts-b
check "whereabouts ADD of web-0" bash -c "$(declare -f peer); $(declare -p WORK TOOLS); peer add real peer-narrow wcni-peer-sts-a web-0 >/dev/null"
first=$(net1_v4 wcni-peer-sts-a)
check "wasmcni ADD of web-0 in a new sandbox" bash -c "$(declare -f peer); $(declare -p WORK TOOLS); peer add wasm peer-narrow wcni-peer-sts-b web-0 >/dev/null"
check_eq "web-0 keeps the address whereabouts gave it ($first)" "$first" "$(net1_v4 wcni-peer-sts-b)"
check_eq "…recorded once, under the new sandbox" 1 "$(pool_allocations 172.16.50.0-24 | jq '[.[]|select(.podref=="default/web-0")]|length')"
peer del wasm peer-narrow wcni-peer-sts-b web-0 >/dev/null 2>&1
check_eq "its DEL frees the entry and the ORIP" '{}' "$(pool_allocations 172.16.50.0-24)$(orips)"

# Refusals, before anything is allocated: wasmcni exec'd as the IPAM plugin directly (macvlan
# would wrap its code into its own message).
new_netns wcni-peer-bad
ipam_add() { # IPAM_JSON: wasmcni's answer as the IPAM plugin of a macvlan network
    CNI_COMMAND=ADD CNI_CONTAINERID=bad-0 CNI_NETNS=/var/run/netns/wcni-peer-bad CNI_IFNAME=net1 \
    CNI_PATH=$WORK/wasm/bin CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=bad-0" "$WASMCNI" \
        <<<"{\"cniVersion\":\"1.0.0\",\"name\":\"peer-bad\",\"type\":\"macvlan\",\"master\":\"eth1\",\"ipam\":$1}"
}
echo '{}' > "$WORK/wasm/empty.conf"
out=$(ipam_add "{\"type\":\"whereabouts\",\"range\":\"172.16.50.0/24\",\"configuration_path\":\"$WORK/wasm/empty.conf\"}")
check_grep "no kubeconfig in the NAD or the flat file: code 7" '"code": ?7' "$out"
check_grep "…naming both places" 'ipam.kubernetes.kubeconfig.*empty.conf' "$out"
out=$(ipam_add "{\"type\":\"whereabouts\",\"range\":\"172.16.50.0/24\",\"configuration_path\":\"$WORK/wasm/whereabouts.conf\",\"policy\":{\"guest\":\"lowest-free\"}}")
check_grep "ipam.policy as an IPAM plugin: code 7 naming the key" '"code": ?7.*ipam.policy' "$out"
out=$(ipam_add "{\"type\":\"whereabouts\",\"range\":\"172.16.50.0/24\",\"configuration_path\":\"$WORK/wasm/whereabouts.conf\",\"node_slice_size\":\"/28\"}")
check_grep "a refused whereabouts key (node_slice_size): code 7 naming it" '"code": ?7.*node_slice_size' "$out"
check_empty "…and nothing was allocated" "$(pool_allocations 172.16.50.0-24 | jq -r '.[]|select(.podref=="default/bad-0")|.podref')"
out=$(ipam_add "{\"type\":\"whereabouts\",\"range\":\"172.16.50.0/24\",\"configuration_path\":\"$WORK/wasm/whereabouts.conf\"}")
check_grep "as the IPAM plugin, ADD prints the IPAM result (172.16.50.x)" '"address": ?"172\.16\.50\.[0-9]+/24"' "$out"
CNI_COMMAND=DEL CNI_CONTAINERID=bad-0 CNI_NETNS=/var/run/netns/wcni-peer-bad CNI_IFNAME=net1 CNI_PATH=$WORK/wasm/bin \
    CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=bad-0" "$WASMCNI" \
    <<<"{\"cniVersion\":\"1.0.0\",\"name\":\"peer-bad\",\"type\":\"macvlan\",\"ipam\":{\"type\":\"whereabouts\",\"range\":\"172.16.50.0/24\",\"configuration_path\":\"$WORK/wasm/whereabouts.conf\"}}" >/dev/null
check_eq "…and DEL frees it" '{}' "$(pool_allocations 172.16.50.0-24)$(orips)"
