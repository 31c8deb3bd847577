#!/usr/bin/env bash
# tests/e2e/012-check-status.sh — CHECK compares what ADD made with the pod as it is now and
# names the first difference (code 108): a missing address, route, link, a link of another
# mode, an IPPool entry that is gone; a prevResult that disagrees with ADD's. STATUS answers 0
# when ADD could succeed, 50 when the IPAM store (the API server) is unreachable or the cluster
# network is unusable, 51 when a master that attached pods hang off is gone. cnitool (libcni)
# drives CHECK and STATUS; the exact codes are read by exec'ing the binary as libcni does.
source "$(dirname "$0")/lib.sh"

make_master eth1
new_netns wcni-chk
write_wasmcni_conf 1.1.0
NADCONF='{"cniVersion":"1.1.0","plugins":[{"type":"macvlan","master":"eth1","mode":"bridge","ipam":{"type":"whereabouts","range":"172.16.14.0/24","gateway":"172.16.14.254","routes":[{"dst":"10.77.0.0/16"}]}}]}'
apply_nad chk-net "$NADCONF"
make_pod chk-pod chk-net
defer "kc delete pod chk-pod --wait=false"
POOL=172.16.14.0-24
check "ADD" cni add wcni-chk chk-pod
check "CHECK of an untouched pod passes (cnitool)" cni check wcni-chk chk-pod

# check_drift NAME MESSAGE_PART: cnitool CHECK fails and libcni reports our message.
check_drift() {
    local out; out=$(cni check wcni-chk chk-pod 2>&1 >/dev/null); local rc=$?
    if [[ $rc -ne 0 && $out == *"$2"* ]]; then pass "$1"; else fail "$1" "want a failure mentioning [$2], got exit $rc: $out"; fi
}

# The same CHECK exec'd directly, to read the code: the stdin libcni builds (name, cniVersion,
# prevResult = what ADD returned).
CID=$(ls "$WORK/delegates" | head -n1)
PREV=$(jq -c '.cluster_result' "$WORK/delegates/$CID")
CONF=$(jq -c --argjson p "$PREV" '.plugins[0] + {name: .name, cniVersion: .cniVersion, prevResult: ($p + {cniVersion: .cniVersion})}' "$NETDIR/00-wasmcni.conflist")
direct_check() {  # direct_check [STDIN]: sets OUT, RC
    OUT=$(printf '%s' "${1:-$CONF}" | env -i PATH="$PATH" CNI_PATH="$CNI_BIN" CNI_COMMAND=CHECK CNI_CONTAINERID="$CID" \
        CNI_IFNAME=eth0 CNI_NETNS=/var/run/netns/wcni-chk \
        "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=chk-pod" "$WASMCNI" 2>>"$WORK/stderr"); RC=$?
}
code_is() {  # code_is NAME CODE
    local got; got=$(jq -r '.code' <<<"$OUT" 2>/dev/null)
    if [[ $RC -ne 0 && $got == "$2" ]]; then pass "$1: code $2"; else fail "$1" "want code $2, got exit $RC: $OUT"; fi
}
direct_check
check_eq "direct CHECK of the untouched pod exits 0" "0" "$RC"

# 1. An address removed behind our back.
ip -n wcni-chk addr del 172.16.14.1/24 dev net1
check_drift "a removed address is reported" "address 172.16.14.1/24 from the ADD result is missing"
direct_check; code_is "address drift" 108
ip -n wcni-chk addr add 172.16.14.1/24 dev net1
ip -n wcni-chk route replace 10.77.0.0/16 via 172.16.14.254 dev net1
check "CHECK passes again once the address and route are back" cni check wcni-chk chk-pod

# 2. A route removed.
ip -n wcni-chk route del 10.77.0.0/16
check_drift "a removed route is reported" "route 10.77.0.0/16 via 172.16.14.254 is missing"
ip -n wcni-chk route add 10.77.0.0/16 via 172.16.14.254 dev net1

# 3. The IPPool entry released by someone else: the address could be handed out twice.
SAVED=$(kc -n kube-system get ippools.whereabouts.cni.cncf.io $POOL -o json)
kc -n kube-system patch ippools.whereabouts.cni.cncf.io $POOL --type=json -p '[{"op":"remove","path":"/spec/allocations/1"}]' >/dev/null
check_drift "an IPPool entry that is gone is reported" "IPPool no longer records 172.16.14.1"
kc -n kube-system patch ippools.whereabouts.cni.cncf.io $POOL --type=merge \
    -p "{\"spec\":{\"allocations\":$(jq -c '.spec.allocations' <<<"$SAVED")}}" >/dev/null
check "CHECK passes with the entry restored" cni check wcni-chk chk-pod

# 4. A prevResult that disagrees with what ADD returned.
BAD=$(jq -c '.prevResult.ips[0].address = "10.244.1.250/24"' <<<"$CONF")
direct_check "$BAD"; code_is "a prevResult with another address than ADD returned" 108
check "…and says which" grep -q "prevResult has addresses \[10.244.1.250/24\]" <<<"$OUT"
direct_check "$(jq -c 'del(.prevResult)' <<<"$CONF")"; code_is "CHECK without prevResult" 7
direct_check "$(jq -c '.cniVersion = "0.3.1" | .prevResult.cniVersion = "0.3.1"' <<<"$CONF")"
code_is "CHECK at cniVersion 0.3.1 (libcni's skel: config version does not allow CHECK)" 1
direct_check "$(jq -c '.prevResult.cniVersion = "0.4.0"' <<<"$CONF")"
code_is "a prevResult of another version than the config" 1

