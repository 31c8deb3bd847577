#!/usr/bin/env bash
# tests/cluster/smoke.sh — check a cluster from up.sh: CRDs, RBAC of the wasmcni
# identity, and the objects wasmcni reads/writes (NAD, pod annotation patch,
# whereabouts IPPool / OverlappingRangeIPReservation, guest pins ConfigMap, event).
#   tests/cluster/with-cluster.sh tests/cluster/smoke.sh
# or, on a running cluster: . STATE_DIR/env && tests/cluster/smoke.sh
# Needs KUBECTL, KUBECONFIG (admin) and WASMCNI_KUBECONFIG from STATE_DIR/env.
# Uses namespace default (NAD ipvlan-net, Pod smoke-pod) and kube-system (IPPool,
# reservation, ConfigMap wasmcni-guests if absent); deletes what it created.
set -uo pipefail
: "${KUBECTL:?source STATE_DIR/env first}" "${WASMCNI_KUBECONFIG:?source STATE_DIR/env first}"

A=("$KUBECTL" --request-timeout=60s)                               # admin
W=("$KUBECTL" --request-timeout=60s --kubeconfig "$WASMCNI_KUBECONFIG") # plugin identity
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
nok() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { # description command...
    local d=$1
    shift
    if out=$("$@" 2>&1); then ok "$d"; else nok "$d: $out"; fi
}
expect() { # description expected command...
    local d=$1 want=$2 got
    shift 2
    got=$("$@" 2>/dev/null)
    if [[ "$got" == "$want" ]]; then ok "$d"; else nok "$d: want '$want', got '$got'"; fi
}

for crd in ippools.whereabouts.cni.cncf.io overlappingrangeipreservations.whereabouts.cni.cncf.io \
    network-attachment-definitions.k8s.cni.cncf.io; do
    expect "CRD $crd Established" True "${A[@]}" get crd "$crd" \
        -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}'
done

# RBAC of system:serviceaccount:kube-system:wasmcni
expect "wasmcni can-i patch pods/status -n default: yes" yes \
    "${W[@]}" auth can-i patch pods --subresource=status -n default
expect "wasmcni can-i update pods/status -n default: no" no \
    "${W[@]}" auth can-i update pods --subresource=status -n default
expect "whoami is the wasmcni SA" system:serviceaccount:kube-system:wasmcni \
    "${W[@]}" auth whoami -o 'jsonpath={.status.userInfo.username}'
while read -r want verb res ns; do
    expect "wasmcni can-i $verb $res -n $ns: $want" "$want" "${W[@]}" auth can-i "$verb" "$res" -n "$ns"
done <<'EOF'
yes get pods default
no list pods default
no watch pods default
no patch pods default
no create pods default
no delete pods default
no update pods default
yes get network-attachment-definitions.k8s.cni.cncf.io default
no list network-attachment-definitions.k8s.cni.cncf.io default
no watch network-attachment-definitions.k8s.cni.cncf.io default
no create network-attachment-definitions.k8s.cni.cncf.io default
yes get ippools.whereabouts.cni.cncf.io kube-system
yes list ippools.whereabouts.cni.cncf.io kube-system
yes create ippools.whereabouts.cni.cncf.io kube-system
yes patch ippools.whereabouts.cni.cncf.io kube-system
no update ippools.whereabouts.cni.cncf.io kube-system
no delete ippools.whereabouts.cni.cncf.io kube-system
yes get overlappingrangeipreservations.whereabouts.cni.cncf.io kube-system
yes create overlappingrangeipreservations.whereabouts.cni.cncf.io kube-system
yes delete overlappingrangeipreservations.whereabouts.cni.cncf.io kube-system
no list overlappingrangeipreservations.whereabouts.cni.cncf.io kube-system
no update overlappingrangeipreservations.whereabouts.cni.cncf.io kube-system
no patch overlappingrangeipreservations.whereabouts.cni.cncf.io kube-system
yes get configmaps/wasmcni-guests kube-system
no get configmaps/kube-proxy kube-system
no list configmaps kube-system
no get configmaps/wasmcni-guests default
no create configmaps kube-system
yes create events default
no update events default
no list events default
no get secrets kube-system
EOF

# objects as a user / Multus / whereabouts would have them
cleanup() {
    "${A[@]}" delete pod smoke-pod -n default --ignore-not-found --wait=false >/dev/null 2>&1
    "${A[@]}" delete network-attachment-definitions.k8s.cni.cncf.io ipvlan-net -n default --ignore-not-found >/dev/null 2>&1
    "${A[@]}" delete ippools.whereabouts.cni.cncf.io 172.16.1.0-24 -n kube-system --ignore-not-found >/dev/null 2>&1
    "${A[@]}" delete overlappingrangeipreservations.whereabouts.cni.cncf.io 172.16.1.1 -n kube-system --ignore-not-found >/dev/null 2>&1
    [[ -n "${made_cm:-}" ]] && "${A[@]}" delete configmap wasmcni-guests -n kube-system --ignore-not-found >/dev/null 2>&1
    "${A[@]}" delete event smoke-pod.wasmcni -n default --ignore-not-found >/dev/null 2>&1
}
trap cleanup EXIT

