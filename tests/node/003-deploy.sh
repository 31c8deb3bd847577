#!/usr/bin/env bash
# tests/node/003-deploy.sh — wasmcni installed on the real node the way README "Install on a
# cluster" tells an admin to: the image built offline by deploy/image.sh and imported into
# containerd, `kubectl apply -k` of an overlay of deploy/ (the README's overlay for a node whose
# CNI dirs are not /etc/cni/net.d and /opt/cni/bin: this node's are its own). The DaemonSet's pod
# puts the binary, the identity and the conflist on the node; the seed's NAD and Pods then work
# through what it wrote; the kubelet's token rotation reaches the node's copy; a rolling update
# to a new binary replaces it atomically; the README's uninstall leaves the node's own CNI
# config exactly as it was.
source "$(dirname "$0")/lib.sh"

# The node as its network plugin left it: only the cluster network's conf. (001 and 002
# installed wasmcni by hand; that goes first.)
rm -f "$CNI_CONF_DIR/00-wasmcni.conflist" "$CNI_BIN_DIR/wasmcni"
cbr0_sum=$(sha256sum <"$CNI_CONF_DIR/10-cbr0.conflist")
IMAGE=localhost/wasmcni:$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)
NODE_KC=$CNI_CONF_DIR/wasmcni.d/wasmcni.kubeconfig

# ---------------------------------------------------------------- the image
check "deploy/image.sh packs the binary under test as $IMAGE" \
    bash "$REPO/deploy/image.sh" "$WASMCNI" "$WORK/wasmcni.tar" "$IMAGE"
check "ctr imports the archive into containerd's k8s.io namespace" ctr images import "$WORK/wasmcni.tar"
check_grep "containerd lists the image" "^$IMAGE\$" "$(ctr images ls -q)"

# ---------------------------------------------------------------- kubectl apply -k
# README "Install on a cluster", other CNI dirs: the ConfigMap's two dirs and the two hostPaths.
# Beyond the README's overlay, only what a test needs: the API server's address as this node
# reaches it (no kube-proxy here for the in-cluster ClusterIP), the delegate cache and guest
# cache under the node's dir, and a token check every second (the kubelet's own check, every
# syncFrequency, would otherwise race the test's rotation).
mkdir -p "$WORK/overlay"
# kustomize takes a base by relative path only.
base=$(realpath --relative-to="$WORK/overlay" "$REPO/deploy")
cat >"$WORK/overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- $base
patches:
- patch: |
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: wasmcni-node-config, namespace: kube-system}
    data:
      cniBinDir: $CNI_BIN_DIR
      cniConfDir: $CNI_CONF_DIR
      apiServer: $APISERVER_URL
      node.json: |
        {"cniDir": "$NODE_DIR/wasmcni/delegates", "guestCacheDir": "$NODE_DIR/wasmcni/guests"}
- patch: |
    apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: wasmcni, namespace: kube-system}
    spec:
      template:
        spec:
          volumes:
          - {name: cni-bin, hostPath: {path: $CNI_BIN_DIR}}
          - {name: cni-conf, hostPath: {path: $CNI_CONF_DIR}}
- target: {kind: DaemonSet, name: wasmcni}
  patch: |
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --refresh-every=1}
# The reconciler on the host network with the API server's loopback address: no kube-proxy
# here, so the in-cluster ClusterIP leads nowhere.
- patch: |
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: wasmcni-reconciler, namespace: kube-system}
    spec:
      template:
        spec:
          hostNetwork: true
          containers:
          - name: reconcile
            env:
            - {name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}
            - {name: KUBERNETES_SERVICE_PORT, value: "$APISERVER_PORT"}
