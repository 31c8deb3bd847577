#!/usr/bin/env bash
# tests/e2e/019-multus-config.sh — a Multus config with only "type" changed works with Multus'
# meanings: the seed's own daemon config (clusterNetwork as a network *name* found in confDir,
# confDir, namespaceIsolation, logLevel, logFile, kubeconfig), Multus' installer form
# (`delegates` inline), clusterNetwork as a NAD in multusNamespace, defaultNetworks by bare name
# and systemNamespaces, a NAD with an empty spec.config read from confDir, the pod's
# v1.multus-cni.io/default-network, readinessindicatorfile, and the keys refused by name.
source "$(dirname "$0")/lib.sh"

make_master eth1
CONF="$WORK/multus.d"          # the seed's confDir
mkdir -p "$CONF"
# The cluster network as the node's CNI left it, found by its name "gke-pod-network".
cat > "$CONF/10-gke.conflist" <<JSON
{"cniVersion":"1.0.0","name":"gke-pod-network","plugins":[
  {"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],
           "dataDir":"$WORK/host-local"}}]}
JSON
# A network that lives only as a conf file (the NAD "side-conf" names it with an empty spec).
cat > "$CONF/20-side.conf" <<JSON
{"cniVersion":"0.3.1","name":"side-conf","type":"macvlan","master":"eth1","mode":"bridge",
 "ipam":{"type":"host-local","ranges":[[{"subnet":"172.31.9.0/24"}]],"dataDir":"$WORK/host-local"}}
JSON

# multus_conf JSON_FIELDS: the node conflist holding one Multus-shaped plugin, "type" wasmcni.
multus_conf() {
    cat > "$NETDIR/00-multus.conflist" <<JSON
{"cniVersion":"1.0.0","name":"multus-cni-network","plugins":[{"type":"wasmcni",$1}]}
JSON
}
# The seed's Multus daemon config, keys and values as it has them, "type" replaced.
SEED="\"name\":\"multus-cni-network\",\"confDir\":\"$CONF\",\"logLevel\":\"verbose\",
  \"logFile\":\"$WORK/multus.log\",\"kubeconfig\":\"$STATE_DIR/wasmcni.kubeconfig\",
  \"clusterNetwork\":\"gke-pod-network\",\"namespaceIsolation\":true"
# Where wasmcni keeps its own state is not in the seed's config: its defaults are used, and
# what this scenario leaves there is checked empty at the end.
STATE=/var/lib/wasmcni/delegates

# mcni VERB NETNS NAMESPACE POD: cnitool on the Multus-shaped conflist, pod NAMESPACE/POD.
mcni() {
    NETCONFPATH=$NETDIR CNI_PATH=$CNI_BIN CNI_IFNAME=eth0 \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=$3;K8S_POD_NAME=$4;K8S_POD_INFRA_CONTAINER_ID=infra-$4;K8S_POD_UID=uid-$4" \
        "$TOOLS/bin/cnitool" "$1" multus-cni-network "/var/run/netns/$2"
}
# pod NAMESPACE NAME ANNOTATIONS_JSON
pod() {
    jq -n --arg ns "$1" --arg name "$2" --argjson a "$3" \
        '{apiVersion: "v1", kind: "Pod", metadata: {name: $name, namespace: $ns, annotations: $a},
          spec: {nodeName: "node-1", containers: [{name: "c", image: "registry.invalid/none"}]}}' |
        kc apply -f - >/dev/null
    defer "kc -n $1 delete pod $2 --wait=false"
}
status_of() { kc -n "$1" get pod "$2" -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}'; }
addr_of() { ip -n "$1" -j addr show "$2" | jq -r '.[0].addr_info[]|select(.family=="inet")|.local'; }
net() {
    jq -n --arg ns "$1" --arg name "$2" --arg config "$3" \
        '{apiVersion: "k8s.cni.cncf.io/v1", kind: "NetworkAttachmentDefinition",
          metadata: {name: $name, namespace: $ns}, spec: {config: $config}}' | kc apply -f - >/dev/null
    defer "kc -n $1 delete network-attachment-definitions.k8s.cni.cncf.io $2"
}

