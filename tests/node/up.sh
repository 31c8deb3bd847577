#!/usr/bin/env bash
# tests/node/up.sh NODE_DIR — start a real Kubernetes node in the current network namespace:
# containerd + runc (Debian's), a kubelet, the scheduler and the controller manager
# (tests/tools/node, the pinned k8s.io/kubernetes),
# the locally built pause image, CNI conf and bin dirs of its own. Pods applied with kubectl
# reach the CNI plugin through kubelet → CRI → containerd → libcni, as on a real node.
#
# Run it inside a network namespace of its own (tests/node/run.sh enters one with
# `nsenter --net`, not `ip netns exec`: that remounts /sys and hides the cgroup mounts the
# kubelet and runc need), with a control plane's env sourced (tests/cluster/up.sh: KUBECONFIG,
# APISERVER_URL, CLUSTER_STATE_DIR). Everything the node writes is under NODE_DIR, except what
# containerd 1.6 and runc keep at fixed paths (shim sockets under /run/containerd/s, the pod
# netns under /var/run/netns/cni-*, the cgroups); tests/node/down.sh removes what they made.
#
# Writes NODE_DIR/env (NODE_NAME, CONTAINERD_SOCK, CRICTL, CNI_CONF_DIR, CNI_BIN_DIR, ...).
# The CNI conf dir starts empty but for the cluster network's conf (10-cbr0.conflist, a bridge +
# host-local network on cni0, 10.244.1.0/24): installing wasmcni there is the caller's job, as
# it is an admin's. Stop with tests/node/down.sh NODE_DIR.
#
# Env: NODE_NAME (default node-1), NODE_IP (default 10.99.0.2), UP_NODE_TIMEOUT (120 s).
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 NODE_DIR" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
: "${KUBECONFIG:?source a cluster env (tests/cluster/up.sh) first}" "${APISERVER_URL:?}" "${CLUSTER_STATE_DIR:?}"
mkdir -p "$1"
D=$(cd "$1" && pwd -P)
NODE_NAME=${NODE_NAME:-node-1}
NODE_IP=${NODE_IP:-10.99.0.2}
TIMEOUT=${UP_NODE_TIMEOUT:-120}
log() { echo "node/up.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for p in containerd containerd-shim-runc-v2 runc ctr; do
    command -v "$p" >/dev/null || die "$p not installed (tests/setup.sh installs Debian's containerd and runc)"
done

bash "$REPO/tests/tools/node/build.sh" >&2
NODE_BIN=$(readlink -f "$REPO/tests/.node")/bin
TOOLS_BIN=$(readlink -f "$REPO/tests/.tools")
KUBECTL=$TOOLS_BIN/bin/kubectl

on_exit() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        log "failed (exit $rc); stopping what was started; logs in $D"
        for f in containerd kubelet kube-controller-manager kube-scheduler; do [[ -f $D/$f.log ]] && { log "---- $f.log"; tail -n 30 "$D/$f.log" >&2; }; done
        "$HERE/down.sh" "$D" >&2 || true
    fi
}
trap on_exit EXIT

# ---------------------------------------------------------------- the node's links
# eth0 carries the node IP (the kubelet refuses a loopback one); eth1 is the master of the
# seed's macvlan networks. Both are veths whose peers stay in this namespace: nothing leaves it.
for l in eth0 eth1; do
    ip link show "$l" >/dev/null 2>&1 && continue
    ip link add "$l" type veth peer name "${l}p"
    ip link set "$l" up; ip link set "${l}p" up
done
ip addr replace "$NODE_IP/24" dev eth0
ip addr replace "${NODE_IP%.*}.1/24" dev eth0p 2>/dev/null || true
ip route replace default via "${NODE_IP%.*}.1" dev eth0 2>/dev/null || true
ip link set lo up

