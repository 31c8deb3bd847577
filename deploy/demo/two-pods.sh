#!/usr/bin/env bash
# deploy/demo/two-pods.sh — the demo's story, run by deploy/demo.sh inside a throwaway "node"
# (a network namespace with its own loopback apiserver): the seed's NetworkAttachmentDefinition,
# two pods attached through real CNI calls (cnitool → wasmcni), their network-status, a ping
# between them over net1, and a clean detach.
source "$(dirname "$0")/../../tests/e2e/lib.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

say "a node with master interface eth1 and two pod sandboxes"
make_master eth1
new_netns demo-pod-a
new_netns demo-pod-b
write_wasmcni_conf 1.0.0
jq . "$NETDIR/00-wasmcni.conflist" >&2

say "the seed's NetworkAttachmentDefinition (macvlan stands in for ipvlan: this kernel has no ipvlan)"
apply_seed_nad seed-net macvlan eth1
kc get network-attachment-definitions seed-net -o jsonpath='{.spec.config}' >&2; echo >&2

say "two pods asking for it (k8s.v1.cni.cncf.io/networks: default/seed-net)"
make_pod pod-a "default/seed-net"
make_pod pod-b "default/seed-net"
defer "kc delete pod pod-a pod-b --wait=false"

for p in a b; do
    say "CNI ADD pod-$p (as containerd would: cnitool add wasmcni /var/run/netns/demo-pod-$p)"
    WASMCNI_LOG=info cni add demo-pod-$p pod-$p >&2 || { fail "ADD pod-$p"; exit 1; }
    grep -E 'guest' "$WORK/wasmcni.log" | tail -n 2 | sed 's/^.*INFO /  /' >&2
done
pass "two pods attached"

for p in a b; do
    say "pod-$p network-status annotation"
    kc get pod pod-$p -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}' >&2; echo >&2
done

say "the IPPool (whereabouts.cni.cncf.io/v1alpha1), as whereabouts would have written it"
kc -n kube-system get ippools.whereabouts.cni.cncf.io 172.16.1.0-24 -o jsonpath='{.spec}' | jq . >&2

say "pod-a pings pod-b over net1"
b_ip=$(ip -n demo-pod-b -j addr show net1 | jq -r '.[0].addr_info[]|select(.family=="inet")|.local')
if ip netns exec demo-pod-a ping -c 3 -W 2 -I net1 "$b_ip" >&2; then pass "ping over net1"; else fail "ping over net1"; fi

say "CNI DEL both pods"
for p in a b; do cni del demo-pod-$p pod-$p >&2 && pass "DEL pod-$p" || fail "DEL pod-$p"; done
check_eq "the IPPool is empty again" '{}' "$(pool_allocations 172.16.1.0-24)"