apply_seed_nad seed-macvlan macvlan eth1 172.16.19.0/24
defer "kc -n kube-system delete ippools.whereabouts.cni.cncf.io 172.16.19.0-24"

# 1. The seed's config unchanged, the seed's NAD and pod.
multus_conf "$SEED"
new_netns wcni-mc-a
pod default mc-a '{"k8s.v1.cni.cncf.io/networks":"seed-macvlan"}'
out=$(mcni add wcni-mc-a default mc-a); rc=$?
check_eq "seed config: ADD exits 0" 0 "$rc"
check_grep "seed config: eth0 from gke-pod-network (found by name in confDir)" '^10\.244\.1\.' "$(addr_of wcni-mc-a eth0)"
check_eq "seed config: net1 from the seed's NAD" 172.16.19.1 "$(addr_of wcni-mc-a net1)"
check_eq "seed config: the default route is the cluster network's, on eth0" "10.244.1.1 eth0" \
    "$(ip -n wcni-mc-a -j route show default | jq -r 'map("\(.gateway) \(.dev)")|join(",")')"
status_of default mc-a > "$WORK/status-a.json"
check_json "seed config: network-status names gke-pod-network (default) and default/seed-macvlan" "$WORK/status-a.json" \
    'length==2 and .[0].name=="gke-pod-network" and .[0].default==true and .[1].name=="default/seed-macvlan" and .[1].interface=="net1"'
kc get pod mc-a -o json --show-managed-fields > "$WORK/pod-a.json"
check_json "network-status is written through the pods/status subresource (managedFields)" "$WORK/pod-a.json" \
    '[.metadata.managedFields[]|select(.subresource=="status")|.fieldsV1["f:metadata"]["f:annotations"]|objects|has("f:k8s.v1.cni.cncf.io/network-status")]|any'
check_grep "logLevel verbose: the call's info lines reach logFile" 'CNI ADD container' "$(cat "$WORK/multus.log" 2>/dev/null)"
check_eq "logFile is created root-only" 600 "$(stat -c %a "$WORK/multus.log")"
new_netns wcni-mc-iso
pod default mc-iso '{"k8s.v1.cni.cncf.io/networks":"mc-other/net"}'
out=$(cni_raw ADD wcni-mc-iso default mc-iso "$NETDIR/00-multus.conflist"); rc=$?
check_json "namespaceIsolation: a NAD of another namespace is refused (100)" <(echo "$out") \
    '.code==100 and (.msg|contains("mc-other/net"))'
check_eq "namespaceIsolation: the refused pod is left with lo only" lo \
    "$(ip -n wcni-mc-iso -j link show | jq -r 'map(.ifname)|join(",")')"
events_of() { kc -n "$1" get events --field-selector "involvedObject.name=$2" -o json; }
check_json "a failed ADD is said on the pod: a Warning Event NetworkAttachFailed naming why" <(events_of default mc-iso) \
    '[.items[]|select(.type=="Warning" and .reason=="NetworkAttachFailed" and (.message|contains("mc-other/net")) and .source.component=="wasmcni")]|length==1'
new_netns wcni-mc-nf
pod default mc-nf '{"k8s.v1.cni.cncf.io/networks":"no-such-net"}'
out=$(cni_raw ADD wcni-mc-nf default mc-nf "$NETDIR/00-multus.conflist"); rc=$?
check_json "an unknown NAD is code 103" <(echo "$out") '.code==103'
check_json "and Multus' Warning Event NoNetworkFound on the pod" <(events_of default mc-nf) \
    '[.items[]|select(.type=="Warning" and .reason=="NoNetworkFound" and (.message|contains("no-such-net")))]|length==1'
