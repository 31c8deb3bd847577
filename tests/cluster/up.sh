#!/usr/bin/env bash
# tests/cluster/up.sh STATE_DIR — start a throwaway Kubernetes control plane for tests:
# etcd + kube-apiserver only (no scheduler, controller-manager or kubelet: pods exist
# as objects only), listening on 127.0.0.1 on free ports, all state in STATE_DIR.
# Applies deploy/crds/*.yaml, deploy/rbac.yaml and deploy/reconciler.yaml and writes kubeconfigs
# (admin, wasmcni, reconciler) + an env file.
# Stop it with tests/cluster/down.sh STATE_DIR. See tests/cluster/README.md.
#
# Env knobs (all optional):
#   WASMCNI_TOOLS_CACHE     cache root for tests/tools/build.sh
#   WASMCNI_TOKEN_DURATION  lifetime of the wasmcni ServiceAccount token (default 24h)
#   WASMCNI_VM_APISERVER    server URL in wasmcni-vm.kubeconfig (default https://10.0.2.100:6443)
#   UP_ETCD_TIMEOUT / UP_APISERVER_TIMEOUT / UP_CRD_TIMEOUT  seconds (120 / 300 / 120)
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
mkdir -p "$1"
STATE=$(cd "$1" && pwd -P)

ETCD_TIMEOUT=${UP_ETCD_TIMEOUT:-120}
APISERVER_TIMEOUT=${UP_APISERVER_TIMEOUT:-300}
CRD_TIMEOUT=${UP_CRD_TIMEOUT:-120}
TOKEN_DURATION=${WASMCNI_TOKEN_DURATION:-24h}
VM_SERVER=${WASMCNI_VM_APISERVER:-https://10.0.2.100:6443}

log() { echo "up.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for f in etcd.pid kube-apiserver.pid; do
    if [[ -f "$STATE/$f" ]] && kill -0 "$(cat "$STATE/$f")" 2>/dev/null; then
        die "$STATE already has a running cluster ($f); run tests/cluster/down.sh $STATE first"
    fi
done

# ---------------------------------------------------------------- tools
"$REPO/tests/tools/build.sh" >&2
TOOLS="$REPO/tests/.tools"
BIN=$(readlink -f "$TOOLS")/bin # resolved: a rebuild does not swap binaries under us
KUBECTL="$TOOLS/bin/kubectl"
for b in etcd kube-apiserver kubectl; do
    [[ -x "$BIN/$b" ]] || die "missing $BIN/$b"
done

# On any failure from here on, stop whatever this script started.
on_exit() {
    local rc=$?
    if [[ $rc -ne 0 ]]; then
        log "failed (exit $rc); stopping what was started; logs kept in $STATE"
        "$HERE/down.sh" "$STATE" >&2 || true
    fi
}
trap on_exit EXIT

# ---------------------------------------------------------------- helpers
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# free_port VAR: a random port in 20000-32767 (below Linux' ephemeral range) that
# nothing listens on and this script has not handed out yet. Another process may
# still take it before we bind: the starts below retry on "address already in use".
USED_PORTS=""
free_port() {
    local p
    for _ in $(seq 1 500); do
        p=$((20000 + RANDOM % 12768))
        if [[ " $USED_PORTS " != *" $p "* ]] && ! port_in_use "$p"; then
            USED_PORTS="$USED_PORTS $p"
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    die "no free port found"
}

tail_log() { log "---- last lines of $1 ----"; tail -n "${2:-40}" "$1" >&2 || true; }

declare -A LOGPOS=()
# start NAME CMD... : run detached (own session, stdin closed), log to STATE/NAME.log,
# pid to STATE/NAME.pid.
start() {
    local name=$1
    shift
    {
        echo
        echo "==== $(date -u +%FT%TZ) up.sh starting: $*"
    } >>"$STATE/$name.log"
    LOGPOS[$name]=$(stat -c %s "$STATE/$name.log")
    setsid "$@" </dev/null >>"$STATE/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

alive() { kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

# did the last start of NAME die because its port was taken?
bind_failed() { tail -c "+$((${LOGPOS[$1]:-0} + 1))" "$STATE/$1.log" | grep -qi "address already in use"; }

# ---------------------------------------------------------------- PKI
PKI="$STATE/pki"
mkdir -p "$PKI"
chmod 700 "$PKI"
if [[ ! -f "$PKI/ca.crt" ]]; then
    log "generating CA, serving cert and service-account key in $PKI"
    (
        cd "$PKI"
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -keyout ca.key -out ca.crt -subj "/CN=wasmcni-test-ca" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -sha256 -keyout apiserver.key -out apiserver.csr \
            -subj "/CN=kube-apiserver" 2>/dev/null
        cat >apiserver.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.2.100,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -sha256 -days 3650 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        rm -f apiserver.csr
        chmod 644 ca.crt apiserver.crt sa.pub
    )
fi
# The API server's client cert for kubelets (logs, exec, port-forward: tests/node/).
if [[ ! -f "$PKI/kubelet-client.crt" ]]; then
    (
        cd "$PKI"
        umask 077
        openssl req -newkey rsa:2048 -nodes -sha256 -keyout kubelet-client.key -out kubelet-client.csr \
            -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >kubelet-client.ext
        openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -sha256 -days 3650 -extfile kubelet-client.ext -out kubelet-client.crt 2>/dev/null
        rm -f kubelet-client.csr
    )
fi
if [[ ! -f "$PKI/tokens.csv" ]]; then
    (umask 077 && echo "$(openssl rand -hex 32),admin,wasmcni-test-admin,\"system:masters\"" >"$PKI/tokens.csv")
fi
ADMIN_TOKEN=$(cut -d, -f1 "$PKI/tokens.csv")

# ---------------------------------------------------------------- etcd
mkdir -p "$STATE/etcd"
chmod 700 "$STATE/etcd"
ETCD_PORT="" ETCD_PEER_PORT=""
for attempt in 1 2 3 4 5; do
    free_port ETCD_PORT
    free_port ETCD_PEER_PORT
    log "starting etcd on 127.0.0.1:$ETCD_PORT (peer $ETCD_PEER_PORT), attempt $attempt"
    start etcd "$BIN/etcd" \
        --name=wasmcni-test \
        --data-dir="$STATE/etcd" \
        --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster="wasmcni-test=http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster-state=new \
        --unsafe-no-fsync \
        --quota-backend-bytes=2147483648 \
        --log-level=warn
    ok=""
    deadline=$((SECONDS + ETCD_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! alive etcd; then break; fi
        if curl -fsS --max-time 5 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'; then
            ok=1
            break
        fi
        sleep 0.5
    done
    [[ -n "$ok" ]] && break
    if ! alive etcd && bind_failed etcd; then
        log "etcd port taken, retrying on other ports"
        rm -f "$STATE/etcd.pid"
        continue
    fi
    tail_log "$STATE/etcd.log"
    die "etcd did not become healthy within ${ETCD_TIMEOUT}s"
done
[[ -n "$ok" ]] || die "etcd: could not bind a free port after 5 attempts"
log "etcd healthy"

# ---------------------------------------------------------------- kube-apiserver
APISERVER_PORT=""
for attempt in 1 2 3 4 5; do
    free_port APISERVER_PORT
    log "starting kube-apiserver on https://127.0.0.1:$APISERVER_PORT, attempt $attempt"
    start kube-apiserver "$BIN/kube-apiserver" \
        --bind-address=127.0.0.1 \
        --advertise-address=127.0.0.1 \
        --secure-port="$APISERVER_PORT" \
        --endpoint-reconciler-type=none \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --cert-dir="$PKI" \
        --tls-cert-file="$PKI/apiserver.crt" \
        --tls-private-key-file="$PKI/apiserver.key" \
        --client-ca-file="$PKI/ca.crt" \
        --kubelet-client-certificate="$PKI/kubelet-client.crt" \
        --kubelet-client-key="$PKI/kubelet-client.key" \
        --kubelet-preferred-address-types=InternalIP,Hostname \
        --token-auth-file="$PKI/tokens.csv" \
        --authorization-mode=Node,RBAC \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$PKI/sa.pub" \
        --service-account-signing-key-file="$PKI/sa.key" \
        --service-cluster-ip-range=10.96.0.0/24 \
        --disable-admission-plugins=ServiceAccount \
        --allow-privileged=true \
        --profiling=false \
        --v=1
    ok=""
    deadline=$((SECONDS + APISERVER_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! alive kube-apiserver; then break; fi
        if [[ "$(curl -sS --max-time 10 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" \
            "https://127.0.0.1:$APISERVER_PORT/readyz" 2>/dev/null)" == ok ]]; then
            ok=1
            break
        fi
        sleep 1
    done
    [[ -n "$ok" ]] && break
    if ! alive kube-apiserver && bind_failed kube-apiserver; then
        log "kube-apiserver port taken, retrying on another port"
        rm -f "$STATE/kube-apiserver.pid"
        continue
    fi
    curl -sS --max-time 10 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" \
        "https://127.0.0.1:$APISERVER_PORT/readyz?verbose" >&2 2>/dev/null || true
    tail_log "$STATE/kube-apiserver.log" 60
    die "kube-apiserver not ready within ${APISERVER_TIMEOUT}s"
done
[[ -n "$ok" ]] || die "kube-apiserver: could not bind a free port after 5 attempts"
log "kube-apiserver ready"

# ---------------------------------------------------------------- kubeconfigs
CA_DATA=$(base64 -w0 "$PKI/ca.crt")
write_kubeconfig() { # file server user token
    (
        umask 077
        cat >"$1.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: wasmcni-test
  cluster:
    server: $2
    certificate-authority-data: $CA_DATA
users:
- name: $3
  user:
    token: $4
contexts:
- name: $3@wasmcni-test
  context:
    cluster: wasmcni-test
    user: $3
current-context: $3@wasmcni-test
EOF
        mv -f "$1.tmp" "$1"
    )
}
write_kubeconfig "$STATE/admin.kubeconfig" "https://127.0.0.1:$APISERVER_PORT" admin "$ADMIN_TOKEN"
export KUBECONFIG="$STATE/admin.kubeconfig"
k() { "$BIN/kubectl" --request-timeout=60s "$@"; }

# The apiserver creates kube-system/default itself, just after it is ready.
for _ in $(seq 1 120); do
    k get namespace kube-system default >/dev/null 2>&1 && break
    sleep 1
done
k get namespace kube-system default >/dev/null || die "namespaces kube-system/default missing"

# ---------------------------------------------------------------- CRDs + RBAC
apply_ok=""
for _ in 1 2 3 4 5; do
    if k apply -f "$REPO/deploy/crds/" >&2 && k apply -f "$REPO/deploy/rbac.yaml" >&2 &&
        k apply -f "$REPO/deploy/reconciler.yaml" >&2; then
        apply_ok=1
        break
    fi
    log "apply failed, retrying in 3s"
    sleep 3
done
[[ -n "$apply_ok" ]] || die "could not apply deploy/crds and deploy/rbac.yaml"
CRDS=$(k get -f "$REPO/deploy/crds/" -o name)
# shellcheck disable=SC2086
k wait --for=condition=Established --timeout="${CRD_TIMEOUT}s" $CRDS >&2 ||
    die "CRDs not Established within ${CRD_TIMEOUT}s"
# discovery of the new groups can lag behind Established a little
for _ in $(seq 1 60); do
    k get ippools.whereabouts.cni.cncf.io,overlappingrangeipreservations.whereabouts.cni.cncf.io,network-attachment-definitions.k8s.cni.cncf.io -A >/dev/null 2>&1 && break
    sleep 1
done

# ---------------------------------------------------------------- wasmcni identity
WASMCNI_TOKEN=$(k create token wasmcni -n kube-system --duration="$TOKEN_DURATION")
[[ -n "$WASMCNI_TOKEN" ]] || die "TokenRequest for kube-system/wasmcni returned nothing"
write_kubeconfig "$STATE/wasmcni.kubeconfig" "https://127.0.0.1:$APISERVER_PORT" wasmcni "$WASMCNI_TOKEN"
write_kubeconfig "$STATE/wasmcni-vm.kubeconfig" "$VM_SERVER" wasmcni "$WASMCNI_TOKEN"
RECONCILER_TOKEN=$(k create token wasmcni-reconciler -n kube-system --duration="$TOKEN_DURATION")
[[ -n "$RECONCILER_TOKEN" ]] || die "TokenRequest for kube-system/wasmcni-reconciler returned nothing"
write_kubeconfig "$STATE/reconciler.kubeconfig" "https://127.0.0.1:$APISERVER_PORT" wasmcni-reconciler "$RECONCILER_TOKEN"

# sanity: the plugin identity has exactly the expected rights
can() { "$BIN/kubectl" --kubeconfig "$STATE/wasmcni.kubeconfig" auth can-i "$@" 2>/dev/null || true; }
[[ "$(can patch pods --subresource=status)" == yes ]] || die "wasmcni SA cannot patch pods/status (RBAC broken)"
[[ "$(can patch pods)" == no ]] || die "wasmcni SA can patch pods (RBAC too broad)"
[[ "$(can create pods)" == no ]] || die "wasmcni SA can create pods (RBAC too broad)"
[[ "$(can patch ippools.whereabouts.cni.cncf.io)" == yes ]] || die "wasmcni SA cannot patch ippools"

# ---------------------------------------------------------------- env
{
    echo "# written by tests/cluster/up.sh $(date -u +%FT%TZ); source it"
    echo "export KUBECONFIG=$STATE/admin.kubeconfig"
    echo "export APISERVER_PORT=$APISERVER_PORT"
    echo "export APISERVER_URL=https://127.0.0.1:$APISERVER_PORT"
    echo "export ETCD_PORT=$ETCD_PORT"
    echo "export KUBECTL=$KUBECTL"
    echo "export TOOLS=$TOOLS"
    echo "export CNI_PLUGINS_DIR=$TOOLS/cni"
    echo "export CNITOOL=$TOOLS/bin/cnitool"
    echo "export CLUSTER_STATE_DIR=$STATE"
    echo "export CLUSTER_CA_FILE=$PKI/ca.crt"
    echo "export WASMCNI_KUBECONFIG=$STATE/wasmcni.kubeconfig"
    echo "export WASMCNI_VM_KUBECONFIG=$STATE/wasmcni-vm.kubeconfig"
    echo "export RECONCILER_KUBECONFIG=$STATE/reconciler.kubeconfig"
} >"$STATE/env.tmp"
mv -f "$STATE/env.tmp" "$STATE/env"

trap - EXIT
log "cluster up: https://127.0.0.1:$APISERVER_PORT (etcd 127.0.0.1:$ETCD_PORT); source $STATE/env"
echo "$STATE/env"
