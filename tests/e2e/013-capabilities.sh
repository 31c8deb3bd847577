#!/usr/bin/env bash
# tests/e2e/013-capabilities.sh — runtimeConfig capabilities, as containerd passes them (cnitool's
# CAP_ARGS → libcni → wasmcni's runtimeConfig), reach the plugins that declare them, exactly as
# libcni would give them: on the cluster network ips (host-local), mac (tuning), portMappings
# (portmap, nftables) and bandwidth (bandwidth); on extra networks the pod's per-network `ips`
# and `mac` (network selection JSON) honoured by the built-in macvlan and the in-process IPAM,
# and by an exec'd IPAM (static) under the built-in macvlan. A network that does not declare
# the capability gets them the way Multus also passes them, as CNI_ARGS MAC= and IP=. DEL
# removes the port mappings and the shaping devices.
source "$(dirname "$0")/lib.sh"

make_master eth1
new_netns wcni-cap
write_wasmcni_conf 1.1.0 '"capabilities":{"portMappings":true,"bandwidth":true,"ips":true,"mac":true}'
cat > "$WORK/cluster.conflist" <<JSON
{"cniVersion":"1.0.0","name":"cbr0","plugins":[
  {"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"capabilities":{"ips":true},
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"dataDir":"$WORK/host-local"}},
  {"type":"tuning","capabilities":{"mac":true}},
  {"type":"portmap","capabilities":{"portMappings":true},"backend":"nftables"},
  {"type":"bandwidth","capabilities":{"bandwidth":true}}]}
JSON
apply_nad cap-net '{"cniVersion":"1.0.0","plugins":[{"type":"macvlan","master":"eth1","mode":"bridge","capabilities":{"ips":true,"mac":true},"ipam":{"type":"whereabouts","range":"172.16.15.0/24"}}]}'
apply_nad nocap-net '{"cniVersion":"1.0.0","plugins":[{"type":"macvlan","master":"eth1","mode":"bridge","ipam":{"type":"whereabouts","range":"172.16.16.0/24"}}]}'
apply_nad static-net '{"cniVersion":"1.0.0","plugins":[{"type":"macvlan","master":"eth1","mode":"bridge","capabilities":{"ips":true},"ipam":{"type":"static"}}]}'
NETS='[{"name":"cap-net","mac":"02:11:22:33:44:55","ips":["172.16.15.7/24"]},{"name":"nocap-net","mac":"02:11:22:33:44:66","ips":["172.16.16.9/24"]},{"name":"static-net","ips":["172.16.17.5/24"]}]'
make_pod cap-pod "$NETS"
defer "kc delete pod cap-pod cap-pod2 --wait=false"
CAPS='{"ips":["10.244.1.77/24"],"mac":"02:aa:bb:cc:dd:01","portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000000,"ingressBurst":100000,"egressRate":2000000,"egressBurst":200000}}'

addr() { ip -n wcni-cap -j addr show "$1" 2>/dev/null | jq -r '[.[0].addr_info[]|select(.family=="inet")|.local]|join(",")'; }
mac() { ip -n wcni-cap -j link show "$1" 2>/dev/null | jq -r '.[0].address'; }

check "ADD with capability arguments" env CAP_ARGS="$CAPS" bash -c "$(declare -f cni); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni add wcni-cap cap-pod > '$WORK/add.json'"
check_eq "eth0 has the address the runtime asked for (ips → host-local)" "10.244.1.77" "$(addr eth0)"
check_eq "eth0 has the MAC the runtime asked for (mac → tuning)" "02:aa:bb:cc:dd:01" "$(mac eth0)"
nft list ruleset > "$WORK/nft.txt" 2>&1
check "the port mapping is in place (portMappings → portmap, nftables)" \
    grep -Eq 'tcp dport 8080 .*dnat .*10\.244\.1\.77:80' "$WORK/nft.txt"
hostveth=$(jq -r '.interfaces[]|select(.sandbox==null and .name!="cni0")|.name' "$WORK/add.json" | head -n1)
check "ingress shaping on the host side of eth0 (bandwidth → tbf on $hostveth)" \
    bash -c "tc qdisc show dev '$hostveth' | grep -q tbf"
check "egress shaping device exists (bandwidth → ifb)" bash -c "ip -j link show type ifb | jq -e 'length==1' >/dev/null"
check_eq "net1: the requested address (in-process IPAM, capability ips)" "172.16.15.7" "$(addr net1)"
check_eq "net1: the requested MAC (built-in macvlan, capability mac)" "02:11:22:33:44:55" "$(mac net1)"
check_eq "IPPool records the requested address for the pod" '{"7":"default/cap-pod"}' \
    "$(pool_allocations 172.16.15.0-24 | jq -c 'map_values(.podref)')"
# Without the capabilities the requests still arrive, as Multus sends them, in CNI_ARGS (MAC=,
# IP=): macvlan sets the MAC, whereabouts adds IP as a static address beside the range's own.
check_eq "net2: no ips capability: CNI_ARGS IP is a static address beside the range's (as Multus + whereabouts)" \
    "172.16.16.1,172.16.16.9" "$(addr net2)"
check_eq "net2: no mac capability: CNI_ARGS MAC sets it (as Multus + macvlan)" "02:11:22:33:44:66" "$(mac net2)"
check_eq "net3: the requested address through the exec'd static IPAM under the built-in macvlan" "172.16.17.5" "$(addr net3)"
check "CHECK with all of it" cni check wcni-cap cap-pod

