#!/usr/bin/env bash
# tests/e2e/009-runtime-annotations.sh — containerd's capability io.kubernetes.cri.pod-annotations:
# when the runtime passes the pod's annotations in runtimeConfig, wasmcni decides from them
# (no pod GET); without the capability it reads the pod from the API server.
source "$(dirname "$0")/lib.sh"

make_master eth1
new_netns wcni-rt
apply_seed_nad rt-net macvlan eth1 172.16.13.0/24
make_pod rt-pod ""      # the API object asks for nothing
defer "kc delete pod rt-pod --wait=false"
CAPS='{"io.kubernetes.cri.pod-annotations":{"k8s.v1.cni.cncf.io/networks":"default/rt-net"}}'
cni_caps() { CAP_ARGS=$CAPS cni "$@"; }   # cnitool passes CAP_ARGS for declared capabilities
net1() { ip -n wcni-rt -j addr show net1 2>/dev/null | jq -r '.[0].addr_info[]|select(.family=="inet")|.local'; }

write_wasmcni_conf 1.0.0 '"capabilities":{"io.kubernetes.cri.pod-annotations":true}'
check "ADD with the runtime's annotations" cni_caps add wcni-rt rt-pod
check_eq "net1 comes from the runtime's annotation, not the API object" "172.16.13.1" "$(net1)"
check "DEL" cni del wcni-rt rt-pod

write_wasmcni_conf 1.0.0
check "ADD without the capability" cni_caps add wcni-rt rt-pod
check_empty "the API object (no annotation) decides: no net1" "$(net1)"
check "DEL" cni del wcni-rt rt-pod
check_eq "the IPPool is empty" '{}' "$(pool_allocations 172.16.13.0-24)"