# ---------------------------------------------------------------- CNI dirs
CNI_BIN_DIR=$D/cni/bin CNI_CONF_DIR=$D/cni/net.d
mkdir -p "$CNI_BIN_DIR" "$CNI_CONF_DIR" "$D/cni/cache"
for p in "$TOOLS_BIN"/cni/*; do ln -sfn "$p" "$CNI_BIN_DIR/"; done
cat >"$CNI_CONF_DIR/10-cbr0.conflist" <<JSON
{"cniVersion":"1.0.0","name":"cbr0","plugins":[
  {"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"dataDir":"$D/cni/host-local"}},
  {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON

# ---------------------------------------------------------------- containerd
CONTAINERD_SOCK=$D/containerd/containerd.sock
PAUSE_IMAGE=localhost/wasmcni-pause:test
mkdir -p "$D/containerd"
cat >"$D/containerd/config.toml" <<EOF
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # no CAP_SYS_RESOURCE here: a container may not get a lower oom_score_adj than containerd's
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
EOF
log "starting containerd ($CONTAINERD_SOCK)"
# The plugins containerd execs inherit its environment (libcni appends the CNI_* variables):
# wasmcni's log goes to the node dir.
# Each daemon is started by a script of its own, so a scenario can start it again after a
# "reboot" (tests/node/004).
{
    echo '#!/usr/bin/env bash'
    printf 'WASMCNI_LOG=%q WASMCNI_LOG_FILE=%q setsid containerd --config %q' \
        "${WASMCNI_LOG:-info}" "$D/wasmcni.log" "$D/containerd/config.toml"
    printf ' >>%q 2>&1 </dev/null &\n' "$D/containerd.log"
    printf 'echo $! >%q\n' "$D/containerd.pid"
} >"$D/start-containerd.sh"
bash "$D/start-containerd.sh"
CTR=(ctr --address "$CONTAINERD_SOCK" -n k8s.io)
for _ in $(seq 1 $((TIMEOUT * 10))); do
    "${CTR[@]}" version >/dev/null 2>&1 && break
    kill -0 "$(cat "$D/containerd.pid")" 2>/dev/null || die "containerd exited"
    sleep 0.1
done
"${CTR[@]}" version >/dev/null || die "containerd did not answer in ${TIMEOUT}s"

# The pause image, packed from the pinned pause binary; imported, never pulled.
python3 "$REPO/deploy/oci-image.py" "$D/pause.tar" "$PAUSE_IMAGE" \
    --add "$NODE_BIN/pause=/pause" --entrypoint '["/pause"]' >&2
"${CTR[@]}" images import "$D/pause.tar" >&2

# ---------------------------------------------------------------- scheduler, controllers
# So that what an admin applies works unchanged: a DaemonSet gets its pods (daemonset
# controller, then the scheduler binds them), namespaces get their ServiceAccounts and the
# kube-root-ca.crt ConfigMap, a new node loses its not-ready taint. Admin credentials: this is a
# test control plane, and neither runs on a node of a real cluster.
for c in kube-controller-manager kube-scheduler; do
    extra=()
    [[ $c == kube-controller-manager ]] && extra=(--root-ca-file "$CLUSTER_STATE_DIR/pki/ca.crt" --controllers '*')
    log "starting $c"
    setsid "$NODE_BIN/$c" --kubeconfig "$KUBECONFIG" --leader-elect=false --secure-port=0 "${extra[@]}" --v=1 \
        >>"$D/$c.log" 2>&1 </dev/null &
    echo $! >"$D/$c.pid"
done

# ---------------------------------------------------------------- kubelet
K=$D/kubelet
mkdir -p "$K/pki" "$D/pod-logs"
if [[ ! -f $K/pki/node.crt ]]; then
    (
        umask 077
        openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$K/pki/node.key" -out "$K/pki/node.csr" \
            -subj "/O=system:nodes/CN=system:node:$NODE_NAME" 2>/dev/null
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$K/pki/node.ext"
        openssl x509 -req -in "$K/pki/node.csr" -CA "$CLUSTER_STATE_DIR/pki/ca.crt" \
            -CAkey "$CLUSTER_STATE_DIR/pki/ca.key" -CAcreateserial -sha256 -days 30 \
            -extfile "$K/pki/node.ext" -out "$K/pki/node.crt" 2>/dev/null
    )
fi
KCFG=(--kubeconfig "$K/kubeconfig")
"$KUBECTL" "${KCFG[@]}" config set-cluster node --server "$APISERVER_URL" \
    --certificate-authority "$CLUSTER_STATE_DIR/pki/ca.crt" --embed-certs >/dev/null
"$KUBECTL" "${KCFG[@]}" config set-credentials "system:node:$NODE_NAME" \
    --client-certificate "$K/pki/node.crt" --client-key "$K/pki/node.key" --embed-certs >/dev/null
"$KUBECTL" "${KCFG[@]}" config set-context node --cluster node --user "system:node:$NODE_NAME" >/dev/null
"$KUBECTL" "${KCFG[@]}" config use-context node >/dev/null
# What this machine needs that a real node would not (FACTS.md): cgroup v1 managed by cgroupfs
# with no systemd, no QoS cgroup tree, no node-allocatable enforcement, swap allowed.
cat >"$K/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
podLogsDir: $D/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $CLUSTER_STATE_DIR/pki/ca.crt}
authorization: {mode: AlwaysAllow}
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
clusterDNS: []
resolvConf: ""
# the machine's disk may be fuller than a node's default thresholds allow
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
EOF
log "starting kubelet $NODE_NAME"
{
    echo '#!/usr/bin/env bash'
    printf 'setsid'
    printf ' %q' "$NODE_BIN/kubelet" --config "$K/config.yaml" "${KCFG[@]}" --root-dir "$K/root" \
        --cert-dir "$K/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=2
    printf ' >>%q 2>&1 </dev/null &\n' "$D/kubelet.log"
    printf 'echo $! >%q\n' "$D/kubelet.pid"
} >"$D/start-kubelet.sh"
bash "$D/start-kubelet.sh"
for _ in $(seq 1 "$TIMEOUT"); do
    [[ $("$KUBECTL" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]] && break
    for c in kubelet kube-controller-manager kube-scheduler; do
        kill -0 "$(cat "$D/$c.pid")" 2>/dev/null || die "$c exited"
    done
    sleep 1
done
[[ $("$KUBECTL" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]] ||
    die "node $NODE_NAME not Ready in ${TIMEOUT}s"

cat >"$D/env" <<EOF
export NODE_DIR=$D
export NODE_NAME=$NODE_NAME
export NODE_IP=$NODE_IP
export CONTAINERD_SOCK=$CONTAINERD_SOCK
export CNI_CONF_DIR=$CNI_CONF_DIR
export CNI_BIN_DIR=$CNI_BIN_DIR
export PAUSE_IMAGE=$PAUSE_IMAGE
export NODE_BIN=$NODE_BIN
export WASMCNI_NODE_LOG=$D/wasmcni.log
EOF
trap - EXIT
log "node $NODE_NAME Ready"
echo "$D/env"
