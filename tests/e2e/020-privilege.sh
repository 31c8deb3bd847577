#!/usr/bin/env bash
# tests/e2e/020-privilege.sh — least privilege of the node identity, on the real API server:
# deploy/rbac.yaml plus deploy/network-status-policy.yaml (a ValidatingAdmissionPolicy). The
# identity is what a node has: a token of SA kube-system/wasmcni bound to the wasmcni pod on
# node-1, so the token names node-1. It may write the network-status annotation of node-1's
# pods through pods/status — a real ADD does — and nothing else: every other write below is
# expected to be refused with 403, and a token naming no node may write nothing.
source "$(dirname "$0")/lib.sh"

kc apply -f "$REPO/deploy/network-status-policy.yaml" >/dev/null
defer "kc delete -f '$REPO/deploy/network-status-policy.yaml'"
for n in node-1 node-2; do
    kc get node "$n" >/dev/null 2>&1 || {
        jq -n --arg n "$n" '{apiVersion: "v1", kind: "Node", metadata: {name: $n}}' | kc create -f - >/dev/null
        defer "kc delete node $n"
    }
done
# The DaemonSet's pod on node-1 (nothing runs it: it is what the token is bound to).
jq -n '{apiVersion: "v1", kind: "Pod", metadata: {name: "wasmcni-node-1", namespace: "kube-system"},
        spec: {nodeName: "node-1", serviceAccountName: "wasmcni", automountServiceAccountToken: false,
               containers: [{name: "c", image: "registry.invalid/none"}]}}' | kc apply -f - >/dev/null
defer "kc -n kube-system delete pod wasmcni-node-1 --wait=false"
uid=$(kc -n kube-system get pod wasmcni-node-1 -o jsonpath='{.metadata.uid}')
token=$(kc -n kube-system create token wasmcni --duration=10m \
    --bound-object-kind=Pod --bound-object-name=wasmcni-node-1 --bound-object-uid="$uid")
NODEKC="$WORK/node.kubeconfig"
sed "s#^\(\s*token:\).*#\1 $token#" "$STATE_DIR/wasmcni.kubeconfig" > "$NODEKC"
chmod 600 "$NODEKC"
N() { "$KUBECTL" --kubeconfig "$NODEKC" "$@"; }
U() { "$KUBECTL" --kubeconfig "$STATE_DIR/wasmcni.kubeconfig" "$@"; }

check_eq "the node token names node-1 (authentication.kubernetes.io/node-name)" node-1 \
    "$(N auth whoami -o json | jq -r '.status.userInfo.extra["authentication.kubernetes.io/node-name"][0]')"

make_master eth1
new_netns wcni-priv-a
new_netns wcni-priv-b
write_wasmcni_conf 1.0.0
sed -i "s#\"kubeconfig\":\"[^\"]*\"#\"kubeconfig\":\"$NODEKC\"#" "$NETDIR/00-wasmcni.conflist"
apply_seed_nad priv-net macvlan eth1 172.16.20.0/24
defer "kc -n kube-system delete ippools.whereabouts.cni.cncf.io 172.16.20.0-24"
make_pod priv-a "priv-net"                               # on node-1
jq -n '{apiVersion: "v1", kind: "Pod", metadata: {name: "priv-b", namespace: "default",
        annotations: {"k8s.v1.cni.cncf.io/networks": "priv-net"}},
        spec: {nodeName: "node-2", containers: [{name: "c", image: "registry.invalid/none"}]}}' | kc apply -f - >/dev/null
defer "kc delete pod priv-a priv-b --wait=false"

# Allowed: what CNI does.
out=$(cni add wcni-priv-a priv-a); rc=$?
check_eq "ADD of a node-1 pod with the node-1 token exits 0" 0 "$rc"
check_json "its network-status was written" <(kc get pod priv-a -o json) \
    '.metadata.annotations["k8s.v1.cni.cncf.io/network-status"]|fromjson|length==2'
check "the node token reads a NAD" N get network-attachment-definitions.k8s.cni.cncf.io priv-net -o name
# Writes of the status subresource are made as wasmcni makes them, one PATCH (kubectl patch
# would GET pods/status first, which the identity may not); the answer's code is asserted.
STATUS=k8s.v1.cni.cncf.io/network-status
status_patch() { api_write "$1" PATCH "/api/v1/namespaces/default/pods/$2/status" "$3"; }
check_eq "the node token writes network-status of a node-1 pod through pods/status: 200" 200 \
    "$(status_patch "$token" priv-a "{\"metadata\":{\"annotations\":{\"$STATUS\":\"[]\"}}}")"

