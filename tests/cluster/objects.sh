# tests/cluster/objects.sh — the Kubernetes objects tests make on the throwaway control plane,
# sourced by tests/e2e/lib.sh and tests/bench/cni.sh. Needs KUBECTL and KUBECONFIG (admin).

kc() { "$KUBECTL" "$@"; }

# apply_nad NAME CONFIG_JSON: NetworkAttachmentDefinition default/NAME with spec.config CONFIG_JSON.
apply_nad() {
    jq -n --arg name "$1" --arg config "$2" \
        '{apiVersion: "k8s.cni.cncf.io/v1", kind: "NetworkAttachmentDefinition",
          metadata: {name: $name, namespace: "default"}, spec: {config: $config}}' | kc apply -f - >/dev/null
}

# make_pod NAME NETWORKS_ANNOTATION: Pod default/NAME whose k8s.v1.cni.cncf.io/networks is the
# annotation text as given (comma or JSON form). No kubelet runs: it only has to exist, for the
# pod GET and the network-status PATCH.
make_pod() {
    jq -n --arg name "$1" --arg networks "$2" \
        '{apiVersion: "v1", kind: "Pod",
          metadata: {name: $name, namespace: "default",
                     annotations: {"k8s.v1.cni.cncf.io/networks": $networks}},
          spec: {nodeName: "node-1", containers: [{name: "c", image: "registry.invalid/none"}]}}' |
        kc apply -f - >/dev/null
}
