#!/usr/bin/env bash
# tests/node/002-runtime-versions.sh — what this node's runtime (Debian's containerd 1.6, libcni
# 1.1) does with each conflist cniVersion, and that nothing is lost when it refuses one: at
# 1.1.0 containerd fails the sandbox after wasmcni's ADD ("unsupported CNI result version"),
# then calls DEL; the kubelet retries; deleting the pod leaves the IPPool as it was. At 1.0.0
# (the README's) the same pod runs. And which verbs it sends: ADD and DEL, never CHECK, STATUS
# or GC (the README's runtime table).
source "$(dirname "$0")/lib.sh"

apply_seed_nad seed-macvlan macvlan eth1
POOL=172.16.1.0-24
before=$(pool_allocations $POOL)
adds0=$(cni_calls ADD) dels0=$(cni_calls DEL)

install_wasmcni 1.1.0
defer "install_wasmcni 1.0.0"
defer "kc delete pod v110 --wait=false"
node_pod v110 "default/seed-macvlan"
# Wait for containerd to have called ADD and then DEL for the failed sandbox.
for _ in $(seq 1 60); do
    [[ $(cni_calls DEL) -gt $dels0 ]] && break
    sleep 1
done
check_eq "at 1.1.0 containerd 1.6 ran wasmcni's ADD, then DEL on its own refusal" "yes" \
    "$([[ $(cni_calls ADD) -gt $adds0 && $(cni_calls DEL) -gt $dels0 ]] && echo yes || echo "no: ADD $(($(cni_calls ADD) - adds0)) DEL $(($(cni_calls DEL) - dels0))")"
check_grep "the pod's events name containerd's reason" 'unsupported CNI result version' \
    "$(kc get events --field-selector involvedObject.name=v110 -o jsonpath='{.items[*].message}')"
# The kubelet posts the pod's conditions on its own sync, which under load comes after the
# events: wait for the Ready condition to exist, then it must say False.
ready() { kc get pod v110 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}'; }
for _ in $(seq 1 30); do [[ -n $(ready) ]] && break; sleep 1; done
check_eq "the pod is not Ready" "False" "$(ready)"
kc delete pod v110 --wait=false >/dev/null
check "the refused pod is deleted" wait_pod_gone v110
check_eq "nothing stays allocated for it: the IPPool is as before" "$before" "$(pool_allocations $POOL)"
check_empty "no reservation left" "$(orips_matching '172\.16\.1\.')"

install_wasmcni 1.0.0
node_pod v100 "default/seed-macvlan"
defer "kc delete pod v100 --wait=false"
check "at 1.0.0 the same pod becomes Ready" wait_pod_ready v100
kc delete pod v100 --wait=false >/dev/null
check "and is deleted" wait_pod_gone v100
check_eq "the IPPool is as before" "$before" "$(pool_allocations $POOL)"
check_eq "containerd 1.6 sent no CHECK, STATUS or GC in all of it" "0 0 0" \
    "$(cni_calls CHECK) $(cni_calls STATUS) $(cni_calls GC)"