# Refused: everything else. denied DESC WANT_IN_MESSAGE BODY [POD] [TOKEN]: that status PATCH
# answers 403 and the policy's message says why.
denied() {
    local code; code=$(status_patch "${5:-$token}" "${4:-priv-a}" "$3")
    check_eq "$1: 403" 403 "$code"
    check_grep "$1: the policy says why" "$2" "$(jq -r .message "$WORK/api-answer.json" 2>/dev/null)"
}
denied "change a pod's labels through pods/status" "may not change a pod's labels" '{"metadata":{"labels":{"evil":"1"}}}'
denied "add another annotation through pods/status" "only the $STATUS annotation" \
    '{"metadata":{"annotations":{"k8s.v1.cni.cncf.io/networks":"other"}}}'
denied "remove another annotation through pods/status" "only the $STATUS annotation" \
    '{"metadata":{"annotations":{"k8s.v1.cni.cncf.io/networks":null}}}'
denied "change a pod's status" "may not change a pod's spec or status" '{"status":{"phase":"Failed"}}'
denied "write network-status of another node's pod" "wasmcni of node node-1 may not write pods of node node-2" \
    "{\"metadata\":{\"annotations\":{\"$STATUS\":\"[]\"}}}" priv-b
unbound=$(sed -n 's/^\s*token: //p' "$STATE_DIR/wasmcni.kubeconfig")
denied "write network-status with a token that names no node" "names no node" \
    "{\"metadata\":{\"annotations\":{\"$STATUS\":\"[]\"}}}" priv-a "$unbound"

# And what RBAC refuses. forbidden DESC CMD...: the command fails with 403.
forbidden() {
    local desc=$1; shift
    local out; out=$("$@" 2>&1) && { fail "$desc" "it succeeded: $out"; return; }
    check_grep "$desc: 403" '\(Forbidden\)' "$out"
}
check_eq "change a pod's image (PATCH pods): 403" 403 \
    "$(api_write "$token" PATCH /api/v1/namespaces/default/pods/priv-a '{"spec":{"containers":[{"name":"c","image":"evil"}]}}')"
check_eq "change a pod's labels (PATCH pods): 403" 403 \
    "$(api_write "$token" PATCH /api/v1/namespaces/default/pods/priv-a '{"metadata":{"labels":{"evil":"1"}}}')"
forbidden "delete a pod" N delete pod priv-a --wait=false
forbidden "create a pod" N run evil --image=evil --restart=Never
forbidden "read a Secret" N -n kube-system get secrets
forbidden "create a NAD" N create -f <(jq -n '{apiVersion: "k8s.cni.cncf.io/v1", kind: "NetworkAttachmentDefinition",
    metadata: {name: "evil", namespace: "default"}, spec: {config: "{}"}}')
check_eq "change a NAD: 403" 403 \
    "$(api_write "$token" PATCH /apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/priv-net '{"metadata":{"labels":{"evil":"1"}}}')"
kc -n kube-system create configmap wasmcni-guests >/dev/null 2>&1 && defer "kc -n kube-system delete configmap wasmcni-guests"
check "the node token reads the guest pins" N -n kube-system get configmap wasmcni-guests -o name
check_eq "change the guest pins: 403" 403 \
    "$(api_write "$token" PATCH /api/v1/namespaces/kube-system/configmaps/wasmcni-guests '{"data":{"evil.sha256":"00"}}')"
forbidden "read another ConfigMap" N -n kube-system get configmap kube-root-ca.crt

# A pod on another node through the real code path: the status write is refused, and the ADD
# undoes everything it made.
out=$(cni_raw ADD wcni-priv-b default priv-b); rc=$?
check_json "ADD of node-2's pod with node-1's token fails on the status write (104)" <(echo "$out") \
    '.code==104 and ((.msg+" "+.details)|test("node-1 may not write pods of node node-2"))'
check_eq "that ADD left nothing in the pod" lo "$(ip -n wcni-priv-b -j link show | jq -r 'map(.ifname)|join(",")')"
check "DEL pod a exits 0" cni del wcni-priv-a priv-a
check "DEL pod b exits 0" cni_raw DEL wcni-priv-b default priv-b
check_eq "the pool is empty again" '{}' "$(pool_allocations 172.16.20.0-24)"