# A second pod asking for an address already held: refused with the holder named, nothing left.
new_netns wcni-cap2
make_pod cap-pod2 '[{"name":"cap-net","ips":["172.16.15.7/24"]}]'
out=$(cni add wcni-cap2 cap-pod2 2>&1 >/dev/null); rc=$?
if [[ $rc -ne 0 && $out == *"requested address 172.16.15.7 cannot be allocated: it is allocated to"*"default/cap-pod"* ]]; then
    pass "a requested address held by another pod is refused, naming the holder"
else fail "a requested address held by another pod is refused, naming the holder" "exit $rc: $out"; fi
check_empty "…and the second pod has no net1" "$(ip -n wcni-cap2 -o link show net1 2>/dev/null)"
check "DEL of the refused pod" cni del wcni-cap2 cap-pod2

check "DEL" env CAP_ARGS="$CAPS" bash -c "$(declare -f cni); $(declare -p NETDIR CNI_BIN WORK TOOLS); cni del wcni-cap cap-pod"
nft list ruleset > "$WORK/nft-after.txt" 2>&1
check "the port mapping is gone" bash -c "! grep -q 'dport 8080' '$WORK/nft-after.txt'"
check "the egress shaping device is gone" bash -c "ip -j link show type ifb | jq -e 'length==0' >/dev/null"
check_eq "the IPPools are empty" '{}{}' "$(pool_allocations 172.16.15.0-24)$(pool_allocations 172.16.16.0-24)"

# deviceID (the selection's, as an SR-IOV user names a VF): Multus hands the plugins that declare
# `CNIDeviceInfoFile` a file to describe the device in (<network>-<container>_<ifname> under
# /var/run/k8s.cni.cncf.io/devinfo/cni), reads it into network-status `device-info` and removes
# it on DEL. The plugin here is a stand-in for SR-IOV CNI: it writes the file for the deviceID
# it is given and passes the built-in macvlan's result on.
cat > "$CNI_BIN/devinfo-writer" <<'SH'
#!/usr/bin/env bash
conf=$(cat)
file=$(jq -r '.runtimeConfig.CNIDeviceInfoFile // empty' <<<"$conf")
if [[ $CNI_COMMAND == ADD && -n $file ]]; then
    mkdir -p "$(dirname "$file")"
    jq -cn --arg id "$(jq -r .runtimeConfig.deviceID <<<"$conf")" \
        '{type:"pci",version:"1.1.0",pci:{"pci-address":$id,"pf-pci-address":"0000:3b:00.0"},"not-a-key":1}' > "$file"
fi
[[ $CNI_COMMAND == ADD ]] && jq -c '.prevResult + {cniVersion:.cniVersion}' <<<"$conf"
exit 0
SH
chmod +x "$CNI_BIN/devinfo-writer"
apply_nad dev-net '{"cniVersion":"1.0.0","plugins":[{"type":"macvlan","master":"eth1","mode":"bridge","ipam":{"type":"whereabouts","range":"172.16.18.0/24"}},{"type":"devinfo-writer","capabilities":{"deviceID":true,"CNIDeviceInfoFile":true}}]}'
new_netns wcni-dev
make_pod dev-pod '[{"name":"dev-net","deviceID":"0000:3b:02.4"}]'
defer "kc delete pod dev-pod dev-res --wait=false"
DEVDIR=/var/run/k8s.cni.cncf.io/devinfo/cni
rm -f "$DEVDIR"/default-dev-net-*
check "deviceID: ADD" cni add wcni-dev dev-pod
cid=$(jq -r '.container_id // .containerId' "$(grep -l '"default/dev-net"' "$WORK/delegates/"* | head -1)")
DEVFILE="$DEVDIR/default-dev-net-${cid}_net1"
defer "rm -f $DEVFILE"
check_json "deviceID: the plugin was handed the device-info file Multus names (<network>-<container>_<ifname>)" "$DEVFILE" \
    '.pci["pci-address"] == "0000:3b:02.4"'
kc get pod dev-pod -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}' > "$WORK/dev-status.json"
check_eq "deviceID: network-status device-info is the file's document (unknown keys dropped, as Multus' decoder)" \
    '{"pci":{"pci-address":"0000:3b:02.4","pf-pci-address":"0000:3b:00.0"},"type":"pci","version":"1.1.0"}' \
    "$(jq -cS '.[]|select(.name=="default/dev-net")|.["device-info"]' "$WORK/dev-status.json")"
check_eq "deviceID: the cluster network has no device-info" "null" \
    "$(jq -c '.[]|select(.default)|.["device-info"]' "$WORK/dev-status.json")"
check "deviceID: DEL" cni del wcni-dev dev-pod
check "deviceID: DEL removed the device-info file" test ! -e "$DEVFILE"
check_eq "deviceID: the IPPool is empty" '{}' "$(pool_allocations 172.16.18.0-24)"

# A NAD with a device-plugin resource (k8s.v1.cni.cncf.io/resourceName): Multus hands it the
# device the kubelet allocated; wasmcni does not read pod resources and refuses, naming it.
kc apply -f - >/dev/null <<YAML
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: res-net
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/resourceName: intel.com/sriov_netdevice
spec:
  config: '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1","ipam":{"type":"static"}}'
YAML
new_netns wcni-res
make_pod dev-res res-net
out=$(cni_raw ADD wcni-res default dev-res); rc=$?
check_eq "resourceName: ADD refused" 1 "$((rc != 0))"
check_json "resourceName: code 7, naming the annotation and the resource" <(echo "$out") \
    '.code==7 and ((.msg+.details)|contains("k8s.v1.cni.cncf.io/resourceName") and contains("intel.com/sriov_netdevice"))'
check_empty "resourceName: nothing left in the pod" "$(ip -n wcni-res -o link show | grep -v ' lo:')"
check "resourceName: DEL" cni_raw DEL wcni-res default dev-res
