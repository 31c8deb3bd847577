#!/usr/bin/env bash
# tests/e2e/005-hostile-guests.sh — hostile guests (tests/guests/) named by real configs, through
# real CNI calls: every misbehaviour ends in the right code and a message naming the guest, the
# host allocates nothing, leaves no link behind, and attaches the next good pod as usual.
source "$(dirname "$0")/lib.sh"

# The test guests are never part of a wasmcni build: built here with the command
# tests/guests/artifacts uses (a no-op when `cargo test` already built them).
GUESTS_TARGET=${WASMCNI_GUEST_TARGET_DIR:-$REPO/target/guests}
GUESTS_DIR=$GUESTS_TARGET/wasm32-wasip2/release
(cd "$REPO" && cargo build --locked --release --target wasm32-wasip2 --target-dir "$GUESTS_TARGET" \
    -p guest-hostile-ipam -p guest-hostile-delegation) >/dev/null 2>&1
IPAM_WASM=$WORK/hostile-ipam.wasm DELEG_WASM=$WORK/hostile-delegation.wasm
cp "$GUESTS_DIR/guest_hostile_ipam.wasm" "$IPAM_WASM" && cp "$GUESTS_DIR/guest_hostile_delegation.wasm" "$DELEG_WASM" ||
    { fail "hostile guests are built" "not found in $GUESTS_DIR"; exit 1; }
IPAM_SHA=$(sha256sum "$IPAM_WASM" | cut -d' ' -f1)
DELEG_SHA=$(sha256sum "$DELEG_WASM" | cut -d' ' -f1)

make_master eth1
new_netns wcni-hostile
POOL=172.16.7.0-24
apply_nad hostile-ipam '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1","ipam":{"type":"whereabouts","range":"172.16.7.0/24","policy":{"guest":"hostile"}}}'
# The admin pins the hostile policy by name (the module itself in the ConfigMap's binaryData).
kc -n kube-system create configmap wasmcni-guests --from-file=hostile.wasm="$IPAM_WASM" \
    --from-literal=hostile.sha256="$IPAM_SHA" >/dev/null
defer "kc -n kube-system delete configmap wasmcni-guests"
CID=hostile-1
CONF_FILE=$WORK/conf.json
# direct POD: an ADD for pod default/POD exec'd the way a runtime does; sets OUT and RC.
direct() {
    OUT=$(env -i PATH="$PATH" CNI_PATH="$CNI_BIN" CNI_COMMAND=ADD CNI_CONTAINERID=$CID CNI_IFNAME=eth0 \
        CNI_NETNS=/var/run/netns/wcni-hostile \
        "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$1" "$WASMCNI" < "$CONF_FILE" 2>/dev/null); RC=$?
}
# expect CASE CODE TEXT: the last ADD failed with CODE mentioning TEXT, and left nothing behind.
expect() {
    local links pool
    links=$(ip -n wcni-hostile -j link show | jq -r 'map(.ifname)|join(",")')
    pool=$(pool_allocations $POOL)
    if [[ $RC -ne 0 ]] && jq -es --argjson c "$2" --arg t "$3" \
        'length==1 and .[0].code==$c and ((.[0].msg+" "+(.[0].details//""))|contains($t))' <<<"$OUT" >/dev/null 2>&1 &&
        [[ $links == lo && $pool == "$BASELINE" && ! -e "$WORK/delegates/$CID" ]]; then
        pass "$1: code $2, nothing left"
    else
        fail "$1" "want code $2 with [$3] and nothing left; got exit $RC [$(head -c 400 <<<"$OUT")] links=$links pool=$pool"
    fi
}

# A good pod holds 172.16.7.1, so "taken" has something to steal.
write_wasmcni_conf 1.0.0 '"guestTimeoutMs":300'
jq -c '.plugins[0] + {name: .name, cniVersion: .cniVersion}' "$NETDIR/00-wasmcni.conflist" > "$CONF_FILE"
make_pod holder "hostile-ipam"
new_netns wcni-holder
check "a good pod attaches with the hostile policy (it behaves for it)" cni add wcni-holder holder
BASELINE=$(pool_allocations $POOL)
check_eq "it got the lowest free address" '["1"]' "$(jq -c 'keys' <<<"$BASELINE")"

for case in "loop:101:ran past its deadline" "bomb:101:memory" "trap:101:unreachable" \
            "outside:101:outside 172.16.7.0/24" "network-address:101:reserved or excluded" \
            "taken:101:already allocated to default/holder" "huge:100:bytes cut" \
            "fs:100:no file access" "env:100:env vars visible: 0, args: 0" "clock:100:clock: 0"; do
    IFS=: read -r pod code text <<<"$case"
    make_pod "$pod" "hostile-ipam"
    direct "$pod"
    expect "ipam guest '$pod'" "$code" "${text//GUEST/hostile}"
done

# The delegation guest, named by the node's config (an admin may pin a node path).
write_wasmcni_conf 1.0.0 "\"guestTimeoutMs\":300,\"namespaceIsolation\":true,\"delegation\":{\"guest\":\"$DELEG_WASM\",\"sha256\":\"$DELEG_SHA\"}"
jq -c '.plugins[0] + {name: .name, cniVersion: .cniVersion}' "$NETDIR/00-wasmcni.conflist" > "$CONF_FILE"
for case in "loop:101:ran past its deadline" "trap:101:unreachable" "huge:101:at most 32" \
            "bad-interface:101:../../etc" "duplicate-interface:101:used twice" "steal-eth0:101:\"eth0\" is used twice" \
            "other-namespace:100:not allowed for pods in namespace default"; do
    IFS=: read -r pod code text <<<"$case"
    make_pod "d-$pod" ""
    direct "d-$pod"
    expect "delegation guest '$pod'" "$code" "$text"
done
kc delete pod --all --wait=false >/dev/null 2>&1
check "the holder detaches" cni del wcni-holder holder
check_eq "the IPPool is empty" '{}' "$(pool_allocations $POOL)"