YAML
defer "kc delete -n kube-system daemonset wasmcni --ignore-not-found --cascade=foreground --timeout=60s"
defer "kc delete -n kube-system deployment wasmcni-reconciler --ignore-not-found --cascade=foreground --timeout=60s"
check "kubectl apply -k (an overlay of deploy/) is accepted" kc apply -k "$WORK/overlay"
check "the DaemonSet's pod is Running on the node (its init container installed)" kc -n kube-system rollout status ds/wasmcni --timeout=120s
ds_pod() { kc -n kube-system get pod -l app.kubernetes.io/name=wasmcni -o json | jq -r '[.items[]|select(.metadata.deletionTimestamp==null)][0].metadata.name'; }
pod1=$(ds_pod)
check_grep "its log says what it installed" "00-wasmcni.conflist at cniVersion 1.0.0, cluster network $CNI_CONF_DIR/10-cbr0.conflist, binary written" \
    "$(kc -n kube-system logs "$pod1" -c install)"

check "the binary in the CNI bin dir is the image's" cmp -s "$WASMCNI" "$CNI_BIN_DIR/wasmcni"
jq . "$CNI_CONF_DIR/00-wasmcni.conflist" >"$WORK/conflist.json" 2>&1
check_json "the conflist names the cluster network found in the conf dir, at its cniVersion, with its capabilities" "$WORK/conflist.json" \
    '.cniVersion=="1.0.0" and (.plugins|length)==1 and .plugins[0].type=="wasmcni" and .plugins[0].clusterNetwork==$cbr0
       and .plugins[0].kubeconfig==$kc and .plugins[0].nodeName==$node and .plugins[0].capabilities=={"portMappings":true}' \
    --arg cbr0 "$CNI_CONF_DIR/10-cbr0.conflist" --arg kc "$NODE_KC" --arg node "$NODE_NAME"
check_eq "the identity dir and the token are root's only" "700 600" \
    "$(stat -c %a "$CNI_CONF_DIR/wasmcni.d") $(stat -c %a "$CNI_CONF_DIR/wasmcni.d/token")"
# The kubelet's projected token of the DaemonSet's pod, on the node.
projected_token() {
    local uid; uid=$(kc -n kube-system get pod "$1" -o jsonpath='{.metadata.uid}')
    echo "$NODE_DIR/kubelet/root/pods/$uid/volumes/kubernetes.io~projected/token/token"
}
check "the node's token is the kubelet's projected token of the pod" cmp -s "$(projected_token "$pod1")" "$CNI_CONF_DIR/wasmcni.d/token"
whoami() { "$KUBECTL" --kubeconfig "$NODE_KC" auth whoami -o json 2>&1; }
whoami >"$WORK/whoami.json"
check_json "the node's kubeconfig authenticates as the wasmcni ServiceAccount, bound to the DaemonSet's pod" "$WORK/whoami.json" \
    '.status.userInfo.username=="system:serviceaccount:kube-system:wasmcni"
       and .status.userInfo.extra["authentication.kubernetes.io/pod-name"]==[$pod]' --arg pod "$pod1"

check "the reconciler's Deployment becomes available (in-cluster identity)" \
    kc -n kube-system rollout status deployment/wasmcni-reconciler --timeout=120s
leader_is_a_replica() {
    local holder replicas
    for _ in $(seq 1 60); do
        holder=$(kc -n kube-system get lease wasmcni-reconciler -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)
        replicas=$(kc -n kube-system get pod -l app.kubernetes.io/name=wasmcni-reconciler -o jsonpath='{.items[*].metadata.name}')
        [[ -n $holder && " $replicas " == *" $holder "* ]] && return 0
        sleep 1
    done
    echo "holder [$holder], replicas [$replicas]" >&2; return 1
}
check "one of its replicas holds the Lease kube-system/wasmcni-reconciler" leader_is_a_replica

