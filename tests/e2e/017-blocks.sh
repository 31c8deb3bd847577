#!/usr/bin/env bash
# tests/e2e/017-blocks.sh — a range kept in per-node blocks (`"block_size"`) on the real API
# server, from two nodes (two wasmcni node configs, nodeName node-1 and node-2):
#   - each node's pods get addresses from a block of its own: one IPPool per block, named
#     <pool>.<block CIDR>, labelled with the range's pool and the node, spec.range the range
#     (kubectl reads it as any IPPool); every address has its ORIP;
#   - CHECK passes; a bad block_size is refused with code 7 naming the key, nothing allocated;
#   - an address requested by the pod (the annotation's "ips") lands in its block, whoever
#     claimed it, and the DEL from another node finds it (prevResult);
#   - the reconciler frees the entry of a pod deleted without DEL, inside its block;
#   - as the IPAM plugin (NODENAME node-3, the reference macvlan exec'ing wasmcni as
#     whereabouts): a block of node-3's own;
#   - DELs leave every block empty and no ORIP.
source "$(dirname "$0")/lib.sh"

make_master eth1
write_wasmcni_conf 1.0.0
mkdir -p "$WORK/node-2/net.d"
sed -e 's#"nodeName":"node-1"#"nodeName":"node-2"#' -e "s#$WORK/delegates#$WORK/node-2/delegates#" \
    "$NETDIR/00-wasmcni.conflist" > "$WORK/node-2/net.d/00-wasmcni.conflist"
nad() { apply_nad "$1" "{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"capabilities\":{\"ips\":true},\"ipam\":$2}]}"; }
nad blk-net '{"type":"whereabouts","range":"172.16.80.0/24","block_size":28}'
nad blk-bad '{"type":"whereabouts","range":"172.16.80.0/24","block_size":20}'
blocks() { kc -n kube-system get ippools.whereabouts.cni.cncf.io -l wasmcni.io/pool=172.16.80.0-24 -o json; }
orips() { orips_matching '172\.16\.80\.'; }
cleanup() {
    delete_orips '172\.16\.80\.'
    kc -n kube-system delete ippools.whereabouts.cni.cncf.io -l wasmcni.io/pool=172.16.80.0-24 >/dev/null
}
cleanup
defer cleanup
net1_v4() { ip -n "$1" -j addr show net1 2>/dev/null | jq -r '.[0].addr_info[]|select(.family=="inet")|.local'; }
# cni_on NODE VERB NETNS POD: as cni, from that node's config.
cni_on() {
    local dir=$NETDIR; [[ $1 == node-2 ]] && dir=$WORK/node-2/net.d
    NETDIR=$dir cni "$2" "$3" "$4"
}

pods=(blk-a1 blk-a2 blk-b1)
declare -A NODE=([blk-a1]=node-1 [blk-a2]=node-1 [blk-b1]=node-2)
for p in "${pods[@]}"; do new_netns wcni-$p; make_pod $p blk-net; done
defer "kc delete pod ${pods[*]} blk-r blk-bad --wait=false --ignore-not-found"
for p in "${pods[@]}"; do
    check "ADD $p on ${NODE[$p]}" bash -c "$(declare -f cni cni_on); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni_on ${NODE[$p]} add wcni-$p $p >/dev/null"
done
a1=$(net1_v4 wcni-blk-a1) a2=$(net1_v4 wcni-blk-a2) b1=$(net1_v4 wcni-blk-b1)
log "addresses: a1 $a1, a2 $a2, b1 $b1"
check_eq "three distinct addresses" 3 "$(printf '%s\n' "$a1" "$a2" "$b1" | grep . | sort -u | wc -l)"
bl=$(blocks)
block_of() { jq -r --arg pod "default/$1" '.items[]|select([.spec.allocations[]?.podref]|index($pod))|.metadata.name' <<<"$bl"; }
node_of() { jq -r --arg n "$1" '.items[]|select(.metadata.name==$n)|.metadata.labels["wasmcni.io/node"]' <<<"$bl"; }
check_eq "two blocks: one per node" 2 "$(jq '.items|length' <<<"$bl")"
check_eq "node-1's two pods share a block" "$(block_of blk-a1)" "$(block_of blk-a2)"
check_eq "…labelled node-1" node-1 "$(node_of "$(block_of blk-a1)")"
check_eq "node-2's pod is in a block labelled node-2" node-2 "$(node_of "$(block_of blk-b1)")"
check_grep "a block is named <pool>.<block CIDR>" '^172\.16\.80\.0-24\.172\.16\.80\.[0-9]+-28$' "$(block_of blk-b1)"
check_eq "…and its spec.range is the range (offsets as whereabouts counts them)" "172.16.80.0/24" \
    "$(jq -r '[.items[].spec.range]|unique|join(",")' <<<"$bl")"
