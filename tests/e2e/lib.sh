# tests/e2e/lib.sh — helpers sourced by the e2e scenarios (tests/e2e/NNN-*.sh).
#
# Scenarios run inside a "node" network namespace made by tests/e2e/run.sh, with the
# throwaway control plane (tests/cluster/) listening on that namespace's loopback: nothing
# here touches the machine's own network namespace. wasmcni is driven by cnitool (libcni),
# exactly as a runtime would drive it.
#
# Needs (from run.sh / with-cluster.sh): REPO, TOOLS, KUBECONFIG (admin), KUBECTL, STATE_DIR
# (the cluster state: wasmcni.kubeconfig), WASMCNI (the binary), E2E_RESULTS (a file).

set -uo pipefail
: "${REPO:?}" "${TOOLS:?}" "${KUBECTL:?}" "${WASMCNI:?}" "${E2E_RESULTS:?}"

# the scenario: the outermost script (a tier's own lib.sh may source this one)
SCENARIO=$(basename "${BASH_SOURCE[-1]:-$0}" .sh)
WORK=$(mktemp -d "/tmp/wasmcni-e2e.$SCENARIO.XXXXXX")
CNI_BIN="$WORK/bin"            # CNI_PATH: wasmcni + the reference plugins
NETDIR="$WORK/net.d"           # NETCONFPATH for cnitool
mkdir -p "$CNI_BIN" "$NETDIR"
ln -s "$WASMCNI" "$CNI_BIN/wasmcni"
for p in "$TOOLS"/cni/*; do ln -s "$p" "$CNI_BIN/"; done
CLEANUPS=()

log() { echo "[$SCENARIO] $*" >&2; }
pass() { echo "PASS $SCENARIO: $1" | tee -a "$E2E_RESULTS" >&2; }
fail() { echo "FAIL $SCENARIO: $1${2:+ — $2}" | tee -a "$E2E_RESULTS" >&2; }
# check NAME CMD...: pass when CMD succeeds.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi; }
# check_eq NAME WANT GOT (WANT must not be empty: an empty expectation means a precondition failed)
check_eq() {
    if [[ -z "$2" ]]; then fail "$1" "nothing to compare with (an earlier step failed), got [$3]"
    elif [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1" "want [$2], got [$3]"; fi
}
# check_grep NAME PATTERN TEXT: TEXT matches the extended regex PATTERN (TEXT shown when not).
check_grep() { if grep -qE -- "$2" <<<"$3"; then pass "$1"; else fail "$1" "no /$2/ in [$(head -c 400 <<<"$3")]"; fi; }
# check_empty NAME GOT
check_empty() { if [[ -z "$2" ]]; then pass "$1"; else fail "$1" "want nothing, got [$2]"; fi; }
# check_json NAME FILE FILTER [JQ_ARG...]: FILE holds JSON and FILTER is true of it (JQ_ARGs such
# as `--arg name value` bind the filter's variables).
check_json() {
    local name=$1 file=$2 filter=$3; shift 3
    # Slurped, so empty input is false (jq -e alone exits 0 when it reads nothing).
    if jq -es "$@" "length == 1 and (.[0] | $filter)" "$file" >/dev/null 2>&1; then pass "$name"; else fail "$name" "$(head -c 300 "$file" 2>/dev/null) is not $filter"; fi
}

source "$REPO/tests/cluster/objects.sh"   # kc, apply_nad, make_pod
on_exit() { local i; for ((i=${#CLEANUPS[@]}-1; i>=0; i--)); do eval "${CLEANUPS[$i]}" >/dev/null 2>&1; done; rm -rf "$WORK"; }
trap on_exit EXIT
defer() { CLEANUPS+=("$*"); }

# A master interface standing in for the node's eth1: a veth whose peer stays in this namespace.
make_master() {
    local name=$1
    ip link add "$name" type veth peer name "${name}p" && ip link set "$name" up && ip link set "${name}p" up
    defer "ip link del $name"
}

# new_netns NAME: a fresh pod network namespace (removed at exit).
new_netns() {
    # A run killed mid-way can leave the name behind (a plain file once its mount namespace is
    # gone): clear it first.
    ip netns del "$1" 2>/dev/null; rm -f "/var/run/netns/$1"
    ip netns add "$1" && ip -n "$1" link set lo up
    defer "ip netns del $1"
}

# The cluster network's bridge, made once per node namespace with a MAC of its own. A bridge
# the plugin makes takes the lowest MAC of its ports, so it changes as pods join, and the
# bridge plugin's CHECK of an earlier pod then fails ("Bridge interface cni0 Mac doesn't
# match": seen when 014's 12 concurrent ADDs made cni0).
if ! ip link show cni0 >/dev/null 2>&1; then
    ip link add cni0 type bridge 2>/dev/null && ip link set cni0 address 02:00:00:0c:00:01 && ip link set cni0 up
fi

# The node's primary conflist: wasmcni with a bridge + host-local cluster network.
# write_wasmcni_conf [CNI_VERSION] [EXTRA_JSON_FIELDS]
write_wasmcni_conf() {
    local version=${1:-1.0.0} extra=${2:-}
    cat > "$WORK/cluster.conflist" <<JSON
{"cniVersion":"1.0.0","name":"cbr0","plugins":[
  {"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"dataDir":"$WORK/host-local"}}]}
JSON
    cat > "$NETDIR/00-wasmcni.conflist" <<JSON
{"cniVersion":"$version","name":"wasmcni","plugins":[{"type":"wasmcni",
  "kubeconfig":"$STATE_DIR/wasmcni.kubeconfig",
  "clusterNetwork":"$WORK/cluster.conflist",
  "cniDir":"$WORK/delegates","guestCacheDir":"$WORK/guests",
  "nodeName":"node-1"${extra:+,$extra}}]}
JSON
}

# cni VERB NETNS POD [UID]: cnitool VERB wasmcni /var/run/netns/NETNS, as containerd would call
# it for pod default/POD. Prints cnitool's output; returns its status. Exec mode (the call runs
# in wasmcni's own process) unless the scenario exports WASMCNI_DAEMON_SOCKET (018-daemon).
cni() {
    local verb=$1 ns=$2 pod=$3 uid=${4:-uid-$3}
    NETCONFPATH=$NETDIR CNI_PATH=$CNI_BIN CNI_IFNAME=eth0 \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$pod;K8S_POD_INFRA_CONTAINER_ID=infra-$pod;K8S_POD_UID=$uid" \
    WASMCNI_LOG_FILE="$WORK/wasmcni.log" WASMCNI_DAEMON_SOCKET=${WASMCNI_DAEMON_SOCKET-} \
        "$TOOLS/bin/cnitool" "$verb" wasmcni "/var/run/netns/$ns"
}

# cni_raw VERB NETNS NAMESPACE POD [CONFLIST]: wasmcni exec'd as libcni execs it (the list's
# first plugin with its name and cniVersion injected), for pod NAMESPACE/POD. Prints wasmcni's
# stdout — the error JSON itself, which cnitool would turn into prose; returns its status.
cni_raw() {
    local conf; conf=$(jq -c '.plugins[0] + {name: .name, cniVersion: .cniVersion}' "${5:-$NETDIR/00-wasmcni.conflist}")
    printf '%s' "$conf" | env -i PATH="$PATH" CNI_PATH="$CNI_BIN" CNI_COMMAND="$1" CNI_CONTAINERID="raw-$4" \
        CNI_IFNAME=eth0 CNI_NETNS="/var/run/netns/$2" \
        CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=$3;K8S_POD_NAME=$4;K8S_POD_UID=uid-$4" \
        WASMCNI_LOG_FILE="$WORK/wasmcni.log" "$WASMCNI" 2>>"$WORK/stderr"
}

# api_write TOKEN METHOD PATH BODY: one request to the API server as TOKEN (no GET first, as
# kubectl patch would make); prints the HTTP status code.
api_write() {
    curl -sS -o "$WORK/api-answer.json" -w '%{http_code}' --cacert "$STATE_DIR/pki/ca.crt" \
        -H "Authorization: Bearer $1" -H 'Content-Type: application/merge-patch+json' \
        -X "$2" "$APISERVER_URL$3" --data-binary "$4"
}

# The seed's NetworkAttachmentDefinition, for a link of TYPE (ipvlan|macvlan) on MASTER.
apply_seed_nad() {
    local name=$1 type=$2 master=$3 range=${4:-172.16.1.0/24}
    local mode; [[ $type == ipvlan ]] && mode=l2 || mode=bridge
    apply_nad "$name" "{\"cniVersion\":\"0.3.1\",\"plugins\":[{\"type\":\"$type\",\"master\":\"$master\",\"mode\":\"$mode\",\"ipam\":{\"type\":\"whereabouts\",\"range\":\"$range\"}}]}"
}

# orips_matching REGEX: "name podref" of each ORIP in kube-system whose name matches REGEX (from
# the start), sorted.
orips_matching() {
    kc -n kube-system get overlappingrangeipreservations.whereabouts.cni.cncf.io -o json |
        jq -r --arg rx "^($1)" '.items[]|select(.metadata.name|test($rx))|"\(.metadata.name) \(.spec.podref)"' | sort
}

# delete_orips REGEX: delete the ORIPs in kube-system whose names match REGEX (from the start).
# (kubectl itself under xargs: kc is a shell function, which xargs cannot run.)
delete_orips() {
    kc -n kube-system get overlappingrangeipreservations.whereabouts.cni.cncf.io -o name |
        grep -E "/($1)" | xargs -r "$KUBECTL" -n kube-system delete >/dev/null
}

# The IPPool's allocations as compact JSON ({} when the pool does not exist).
pool_allocations() {
    kc -n kube-system get ippools.whereabouts.cni.cncf.io "$1" -o jsonpath='{.spec.allocations}' 2>/dev/null | jq -cS '. // {}' 2>/dev/null || echo '{}'
}

# has_ipvlan: whether this kernel makes ipvlan links (probed on a throwaway veth).
has_ipvlan() {
    local ok=1
    if ip link add wcni-probe type veth peer name wcni-probep 2>/dev/null &&
       ip link add link wcni-probe name wcni-probe-ipv type ipvlan mode l2 2>/dev/null; then
        ok=0
    fi
    ip link del wcni-probe 2>/dev/null
    return $ok
}

# in_kernel_vm WHAT SCRIPT [ARGS...]: run tests/e2e/SCRIPT (it sources lib.sh as usual) inside the
# kernel VM (tests/vm/) with the tools, the binary and this cluster's kubeconfigs (the apiserver
# through qemu's restricted guestfwd at 10.0.2.100:6443), and fold its PASS/FAIL lines into this
# run. A VM that cannot start, or a script that reports nothing, is a failure, never a skip.
in_kernel_vm() {
    local what=$1 script=$2; shift 2
    local share=$WORK/share
    mkdir -p "$share/tools/bin" "$share/tools/cni" "$share/state"
    cp "$TOOLS/bin/cnitool" "$TOOLS/bin/kubectl" "$share/tools/bin/"
    cp "$TOOLS"/cni/* "$share/tools/cni/"
    cp "$WASMCNI" "$share/wasmcni"
    cp "$STATE_DIR/wasmcni-vm.kubeconfig" "$share/state/wasmcni.kubeconfig"
    sed "s#server: https://127.0.0.1:[0-9]*#server: https://10.0.2.100:6443#" "$KUBECONFIG" > "$share/state/admin.kubeconfig"
    cp -r "$REPO/tests/e2e" "$share/e2e"
    mkdir -p "$share/tests/cluster" && cp "$REPO/tests/cluster/objects.sh" "$share/tests/cluster/"
    {
        echo '#!/bin/bash'
        echo 'cd /mnt/host/files'
        # Executables run from the guest's RAM: the 9p share has no page cache, so an exec from
        # it reads the whole binary again each time (wasmcni: 1.5-2.5 s under TCG, 0.2 s from RAM).
        echo 'mkdir -p /opt/files && cp -r tools wasmcni /opt/files/'
        echo 'export REPO=/mnt/host/files TOOLS=/opt/files/tools KUBECTL=/opt/files/tools/bin/kubectl \'
        echo '    WASMCNI=/opt/files/wasmcni STATE_DIR=/mnt/host/files/state \'
        echo '    KUBECONFIG=/mnt/host/files/state/admin.kubeconfig E2E_RESULTS=/tmp/results'
        echo 'mkdir -p /var/run/netns'
        printf 'bash ./e2e/%q' "$script"; printf ' %q' "$@"; echo
    } > "$share/run.sh"
    chmod +x "$share/run.sh"
    mv "$share" "$WORK/files"
    local console=$WORK/console.log rc
    VM_APISERVER_PORT=$APISERVER_PORT VM_TIMEOUT=${VM_TIMEOUT:-1200} \
        bash "$REPO/tests/vm/run-in-vm.sh" "$WORK/files/run.sh" "$WORK/files" > "$console" 2>&1
    rc=$?
    grep -E '^(PASS|FAIL) ' "$console" >> "$E2E_RESULTS"
    grep -E '^(PASS|FAIL) |^\[|^Error' "$console" >&2
    if [[ $rc -ne 0 ]] || ! grep -q '^PASS ' "$console"; then
        fail "$what in the kernel VM ran" "run-in-vm.sh exited $rc; console: $(tail -n 20 "$console")"
    fi
}