# 5. The link replaced by one of another mode (same name, same address).
ip -n wcni-chk link del net1
check_drift "a missing link is reported" "interface net1 is missing"
ip link add link eth1 name wcnichk0 type macvlan mode private && ip link set wcnichk0 netns wcni-chk &&
    ip -n wcni-chk link set wcnichk0 name net1 && ip -n wcni-chk addr add 172.16.14.1/24 dev net1 &&
    ip -n wcni-chk link set net1 up && ip -n wcni-chk route add 10.77.0.0/16 via 172.16.14.254 dev net1
check_drift "a link of another mode is reported" "is macvlan mode private, the config says macvlan mode bridge"

# STATUS.
status_direct() {  # status_direct [CONF]: sets OUT, RC
    OUT=$(printf '%s' "${1:-$STATUS_CONF}" | env -i PATH="$PATH" CNI_PATH="$CNI_BIN" CNI_COMMAND=STATUS "$WASMCNI" 2>>"$WORK/stderr"); RC=$?
}
STATUS_CONF=$(jq -c '.plugins[0] + {name: .name, cniVersion: .cniVersion}' "$NETDIR/00-wasmcni.conflist")
check "STATUS with everything in place (cnitool)" env NETCONFPATH=$NETDIR CNI_PATH=$CNI_BIN "$TOOLS/bin/cnitool" status wasmcni /var/run/netns/wcni-chk
sed "s#server: https://[^ ]*#server: https://127.0.0.1:1#" "$STATE_DIR/wasmcni.kubeconfig" > "$WORK/dead.kubeconfig"
status_direct "$(jq -c --arg k "$WORK/dead.kubeconfig" '.kubeconfig = $k' <<<"$STATUS_CONF")"
code_is "STATUS with the API server unreachable" 50
check "…naming the IPAM store" grep -q "IPAM store unreachable" <<<"$OUT"
status_direct "$(jq -c --arg c "$WORK/none.conflist" '.clusterNetwork = $c' <<<"$STATUS_CONF")"
code_is "STATUS without a cluster network config" 50
status_direct "$(jq -c '.cniVersion = "1.0.0"' <<<"$STATUS_CONF")"
code_is "STATUS at cniVersion 1.0.0 (config version does not allow STATUS)" 1
# The cluster network's own plugins, from 1.1.0, as Multus asks them (libcni's
# GetStatusNetworkList): the reference bridge (which asks its host-local) and a gate that is not
# ready while $WORK/gate-closed exists; below 1.1.0 none is asked.
cat > "$CNI_BIN/status-gate" <<SH
#!/usr/bin/env bash
cat >/dev/null
echo "\$CNI_COMMAND cid=[\$CNI_CONTAINERID] netns=[\$CNI_NETNS]" >> "$WORK/gate.calls"
if [[ \$CNI_COMMAND == STATUS && -e "$WORK/gate-closed" ]]; then
    echo '{"cniVersion":"1.1.0","code":50,"msg":"gate closed","details":"the gate says so"}'; exit 1
fi
exit 0
SH
chmod +x "$CNI_BIN/status-gate"
for v in 1.1.0 1.0.0; do
    jq --arg v "$v" '.cniVersion=$v | .plugins += [{"type":"status-gate"}]' "$WORK/cluster.conflist" > "$WORK/cluster-$v.conflist"
done
GATED=$(jq -c --arg c "$WORK/cluster-1.1.0.conflist" '.clusterNetwork = $c' <<<"$STATUS_CONF")
status_direct "$GATED"
check_eq "STATUS 0 with the 1.1.0 cluster network's plugins ready (bridge + host-local, the gate)" 0 "$RC"
check_eq "…the gate was asked STATUS, for no container" "STATUS cid=[] netns=[]" "$(tail -1 "$WORK/gate.calls" 2>/dev/null)"
touch "$WORK/gate-closed"
status_direct "$GATED"
code_is "STATUS: a cluster network plugin that is not ready answers with its own code" 50
check "…and its message" grep -q "gate closed" <<<"$OUT"
asked=$(wc -l < "$WORK/gate.calls")
status_direct "$(jq -c --arg c "$WORK/cluster-1.0.0.conflist" '.clusterNetwork = $c' <<<"$STATUS_CONF")"
check_eq "STATUS: a 1.0.0 cluster network's plugins are not asked (0, the gate not called)" "0 $asked" "$RC $(wc -l < "$WORK/gate.calls")"
rm -f "$WORK/gate-closed"
ip link del eth1
status_direct
code_is "STATUS with the master of an attached pod gone" 51
check "…naming the master and the pod" grep -q 'master interface eth1 is gone.*default/chk-pod (net1 via default/chk-net)' <<<"$OUT"
make_master eth1
check "DEL after all that" cni del wcni-chk chk-pod
check_eq "the IPPool is empty" '{}' "$(pool_allocations $POOL)"
status_direct; check_eq "STATUS is 0 again" "0" "$RC"