check "seed config: DEL exits 0" mcni del wcni-mc-a default mc-a
check_eq "seed config: DEL left lo only" lo "$(ip -n wcni-mc-a -j link show | jq -r 'map(.ifname)|join(",")')"

# 2. Multus' installer form: the primary conf inline in "delegates"; globalNamespaces as
#    Multus' comma-separated string opens mc-other.
GKE=$(jq -c . "$CONF/10-gke.conflist")
multus_conf "\"kubeconfig\":\"$STATE_DIR/wasmcni.kubeconfig\",\"delegates\":[$GKE],
  \"namespaceIsolation\":true,\"globalNamespaces\":\"default, mc-other\""
new_netns wcni-mc-b
pod default mc-b '{"k8s.v1.cni.cncf.io/networks":"mc-other/seed-other"}'
kc create namespace mc-other >/dev/null 2>&1; defer "kc delete namespace mc-other --wait=false"
net mc-other seed-other '{"cniVersion":"0.3.1","type":"macvlan","master":"eth1","mode":"bridge","ipam":{"type":"whereabouts","range":"172.16.19.0/24"}}'
out=$(mcni add wcni-mc-b default mc-b); rc=$?
check_eq "delegates form + globalNamespaces string: ADD exits 0" 0 "$rc"
check_grep "delegates form: eth0 from the inline delegate" '^10\.244\.1\.' "$(addr_of wcni-mc-b eth0)"
check_eq "globalNamespaces string: mc-other/seed-other attached as net1" 172.16.19.1 "$(addr_of wcni-mc-b net1)"
check "delegates form: DEL exits 0" mcni del wcni-mc-b default mc-b

# 3. clusterNetwork a NAD in multusNamespace (preferred over the conf of the same name, as in
#    Multus); defaultNetworks by bare name: a NAD whose spec.config is empty, read from
#    confDir; pods in systemNamespaces (kube-system) get no default networks.
net kube-system gke-pod-network "$(jq -c '.plugins[0].bridge="cni7" | .plugins[0].ipam.ranges=[[{"subnet":"10.244.7.0/24"}]]' "$CONF/10-gke.conflist")"
defer "ip link del cni7"
jq -n '{apiVersion: "k8s.cni.cncf.io/v1", kind: "NetworkAttachmentDefinition",
        metadata: {name: "side-conf", namespace: "kube-system"}, spec: {}}' | kc apply -f - >/dev/null
defer "kc -n kube-system delete network-attachment-definitions.k8s.cni.cncf.io side-conf"
multus_conf "$SEED,\"defaultNetworks\":[\"side-conf\"],\"namespaceIsolation\":false"
new_netns wcni-mc-c
pod default mc-c '{}'
out=$(mcni add wcni-mc-c default mc-c); rc=$?
check_eq "clusterNetwork as a NAD name: ADD exits 0" 0 "$rc"
check_grep "clusterNetwork: the NAD kube-system/gke-pod-network wins over the conf" '^10\.244\.7\.' "$(addr_of wcni-mc-c eth0)"
check_grep "defaultNetworks: the empty-spec NAD side-conf is the conf of that name in confDir (net1)" '^172\.31\.9\.' "$(addr_of wcni-mc-c net1)"
status_of default mc-c > "$WORK/status-c.json"
check_json "network-status: kube-system/gke-pod-network and kube-system/side-conf" "$WORK/status-c.json" \
    'map(.name)==["kube-system/gke-pod-network","kube-system/side-conf"]'
new_netns wcni-mc-sys
pod kube-system mc-sys '{}'
out=$(mcni add wcni-mc-sys kube-system mc-sys); rc=$?
check_eq "systemNamespaces: a kube-system pod's ADD exits 0" 0 "$rc"
check_eq "systemNamespaces: a kube-system pod gets no default network" "eth0,lo" \
    "$(ip -n wcni-mc-sys -j link show | jq -r 'map(.ifname)|sort|join(",")')"