# ---------------------------------------------------------------- the seed's guide through it
apply_seed_nad seed-macvlan macvlan eth1
POOL=172.16.1.0-24
before=$(pool_allocations $POOL)
adds0=$(cni_calls ADD)
defer "kc delete pod dep-a dep-b dep-c --ignore-not-found --wait=false"
node_pod dep-a "default/seed-macvlan"
node_pod dep-b "default/seed-macvlan"
check "pod dep-a becomes Ready through the installed conflist" wait_pod_ready dep-a
check "pod dep-b becomes Ready" wait_pod_ready dep-b
check_eq "containerd called the installed wasmcni's ADD once per pod" 2 $(( $(cni_calls ADD) - adds0 ))
status_of() { kc get pod "$1" -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}'; }
status_of dep-a >"$WORK/status-a.json"
check_json "network-status (written with the DaemonSet's token): cbr0 on eth0, the NAD on net1" "$WORK/status-a.json" \
    'length==2 and .[0].name=="cbr0" and .[0].default==true and .[1].name=="default/seed-macvlan" and .[1].interface=="net1"
       and (.[1].ips[0]|startswith("172.16.1."))'
kc get pod dep-a -o json --show-managed-fields >"$WORK/pod-a.json"
check_json "network-status was written through pods/status, which deploy/network-status-policy.yaml guards" "$WORK/pod-a.json" \
    '[.metadata.managedFields[]|select(.subresource=="status")|.fieldsV1["f:metadata"]["f:annotations"]|objects|has("f:k8s.v1.cni.cncf.io/network-status")]|any'
check "the policy is in force (applied by apply -k)" kc get validatingadmissionpolicybinding wasmcni-network-status -o name
ip_b=$(status_of dep-b | jq -r '.[1].ips[0]')
check "pod dep-a reaches pod dep-b over net1" in_pod dep-a ping -c 2 -W 2 -I net1 "$ip_b"

# ---------------------------------------------------------------- token rotation
# The kubelet rotates a projected token at 80 % of its life (here 3607 s: in 48 min). The test
# rotates it the way the kubelet does, by writing a new valid token into the pod's volume: a
# token bound to a Secret, so that deleting the Secret revokes it.
kc -n kube-system create secret generic wasmcni-rotation >/dev/null
rotated=$(kc -n kube-system create token wasmcni --bound-object-kind Secret --bound-object-name wasmcni-rotation --duration 10m)
kubelet_token=$(cat "$(projected_token "$pod1")")
printf %s "$rotated" >"$(readlink -f "$(projected_token "$pod1")")"
node_token_is() { [[ -n $1 ]] || return 1; for _ in $(seq 1 "$2"); do [[ $(cat "$CNI_CONF_DIR/wasmcni.d/token") == "$1" ]] && return 0; sleep 0.2; done; return 1; }
check "a rotated token reaches the node's copy within seconds" node_token_is "$rotated" 25
whoami >"$WORK/whoami-rotated.json"
check_json "the node's kubeconfig now authenticates with the rotated token (bound to the Secret, not the pod)" "$WORK/whoami-rotated.json" \
    '.status.userInfo.username=="system:serviceaccount:kube-system:wasmcni"
       and (.status.userInfo.extra["authentication.kubernetes.io/pod-name"]==null)'
# The kubelet writes its own token back on its next volume sync (every syncFrequency, 10 s on
# this node): that rewrite is a rotation too, and reaches the node.
check "the kubelet's rewrite of its token reaches the node's copy" node_token_is "$kubelet_token" 150
kc -n kube-system delete secret wasmcni-rotation >/dev/null
node_pod dep-c "default/seed-macvlan"
check "with the rotated token revoked, a new pod becomes Ready" wait_pod_ready dep-c
check_eq "with its extra network (wasmcni read the NAD and wrote the status with the kubelet's token)" \
    "default/seed-macvlan" "$(status_of dep-c | jq -r '.[1].name')"