base=$(block_of blk-b1); base=${base#172.16.80.0-24.172.16.80.}; base=${base%-28}
b1_last=${b1##*.}
check "b1 ($b1) lies inside its block (.$base/28)" test "$b1_last" -ge "$base" -a "$b1_last" -lt $((base + 16))
check_eq "one ORIP per address, for its pod" \
    "$(printf '%s default/%s\n' "$a1" blk-a1 "$a2" blk-a2 "$b1" blk-b1 | sort)" "$(orips)"
check "CHECK of blk-a1" bash -c "$(declare -f cni); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni check wcni-blk-a1 blk-a1 >/dev/null"

# A bad block size: code 7 naming the key, nothing allocated.
new_netns wcni-blk-bad
make_pod blk-bad blk-bad
out=$(cni add wcni-blk-bad blk-bad 2>&1)
check_grep "block_size 20 in a /24: refused naming ipam.block_size" 'ipam.block_size 20' "$out"
check_eq "…and nothing allocated" 3 "$(orips | wc -l)"

# A requested address (the annotation's "ips") in node-2's block, from node-1.
want=172.16.80.$((base + 9))
new_netns wcni-blk-r
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: blk-r
  namespace: default
  annotations: {k8s.v1.cni.cncf.io/networks: '[{"name":"blk-net","ips":["$want/24"]}]'}
spec: {nodeName: node-1, containers: [{name: c, image: registry.invalid/none}]}
EOF
check "ADD blk-r asking for $want (in node-2's block)" bash -c "$(declare -f cni); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni add wcni-blk-r blk-r >/dev/null"
check_eq "blk-r has $want" "$want" "$(net1_v4 wcni-blk-r)"
bl=$(blocks)
check_eq "…recorded in that block" "$(block_of blk-b1)" "$(block_of blk-r)"
check "DEL blk-r (node-1, the block node-2's)" bash -c "$(declare -f cni); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni del wcni-blk-r blk-r >/dev/null"
check_empty "…frees the entry and its ORIP" "$(blocks | jq -r '.items[].spec.allocations[]?|select(.podref=="default/blk-r")|.podref')$(orips | grep blk-r)"

# The reconciler: blk-a2's pod is deleted without DEL (a lost node).
kc delete pod blk-a2 --grace-period=0 --force >/dev/null 2>&1
out=$("$WASMCNI" reconcile --kubeconfig "$STATE_DIR/reconciler.kubeconfig" --once --grace 1 --identity e2e-017 2>"$WORK/reconcile.err")
log "reconciler: $out"
check_json "the reconciler frees a2's entry" <(echo "$out") '.freed_entries == 1'
check_empty "…from its block, with its ORIP" "$(blocks | jq -r '.items[].spec.allocations[]?|select(.podref=="default/blk-a2")|.podref')$(orips | grep blk-a2)"
kc -n kube-system delete lease wasmcni-reconciler --ignore-not-found >/dev/null

# As the IPAM plugin on node-3: the reference macvlan execs wasmcni as "whereabouts".
mkdir -p "$WORK/ipam/bin" "$WORK/ipam/net.d"
ln -s "$TOOLS/cni/macvlan" "$WORK/ipam/bin/macvlan"
ln -s "$WASMCNI" "$WORK/ipam/bin/whereabouts"
echo "{\"kubernetes\":{\"kubeconfig\":\"$STATE_DIR/wasmcni.kubeconfig\"}}" > "$WORK/ipam/whereabouts.conf"
cat > "$WORK/ipam/net.d/blk.conflist" <<JSON
{"cniVersion":"1.0.0","name":"blk-ipam","plugins":[{"type":"macvlan","master":"eth1","mode":"bridge",
 "ipam":{"type":"whereabouts","range":"172.16.80.0/24","block_size":28,"configuration_path":"$WORK/ipam/whereabouts.conf"}}]}
JSON
new_netns wcni-blk-c1
ipam_cni() {
    NODENAME=node-3 NETCONFPATH=$WORK/ipam/net.d CNI_PATH=$WORK/ipam/bin CNI_IFNAME=net1 \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=blk-c1;K8S_POD_INFRA_CONTAINER_ID=infra-blk-c1" \
        "$TOOLS/bin/cnitool" "$1" blk-ipam /var/run/netns/wcni-blk-c1
}
check "IPAM-plugin ADD on node-3" bash -c "$(declare -f ipam_cni); $(declare -p WORK TOOLS); ipam_cni add >/dev/null"
bl=$(blocks)
check_eq "…in a block of node-3's own" node-3 "$(node_of "$(block_of blk-c1)")"
check "IPAM-plugin DEL on node-3" bash -c "$(declare -f ipam_cni); $(declare -p WORK TOOLS); ipam_cni del >/dev/null"

for p in blk-a1 blk-b1; do cni_on "${NODE[$p]}" del wcni-$p $p >/dev/null 2>&1; done
check_empty "after the DELs every block is empty" "$(blocks | jq -r '.items[].spec.allocations // {}|keys[]')"
check_empty "…and no ORIP is left" "$(orips)"