check "admin creates NAD default/ipvlan-net" "${A[@]}" apply -f - <<'EOF'
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: ipvlan-net
  namespace: default
spec:
  config: '{"cniVersion":"1.1.0","name":"ipvlan-net","type":"ipvlan","master":"eth0","mode":"l2","ipam":{"type":"whereabouts","range":"172.16.1.0/24"}}'
EOF
check "admin creates Pod default/smoke-pod with networks annotation" "${A[@]}" apply -f - <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: smoke-pod
  namespace: default
  annotations:
    k8s.v1.cni.cncf.io/networks: ipvlan-net
spec:
  containers:
  - name: c
    image: registry.invalid/pause:3.10
EOF
expect "wasmcni reads the NAD config" ipvlan-net \
    bash -c '"$@" | sed -n "s/.*\"name\":\"\([^\"]*\)\".*/\1/p"' _ "${W[@]}" get net-attach-def ipvlan-net -n default -o 'jsonpath={.spec.config}'
expect "wasmcni reads the pod networks annotation" ipvlan-net \
    "${W[@]}" get pod smoke-pod -n default -o 'jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/networks}'
STATUS='[{"name":"default/ipvlan-net","interface":"net1","ips":["172.16.1.1"],"mac":"02:00:00:00:00:01","dns":{}}]'
# As wasmcni writes it: one merge PATCH of pods/status (kubectl patch would GET pods/status
# first, which the identity may not).
status_patch() {
    local server token
    server=$(sed -n 's/^\s*server: //p' "$WASMCNI_KUBECONFIG")
    token=$(sed -n 's/^\s*token: //p' "$WASMCNI_KUBECONFIG")
    curl -sSf -o /dev/null --cacert "$(dirname "$WASMCNI_KUBECONFIG")/pki/ca.crt" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/merge-patch+json' \
        -X PATCH "$server/api/v1/namespaces/default/pods/smoke-pod/status" --data-binary "$1"
}
check "wasmcni patches the network-status annotation through pods/status" status_patch \
    "$(jq -cn --arg s "$STATUS" '{metadata: {annotations: {"k8s.v1.cni.cncf.io/network-status": $s}}}')"
expect "network-status annotation stored" "$STATUS" \
    "${A[@]}" get pod smoke-pod -n default -o 'jsonpath={.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}'

check "wasmcni creates IPPool as whereabouts writes it" "${W[@]}" create -f - <<'EOF'
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: IPPool
metadata:
  name: 172.16.1.0-24
  namespace: kube-system
spec:
  range: 172.16.1.0/24
  allocations:
    "1":
      id: 7c9f3e2d1b0a49586776655443322110ffeeddccbbaa99887766554433221100
      podref: default/smoke-pod
EOF
check "wasmcni adds one IPPool allocation (JSON patch guarded by a test, as the commit does)" "${W[@]}" \
    patch ippools.whereabouts.cni.cncf.io 172.16.1.0-24 -n kube-system --type=json -p \
    '[{"op":"test","path":"/spec/allocations/2","value":null},{"op":"add","path":"/spec/allocations/2","value":{"id":"abc","podref":"default/other","ifname":"net1"}}]'
if "${W[@]}" patch ippools.whereabouts.cni.cncf.io 172.16.1.0-24 -n kube-system --type=json -p \
    '[{"op":"test","path":"/spec/allocations/2","value":null},{"op":"add","path":"/spec/allocations/2","value":{"id":"zzz","podref":"default/thief"}}]' >/dev/null 2>&1
then nok "a second add of a taken key is refused"; else ok "a second add of a taken key is refused"; fi
expect "IPPool allocation 2 stored incl. ifname" net1 \
    "${W[@]}" get ippools.whereabouts.cni.cncf.io 172.16.1.0-24 -n kube-system -o 'jsonpath={.spec.allocations.2.ifname}'
if "${W[@]}" create -f - >/dev/null 2>&1 <<'EOF'; then nok "IPPool without spec.range rejected"; else ok "IPPool without spec.range rejected"; fi
apiVersion: whereabouts.cni.cncf.io/v1alpha1
kind: IPPool
metadata:
  name: bad
  namespace: kube-system
spec:
  allocations: {}
EOF
if ! "${A[@]}" get configmap wasmcni-guests -n kube-system >/dev/null 2>&1; then
    made_cm=1
    "${A[@]}" create configmap wasmcni-guests -n kube-system --from-literal=example='{}' >/dev/null
fi
check "wasmcni reads ConfigMap kube-system/wasmcni-guests" "${W[@]}" get configmap wasmcni-guests -n kube-system
echo "smoke: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
