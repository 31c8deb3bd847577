# tests/node/lib.sh — helpers of the real-node scenarios (tests/node/NNN-*.sh), on top of
# tests/e2e/lib.sh (checks, kc, NADs, IPPool readers). Needs the node env (tests/node/up.sh):
# NODE_DIR, NODE_NAME, CONTAINERD_SOCK, CNI_CONF_DIR, CNI_BIN_DIR, PAUSE_IMAGE, WASMCNI_NODE_LOG.
source "$REPO/tests/e2e/lib.sh"
: "${NODE_DIR:?}" "${CONTAINERD_SOCK:?}" "${CNI_CONF_DIR:?}" "${CNI_BIN_DIR:?}"

ctr() { command ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# node_pod NAME NETWORKS_ANNOTATION: Pod default/NAME bound to this node (no scheduler needed),
# running the local pause image; its k8s.v1.cni.cncf.io/networks annotation as given ("" for none).
node_pod() {
    jq -n --arg name "$1" --arg networks "$2" --arg node "$NODE_NAME" --arg image "$PAUSE_IMAGE" \
        '{apiVersion: "v1", kind: "Pod",
          metadata: ({name: $name, namespace: "default"}
                     + (if $networks == "" then {} else {annotations: {"k8s.v1.cni.cncf.io/networks": $networks}} end)),
          spec: {nodeName: $node, terminationGracePeriodSeconds: 1, automountServiceAccountToken: false,
                 containers: [{name: "c", image: $image, imagePullPolicy: "Never"}]}}' |
        kc apply -f - >/dev/null
}

# pod_sandbox NAME: the ID of pod default/NAME's running sandbox (containerd's record).
pod_sandbox() {
    local id
    for id in $(ctr containers ls -q "labels.\"io.kubernetes.pod.name\"==$1,labels.\"io.kubernetes.pod.namespace\"==default,labels.\"io.cri-containerd.kind\"==sandbox"); do
        ctr tasks ls | awk -v id="$id" '$1 == id && $3 == "RUNNING" {f=1} END {exit !f}' && { echo "$id"; return 0; }
    done
    return 1
}

# pod_netns NAME: the network namespace path containerd made for pod default/NAME's running
# sandbox.
pod_netns() {
    local id; id=$(pod_sandbox "$1") || return 1
    ctr containers info "$id" | jq -r '.Spec.linux.namespaces[] | select(.type=="network") | .path'
}

# in_pod NAME CMD...: run CMD in pod default/NAME's network namespace.
in_pod() { local ns; ns=$(pod_netns "$1") && [[ -n $ns ]] && shift && nsenter --net="$ns" "$@"; }

# cni_calls VERB: how many VERB calls the runtime made to wasmcni so far (its log's call lines).
cni_calls() { if [[ -f $WASMCNI_NODE_LOG ]]; then grep -c " CNI $1 container " "$WASMCNI_NODE_LOG" || true; else echo 0; fi; }

# install_wasmcni [CNI_VERSION]: install wasmcni on the node as the README's "Using it" tells an
# admin to: the binary into the CNI bin dir (copied to a temp name and renamed, so a runtime
# never execs a half-written file), its conflist first in the conf dir, the cluster network
# (10-cbr0.conflist, already there) named by path. containerd reads the conf dir again on change.
install_wasmcni() {
    local version=${1:-1.0.0}
    cp "$WASMCNI" "$CNI_BIN_DIR/.wasmcni.tmp" && mv -f "$CNI_BIN_DIR/.wasmcni.tmp" "$CNI_BIN_DIR/wasmcni"
    mkdir -p "$NODE_DIR/wasmcni"
    cat >"$CNI_CONF_DIR/.00-wasmcni.conflist.tmp" <<JSON
{"cniVersion": "$version", "name": "wasmcni", "plugins": [{
  "type": "wasmcni",
  "kubeconfig": "$STATE_DIR/wasmcni.kubeconfig",
  "clusterNetwork": "$CNI_CONF_DIR/10-cbr0.conflist",
  "cniDir": "$NODE_DIR/wasmcni/delegates", "guestCacheDir": "$NODE_DIR/wasmcni/guests",
  "nodeName": "$NODE_NAME",
  "capabilities": {"portMappings": true, "io.kubernetes.cri.pod-annotations": true}
}]}
JSON
    mv -f "$CNI_CONF_DIR/.00-wasmcni.conflist.tmp" "$CNI_CONF_DIR/00-wasmcni.conflist"
}

# wait_pod_ready NAME [SECONDS]: pod default/NAME Ready (containers running) within SECONDS.
wait_pod_ready() { kc wait --for=condition=Ready "pod/$1" --timeout="${2:-90}s" >/dev/null 2>&1; }

# wait_pod_gone NAME [SECONDS]: pod default/NAME deleted (the kubelet stopped its sandbox).
wait_pod_gone() { kc wait --for=delete "pod/$1" --timeout="${2:-90}s" >/dev/null 2>&1; }
