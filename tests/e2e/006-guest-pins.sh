#!/usr/bin/env bash
# tests/e2e/006-guest-pins.sh — which guests a NetworkAttachmentDefinition may name: built-in ones
# and those an admin pinned in kube-system/wasmcni-guests (by sha256; module inline or on the
# node). A node path, an unpinned name or a tampered module is refused before anything is
# attached; a pin updated in the ConfigMap is used by the very next CNI call.
source "$(dirname "$0")/lib.sh"

make_master eth1
new_netns wcni-pins
write_wasmcni_conf 1.0.0
POOL=172.16.8.0-24
LOWEST=$WORK/lowest.wasm
"$WASMCNI" guests >/dev/null   # the binary answers as a CLI too
cp "${WASMCNI_GUEST_TARGET_DIR:-$REPO/target/guests}/wasm32-wasip2/release/guest_lowest_free.wasm" "$LOWEST"
SHA=$(sha256sum "$LOWEST" | cut -d' ' -f1)
check_eq "the built-in lowest-free is the module guests/ builds" "$SHA" "$("$WASMCNI" guests | awk '$1=="lowest-free"{print $2}')"

nad() {  # nad NAME POLICY_JSON
    apply_nad "$1" '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1","ipam":{"type":"whereabouts","range":"172.16.8.0/24","policy":'"$2"'}}'
}
# attach NAME POLICY_JSON: a fresh pod on a NAD naming POLICY; prints cnitool's stderr on failure.
attach() {
    nad "$1" "$2"; make_pod "$1" "$1"
    cni add wcni-pins "$1" 2>&1 >/dev/null; local rc=$?
    [[ $rc == 0 ]] && cni del wcni-pins "$1" >/dev/null 2>&1
    return $rc
}
refused() {  # refused CASE NAME POLICY_JSON TEXT
    local err; err=$(attach "$2" "$3"); local rc=$?
    if [[ $rc != 0 && $err == *"$4"* && $(pool_allocations $POOL) == '{}' &&
          $(ip -n wcni-pins -j link show | jq -r 'map(.ifname)|join(",")') == lo ]]; then
        pass "$1: refused, nothing attached"
    else
        fail "$1" "want a refusal mentioning [$4]; got rc=$rc [$err]"
    fi
}

refused "a NAD naming a node path" by-path "{\"guest\":\"$LOWEST\",\"sha256\":\"$SHA\"}" "only name built-in guests or guests an admin pinned"
refused "a NAD naming an unpinned guest" unpinned '{"guest":"team-policy"}' "pinned by the admin: none"

check "wasmcni guest inspect names the world" bash -c "'$WASMCNI' guest inspect '$LOWEST' | grep -qx 'world    ipam-policy'"
check "wasmcni guest test runs the policy offline" bash -c "'$WASMCNI' guest test '$LOWEST' --taken 1-3 | grep -q 'proposes offset 4: 10.10.0.4/24'"
check "wasmcni guest pin --apply pins it (server-side apply)" \
    "$WASMCNI" guest pin "$LOWEST" --name team-policy --apply --kubeconfig "$KUBECONFIG"
defer "kc -n kube-system delete configmap wasmcni-guests"
check_eq "the ConfigMap holds the module and its sha256" "$SHA" \
    "$(kc -n kube-system get configmap wasmcni-guests -o jsonpath='{.data.team-policy\.sha256}')"
check "a NAD naming a guest the admin pinned (module inline) attaches" attach inline '{"guest":"team-policy"}'
check "the NAD may also pin the same sha256 itself" attach inline-sha "{\"guest\":\"team-policy\",\"sha256\":\"$SHA\"}"
refused "a NAD pinning another sha256 than the admin" other-sha "{\"guest\":\"team-policy\",\"sha256\":\"$(printf '0%.0s' {1..64})\"}" "sha256 mismatch"

# The admin swaps the module for another one without touching the pin: refused on the next call.
OTHER=${WASMCNI_GUEST_TARGET_DIR:-$REPO/target/guests}/wasm32-wasip2/release/guest_multus_default.wasm
kc -n kube-system create configmap wasmcni-guests --from-file=team-policy.wasm="$OTHER" \
    --from-literal=team-policy.sha256="$SHA" --dry-run=client -o yaml | kc replace -f - >/dev/null
refused "a tampered module (bytes no longer match the pin)" tampered '{"guest":"team-policy"}' "sha256 mismatch"

# The admin pins the module on the node instead: used by the next call, nothing restarted.
kc -n kube-system create configmap wasmcni-guests --from-literal=team-policy.path="$LOWEST" \
    --from-literal=team-policy.sha256="$SHA" --dry-run=client -o yaml | kc replace -f - >/dev/null
err=$(attach on-node '{"guest":"team-policy"}'); rc=$?
check_eq "an updated pin (module on the node) is used by the next call" "0 " "$rc $err"
# Fail open: the admin lets default/open-net fall back to the built-in policy when its own
# fails; the pod attaches and its network-status says what happened. Other networks stay closed.
kc -n kube-system create configmap wasmcni-guests --from-literal=team-policy.path="$LOWEST" \
    --from-literal=team-policy.sha256="$SHA" --from-literal=fail-open="default/open-net" \
    --dry-run=client -o yaml | kc replace -f - >/dev/null
nad open-net '{"guest":"broken-policy"}'; make_pod open-net open-net
out=$(cni add wcni-pins open-net 2>&1); rc=$?
check_eq "a fail-open network attaches despite a missing policy" "0" "$rc"
kc get pod open-net -o jsonpath='{.metadata.annotations.k8s\.v1\.cni\.cncf\.io/network-status}' > "$WORK/open.json"
check_json "its network-status says the policy failed open" "$WORK/open.json" \
    '.[1].ips==["172.16.8.1"] and (.[1]["wasmcni-note"]|contains("broken-policy") and contains("fell back to lowest-free"))'
cni del wcni-pins open-net >/dev/null 2>&1
refused "a network not listed stays closed" closed-net '{"guest":"broken-policy"}' "no such guest"
kc delete pod --all --wait=false >/dev/null 2>&1