for p in c sys; do ns=default; [[ $p == sys ]] && ns=kube-system
    check "DEL mc-$p exits 0" mcni del wcni-mc-$p $ns mc-$p; done
kc -n kube-system delete network-attachment-definitions.k8s.cni.cncf.io gke-pod-network >/dev/null

# 4. The pod's own cluster network: v1.multus-cni.io/default-network names a NAD (bare: in
#    multusNamespace) that replaces clusterNetwork for this pod only.
net kube-system alt-net "$(jq -c '.name="alt" | .plugins[0].bridge="cni3" | .plugins[0].ipam.ranges=[[{"subnet":"10.245.3.0/24"}]]' "$CONF/10-gke.conflist")"
defer "ip link del cni3"
multus_conf "$SEED"
new_netns wcni-mc-d
pod default mc-d '{"v1.multus-cni.io/default-network":"alt-net"}'
out=$(mcni add wcni-mc-d default mc-d); rc=$?
check_eq "default-network annotation: ADD exits 0" 0 "$rc"
check_grep "default-network annotation: eth0 from kube-system/alt-net" '^10\.245\.3\.' "$(addr_of wcni-mc-d eth0)"
check_json "default-network annotation: network-status names it, default" <(status_of default mc-d) \
    'length==1 and .[0].name=="kube-system/alt-net" and .[0].default==true'
check "default-network annotation: DEL exits 0" mcni del wcni-mc-d default mc-d
check_eq "default-network annotation: DEL (from the record) took eth0" lo \
    "$(ip -n wcni-mc-d -j link show | jq -r 'map(.ifname)|join(",")')"