# ---------------------------------------------------------------- upgrade by rolling update
# A new binary (the same program with bytes appended: a new image digest, a new file) rolled out
# with `kubectl set image`, as an admin upgrades: the DaemonSet replaces its pod, the new one
# installs the new binary by rename, running pods keep their networks.
cat "$WASMCNI" <(printf 'upgrade\n') >"$WORK/wasmcni-next" && chmod +x "$WORK/wasmcni-next"
check "deploy/image.sh packs the next version" bash "$REPO/deploy/image.sh" "$WORK/wasmcni-next" "$WORK/wasmcni-next.tar" "$IMAGE-next"
check "ctr imports it" ctr images import "$WORK/wasmcni-next.tar"
check "kubectl set image rolls the DaemonSet to it" kc -n kube-system set image ds/wasmcni "install=$IMAGE-next" "keep-fresh=$IMAGE-next"
check "the rollout completes" kc -n kube-system rollout status ds/wasmcni --timeout=120s
pod2=$(ds_pod)
check "the new pod is not the old one" test "$pod2" != "$pod1"
check_grep "the new pod wrote the new binary" "binary written" "$(kc -n kube-system logs "$pod2" -c install)"
check_grep "its keep-fresh container found everything in place" "binary unchanged" "$(kc -n kube-system logs "$pod2" -c keep-fresh)"
check "the CNI bin dir holds the new binary" cmp -s "$WORK/wasmcni-next" "$CNI_BIN_DIR/wasmcni"
check_empty "no temp file left in the bin dir or the conf dir" "$(ls -A "$CNI_BIN_DIR" "$CNI_CONF_DIR" | grep '\.tmp\.' || true)"
check "the node's token is now the new pod's" cmp -s "$(projected_token "$pod2")" "$CNI_CONF_DIR/wasmcni.d/token"
check "the running pod dep-a still reaches dep-b over net1" in_pod dep-a ping -c 1 -W 2 -I net1 "$ip_b"

# ---------------------------------------------------------------- uninstall (README)
# The pods wasmcni gave networks go first: their DEL needs wasmcni (after the uninstall the
# runtime would call the cluster network's plugin alone, and their net1 addresses would wait for
# the reconciler).
kc delete pod dep-a dep-b dep-c --wait=false >/dev/null
for p in dep-a dep-b dep-c; do check "pod $p is deleted through wasmcni's DEL" wait_pod_gone $p; done
check_eq "their addresses are released: the IPPool is as before" "$before" "$(pool_allocations $POOL)"
check "kubectl -n kube-system delete daemonset wasmcni" kc -n kube-system delete daemonset wasmcni --wait=true --timeout=60s
kc -n kube-system wait --for=delete pod -l app.kubernetes.io/name=wasmcni --timeout=60s >/dev/null 2>&1
check "stopping the DaemonSet leaves the node's files in place" test -f "$CNI_CONF_DIR/00-wasmcni.conflist"
"$CNI_BIN_DIR/wasmcni" uninstall --cni-bin-dir "$CNI_BIN_DIR" --cni-conf-dir "$CNI_CONF_DIR" >"$WORK/uninstall.out" 2>&1
check_eq "wasmcni uninstall on the node removes the conflist, the identity and the binary" 3 "$(grep -c 'removed' "$WORK/uninstall.out")"
check_eq "the conf dir holds the cluster network's conf alone, unchanged" "10-cbr0.conflist $cbr0_sum" \
    "$(ls -A "$CNI_CONF_DIR") $(sha256sum <"$CNI_CONF_DIR/10-cbr0.conflist")"
check "no wasmcni in the CNI bin dir" test ! -e "$CNI_BIN_DIR/wasmcni"
# The tier's other scenarios install wasmcni by hand with the test cluster's token, which is
# bound to no pod and names no node: the policy would (rightly) refuse its status writes.
kc delete -f "$REPO/deploy/network-status-policy.yaml" >/dev/null
adds1=$(cni_calls ADD)
node_pod dep-plain ""
defer "kc delete pod dep-plain --ignore-not-found --wait=false"
check "a new pod becomes Ready on the cluster network alone" wait_pod_ready dep-plain
check_eq "without wasmcni being called" "$adds1" "$(cni_calls ADD)"
kc delete pod dep-plain --wait=false >/dev/null
check "and is deleted" wait_pod_gone dep-plain