# A DEL without its record (lost) frees what the pod's own cluster network gave, as Multus'
# DEL reads the pod's annotation again: alt's host-local lease goes, not the node's network's.
new_netns wcni-mc-d2
pod default mc-d2 '{"v1.multus-cni.io/default-network":"alt-net"}'
check "default-network, record lost: ADD exits 0" mcni add wcni-mc-d2 default mc-d2
ip2=$(addr_of wcni-mc-d2 eth0)
check "default-network, record lost: alt's host-local holds $ip2" test -e "$WORK/host-local/alt/$ip2"
rm -f $(grep -l '"podref":"default/mc-d2"' "$STATE"/* 2>/dev/null)
check "default-network, record lost: DEL exits 0" mcni del wcni-mc-d2 default mc-d2
check "default-network, record lost: DEL freed $ip2 in alt (the pod's own network)" test ! -e "$WORK/host-local/alt/$ip2"
new_netns wcni-mc-e
pod default mc-e '{"v1.multus-cni.io/default-network":"alt-net, other"}'
out=$(cni_raw ADD wcni-mc-e default mc-e "$NETDIR/00-multus.conflist"); rc=$?
check_json "default-network annotation with two networks is refused (100)" <(echo "$out") \
    '.code==100 and (.details|contains("exactly one"))'

# 5. readinessindicatorfile: ADD waits for the cluster network's marker.
multus_conf "$SEED,\"readinessindicatorfile\":\"$WORK/ready\""
new_netns wcni-mc-f
pod default mc-f '{}'
( sleep 3; touch "$WORK/ready" ) &
start=$(date +%s)
out=$(mcni add wcni-mc-f default mc-f); rc=$?
waited=$(( $(date +%s) - start ))
check_eq "readinessindicatorfile: ADD exits 0 once the file appears" 0 "$rc"
check "readinessindicatorfile: ADD waited for it (${waited}s)" test "$waited" -ge 2
check_grep "readinessindicatorfile: the wait is logged" 'waiting for readinessindicatorfile' "$(cat "$WORK/multus.log")"
check "readinessindicatorfile: DEL exits 0" mcni del wcni-mc-f default mc-f

# 6. What cannot be honoured is refused by name, before anything is made.
for case in '"logOptions":{"maxAge":5}|logOptions' "\"delegates\":[$GKE]|delegates" \
            '"logLevel":"loud"|logLevel' '"auxiliaryCNIChainName":"aux"|auxiliaryCNIChainName'; do
    extra=${case%|*} key=${case##*|}
    multus_conf "$SEED,$extra"
    out=$(cni_raw ADD wcni-mc-f default mc-f "$NETDIR/00-multus.conflist"); rc=$?
    check_json "$key is refused with code 7 naming it" <(echo "$out") \
        '.code==7 and (.msg|contains($k))' --arg k "$key"
done
check_eq "refused configs made nothing" lo "$(ip -n wcni-mc-f -j link show | jq -r 'map(.ifname)|join(",")')"
check_empty "wasmcni's default cniDir holds no record of this scenario's pods" \
    "$(grep -l '"podref":"[a-z-]*/mc-' "$STATE"/* 2>/dev/null)"
check_eq "the seed's pool is empty again" '{}' "$(pool_allocations 172.16.19.0-24)"

# 7. default-route (Multus'): the pod's default route moves to the gateway a network asks for,
#    eth0 losing its own; an empty list leaves the pod none; two IPv4 gateways (ECMP) are
#    refused; CHECK agrees with what the pod has.
multus_conf "$SEED"
defaults() { ip -n "$1" -j route show default | jq -r 'map("\(.gateway) \(.dev)")|join(",")'; }
new_netns wcni-mc-g
pod default mc-g '{"k8s.v1.cni.cncf.io/networks":"[{\"name\":\"seed-macvlan\",\"default-route\":[\"172.16.19.254\"]}]"}'
out=$(mcni add wcni-mc-g default mc-g); rc=$?
check_eq "default-route: ADD exits 0" 0 "$rc"
check_eq "default-route: the only default route is via 172.16.19.254 on net1" "172.16.19.254 net1" "$(defaults wcni-mc-g)"
status_of default mc-g > "$WORK/status-g.json"
check_json "default-route: network-status gives net1 the gateway and eth0 none" "$WORK/status-g.json" \
    '.[1].gateway==["172.16.19.254"] and (.[0]|has("gateway")|not)'
check "default-route: CHECK agrees with the moved route" mcni check wcni-mc-g default mc-g
check "default-route: DEL exits 0" mcni del wcni-mc-g default mc-g
new_netns wcni-mc-h
pod default mc-h '{"k8s.v1.cni.cncf.io/networks":"[{\"name\":\"seed-macvlan\",\"default-route\":[]}]"}'
out=$(mcni add wcni-mc-h default mc-h); rc=$?
check_eq "default-route []: ADD exits 0" 0 "$rc"
check_empty "default-route []: the pod has no default route" "$(defaults wcni-mc-h)"
check "default-route []: DEL exits 0" mcni del wcni-mc-h default mc-h
new_netns wcni-mc-i
pod default mc-i '{"k8s.v1.cni.cncf.io/networks":"[{\"name\":\"seed-macvlan\",\"default-route\":[\"172.16.19.254\"]},{\"name\":\"seed-macvlan\",\"interface\":\"net2\",\"default-route\":[\"172.16.19.253\"]}]"}'
out=$(cni_raw ADD wcni-mc-i default mc-i "$NETDIR/00-multus.conflist"); rc=$?
check_json "default-route: two IPv4 gateways are refused (7, no ECMP)" <(echo "$out") \
    '.code==7 and ((.msg+" "+.details)|contains("ECMP"))'
check_eq "default-route: the refused pod has lo only" lo "$(ip -n wcni-mc-i -j link show | jq -r 'map(.ifname)|join(",")')"
check_eq "the seed's pool is empty at the end" '{}' "$(pool_allocations 172.16.19.0-24)"
