# tests/e2e/conformance/lib.sh — the conformance suite's helpers, sourced after tests/e2e/lib.sh
# by conformance/suite.sh (natively, or inside the kernel VM).
#
# One case = one plugin config (macvlan or ipvlan, as a NAD or a node would write it), run twice
# through cnitool, one side after the other on the same master:
#   reference: a conflist "confnet" holding the plugin config, exec'd by libcni (the Go plugin);
#   ours:      the node conflist naming wasmcni, whose clusterNetwork is exactly that conflist
#              (so wasmcni's ADD result is its built-in plugin's result).
# Each side gets its own pod netns (and its own host-local dataDir); then the two are compared
# field by field: the result JSON, the kernel state in the pod (link, addresses, routes,
# sysctls), CHECK (untouched, then with the address removed), DEL (twice) and what it leaves.

CONF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The pod interface (CNI_IFNAME): net1, as for a NAD; a case may run with CONF_IFNAME=eth0.
CONF_IFNAME=${CONF_IFNAME:-net1}
CONF_POD=conformance
CASE_N=0

# njq FILTER [JQ_ARGS...]: jq with the suite's normalisers (the filter comes first).
njq() { jq -L "$CONF_DIR" "include \"normalise\"; $1" "${@:2}"; }

# The Pod wasmcni reads for every case (no networks annotation: the cluster network only).
make_conformance_pod() {
    kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $CONF_POD, namespace: default}
spec:
  nodeName: node-1
  containers: [{name: c, image: registry.invalid/none}]
YAML
    defer "kc delete pod $CONF_POD --wait=false"
}

# side_cni SIDE VERB NETNS: cnitool VERB on SIDE's conflist for netns NETNS (stdout: the result).
side_cni() {
    local side=$1 verb=$2 ns=$3 net=confnet
    [[ $side == ours ]] && net=wasmcni
    NETCONFPATH=$CASE_DIR/$side.d CNI_PATH=$CNI_BIN CNI_IFNAME=$CONF_IFNAME \
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$CONF_POD;K8S_POD_INFRA_CONTAINER_ID=infra-$ns;K8S_POD_UID=uid-$CONF_POD" \
    WASMCNI_LOG_FILE="$WORK/wasmcni.log" \
        timeout 120 "$TOOLS/bin/cnitool" "$verb" "$net" "/var/run/netns/$ns"
}

# write_side_confs VERSION PLUGIN_JSON: the reference conflist and wasmcni's node conflist + its
# clusterNetwork for the current case. @DATADIR@ in PLUGIN_JSON becomes each side's own dir.
write_side_confs() {
    local version=$1 plugin=$2 side
    for side in ref ours; do
        mkdir -p "$CASE_DIR/$side.d"
        local conflist
        conflist=$(jq -c --arg v "$version" --argjson p "${plugin//@DATADIR@/$CASE_DIR/hl-$side}" \
            -n '{cniVersion: $v, name: "confnet", plugins: [$p]}') || return 1
        if [[ $side == ref ]]; then
            echo "$conflist" > "$CASE_DIR/ref.d/10-confnet.conflist"
        else
            echo "$conflist" > "$CASE_DIR/cluster.conflist"
            cat > "$CASE_DIR/ours.d/00-wasmcni.conflist" <<JSON
{"cniVersion":"$version","name":"wasmcni","plugins":[{"type":"wasmcni",
  "kubeconfig":"$STATE_DIR/wasmcni.kubeconfig",
  "clusterNetwork":"$CASE_DIR/cluster.conflist",
  "cniDir":"$WORK/delegates","guestCacheDir":"$WORK/guests",
  "nodeName":"node-1","guestTimeoutMs":5000}]}
JSON
        fi
    done
}

# settle NETNS: wait (≤ 6 s) until no IPv6 address is tentative and the link's operstate is no
# longer changing, so both sides are photographed in the same settled state.
settle() {
    local ns=$1 i
    for ((i = 0; i < 30; i++)); do
        [[ -z $(ip -n "$ns" -6 addr show tentative 2>/dev/null) ]] && break
        sleep 0.2
    done
    sleep 0.5
}

# snapshot NETNS IF MASTER_MAC: the kernel state of IF inside NETNS, as JSON.
snapshot() {
    local ns=$1 ifc=$2 keep=$3 link addrs r4 r6 sys=() k
    link=$(ip -n "$ns" -d -j link show dev "$ifc" 2>/dev/null | jq -c '.[0] // null')
    addrs=$(ip -n "$ns" -j addr show dev "$ifc" 2>/dev/null | jq -c '.[0].addr_info // []')
    r4=$(ip -n "$ns" -4 -d -j route show table all 2>/dev/null || echo '[]')
    r6=$(ip -n "$ns" -6 -d -j route show table all 2>/dev/null || echo '[]')
    for k in ipv4/conf/$ifc/arp_notify ipv6/conf/$ifc/ndisc_notify ipv6/conf/$ifc/disable_ipv6 \
             ipv6/conf/$ifc/keep_addr_on_down ipv4/conf/$ifc/rp_filter ipv6/conf/$ifc/accept_ra; do
        sys+=("$k=$(ip netns exec "$ns" cat "/proc/sys/net/$k" 2>/dev/null)")
    done
    njq '{link: ($link | if . then norm_link($keep) else null end),
          addresses: ($addrs | norm_addrs),
          routes_v4: ($r4 | norm_routes), routes_v6: ($r6 | norm_routes),
          links_in_pod: $links, sysctl: ($ARGS.positional | map(split("=") | {(.[0]): .[1]}) | add)}' -n \
        --argjson link "${link:-null}" --argjson addrs "${addrs:-[]}" --argjson r4 "${r4:-[]}" --argjson r6 "${r6:-[]}" \
        --argjson keep "$keep" \
        --argjson links "$(ip -n "$ns" -j link show | jq -c 'map(.ifname)')" \
        --args "${sys[@]}"
}

# leases DIR: host-local's address files left in DIR (sorted, one a line), excluding its own
# bookkeeping (lock, last_reserved_ip.*).
# (busybox find in the VM: no -printf.)
leases() { [[ -d $1 ]] && (cd "$1" && find . -type f ! -name lock ! -name 'last_reserved_ip.*') | sed 's#^\./##' | sort | tr '\n' ' '; }

# run_side SIDE VERSION KEEP_MACS: one side of the current case, everything saved in $CASE_DIR/SIDE.*
run_side() {
    local side=$1 version=$2 keep=$3 ns out rc
    ns=cf-$side-$CASE_N
    new_netns "$ns"
    local f=$CASE_DIR/$side
    out=$(side_cni "$side" add "$ns" 2> "$f.add.err"); rc=$?
    echo "$out" > "$f.add.json"; echo "$rc" > "$f.add.rc"
    echo "/var/run/netns/$ns" > "$f.netns"
    leases "$CASE_DIR/hl-$side" > "$f.leases.add"
    if [[ $rc == 0 ]]; then
        settle "$ns"
        snapshot "$ns" "$CONF_IFNAME" "$keep" > "$f.state.json"
    else
        echo '{}' > "$f.state.json"
    fi
    # CHECK needs a cached prevResult: libcni refuses it below 0.4.0 (for both sides alike).
    side_cni "$side" check "$ns" > "$f.check.out" 2>&1; echo $? > "$f.check.rc"
    # CHECK of a pod whose address was removed behind the plugin's back.
    if [[ $rc == 0 ]] && [[ -n $(ip -n "$ns" -4 addr show dev "$CONF_IFNAME" scope global) ]]; then
        ip -n "$ns" addr flush dev "$CONF_IFNAME" scope global
        side_cni "$side" check "$ns" > "$f.tamper.out" 2>&1; echo $? > "$f.tamper.rc"
    else
        echo n/a > "$f.tamper.rc"; : > "$f.tamper.out"
    fi
    side_cni "$side" del "$ns" > "$f.del.out" 2>&1; echo $? > "$f.del.rc"
    ip -n "$ns" -j link show | jq -r 'map(.ifname) | join(",")' > "$f.after-del"
    leases "$CASE_DIR/hl-$side" > "$f.leases"
    side_cni "$side" del "$ns" > "$f.del2.out" 2>&1; echo $? > "$f.del2.rc"
    ip netns del "$ns"
}

# cmp_json NAME REF_JSON OURS_JSON: pass when equal; else fail with every differing field.
cmp_json() {
    local name=$1 a=$2 b=$3 d
    if ! jq -e . >/dev/null 2>&1 <<< "$a" || ! jq -e . >/dev/null 2>&1 <<< "$b"; then
        fail "$name" "not both JSON: reference [$(head -c 300 <<< "$a")], ours [$(head -c 300 <<< "$b")]"
        return
    fi
    if ! d=$(njq 'field_diff($a; $b)' -rn --argjson a "$a" --argjson b "$b"); then
        fail "$name" "the comparison itself failed (jq)"; return
    fi
    if [[ -z $d ]]; then pass "$name"; else
        fail "$name" "$(tr '\n' ';' <<< "$d" | sed 's/;$//; s/;/; /g')"
        log "$name: reference $(jq -cS . <<< "$a")"
        log "$name: ours      $(jq -cS . <<< "$b")"
    fi
}

# cmp_str NAME REF OURS
cmp_str() { if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1" "reference [$2], ours [$3]"; fi; }

# conformance_case NAME VERSION PLUGIN_JSON [REF_CHECK_BROKEN]: run both sides and compare.
# REF_CHECK_BROKEN: why the reference's own CHECK fails on this config (then not asserted).
conformance_case() {
    local name=$1 version=$2 plugin=$3 ref_check_broken=${4:-} master
    master=$(jq -r '.master // "eth1"' <<< "$plugin")
    CASE_N=$((CASE_N + 1))
    CASE_DIR=$WORK/case-$CASE_N
    mkdir -p "$CASE_DIR"
    write_side_confs "$version" "$plugin" || { fail "$name: configs written" "bad plugin JSON: $plugin"; return; }
    log "case $name ($version): $plugin"
    # MACs both sides must show literally: the configured one, and the master's (ipvlan).
    local keep
    keep=$(jq -c --arg m "$(ip -j link show dev "$master" | jq -r '.[0].address')" \
        '[.mac // empty] + (if .type == "ipvlan" then [$m] else [] end)' <<< "$plugin")
    local t0=$SECONDS
    run_side ref "$version" "$keep"
    run_side ours "$version" "$keep"
    log "case $name: both sides in $((SECONDS - t0)) s"

    local r=$CASE_DIR/ref o=$CASE_DIR/ours
    local rrc orc
    rrc=$(cat "$r.add.rc"); orc=$(cat "$o.add.rc")
    cmp_str "$name: ADD exit status" "$rrc" "$orc"
    if [[ $rrc != 0 || $orc != 0 ]]; then
        log "$name: reference ADD stderr: $(head -c 400 "$r.add.err")"
        log "$name: ours ADD stderr: $(head -c 400 "$o.add.err")"
    fi
    local rres ores
    rres=$(njq 'norm_result($s; $k)' -c --arg s "$(cat "$r.netns")" --argjson k "$keep" "$r.add.json" 2>/dev/null)
    ores=$(njq 'norm_result($s; $k)' -c --arg s "$(cat "$o.netns")" --argjson k "$keep" "$o.add.json" 2>/dev/null)
    if [[ $rrc == 0 && $orc == 0 ]]; then
        cmp_json "$name: ADD result" "$rres" "$ores"
    else
        fail "$name: ADD result, kernel state and CHECK" "not compared, ADD failed: reference exit $rrc [$(head -c 200 "$r.add.err")], ours exit $orc [$(head -c 300 "$o.add.err")]"
    fi
    [[ $rrc == 0 && $orc == 0 ]] && compare_added "$name" "$version" "$plugin" "$ref_check_broken"
    compare_deleted "$name" "$plugin" "$master"
}

# compare_added NAME VERSION PLUGIN_JSON REF_CHECK_BROKEN: the pods as ADD left them, and CHECK.
compare_added() {
    local name=$1 version=$2 plugin=$3 ref_check_broken=$4 r=$CASE_DIR/ref o=$CASE_DIR/ours
    local part
    for part in link addresses sysctl links_in_pod; do
        cmp_json "$name: kernel $part" "$(jq -c "{$part}" "$r.state.json")" "$(jq -c "{$part}" "$o.state.json")"
    done
    # Routes (every table; dst, gateway, dev, scope, metric, type), then who installed them
    # (the protocol: "boot" is what the reference's netlink library writes) on its own.
    for part in routes_v4 routes_v6; do
        cmp_json "$name: kernel $part" "$(njq "{$part: ((.$part // []) | map(del(.protocol)) | keyed_routes)}" -c "$r.state.json")" \
            "$(njq "{$part: ((.$part // []) | map(del(.protocol)) | keyed_routes)}" -c "$o.state.json")"
    done
    local proto='{route_protocols: [(.routes_v4 // [])[], (.routes_v6 // [])[] | select(.protocol != "kernel") | "\(.table) \(.dst) proto \(.protocol)"]}'
    cmp_json "$name: kernel route protocols" "$(jq -c "$proto" "$r.state.json")" "$(jq -c "$proto" "$o.state.json")"
    # CHECK: at 0.3.x libcni refuses CHECK for both sides before any plugin runs.
    if [[ $version == 0.3.* ]]; then
        cmp_str "$name: CHECK refused at $version by libcni (both)" "$(cat "$r.check.rc")" "$(cat "$o.check.rc")"
    else
        if [[ -n $ref_check_broken ]]; then
            log "$name: the reference's CHECK is not asserted: $ref_check_broken (it answered: $(head -n1 "$r.check.out"))"
        else
            check_eq "$name: CHECK of the untouched pod: reference passes" 0 "$(cat "$r.check.rc")"
        fi
        check_eq "$name: CHECK of the untouched pod: ours passes" 0 "$(cat "$o.check.rc")"
        [[ $(cat "$o.check.rc") == 0 ]] || log "$name: ours CHECK: $(head -c 400 "$o.check.out")"
        if [[ $(cat "$r.tamper.rc") != n/a ]]; then
            local rt ot
            rt=$([[ $(cat "$r.tamper.rc") == 0 ]] && echo passes || echo fails)
            ot=$([[ $(cat "$o.tamper.rc") == 0 ]] && echo passes || echo fails)
            cmp_str "$name: CHECK after the pod's address was removed" "$rt" "$ot"
            [[ $rt == "$ot" ]] || log "$name: reference CHECK said: $(head -c 300 "$r.tamper.out")"
        fi
    fi
    if [[ $(jq -r '.ipam.type // ""' <<< "$plugin") == host-local ]]; then
        check "$name: host-local leased an address (reference)" test -n "$(cat "$r.leases.add")"
        cmp_str "$name: host-local leases after ADD" "$(cat "$r.leases.add")" "$(cat "$o.leases.add")"
    fi
}

# compare_deleted NAME PLUGIN_JSON MASTER: DEL, twice, and what it leaves.
compare_deleted() {
    local name=$1 plugin=$2 master=$3 r=$CASE_DIR/ref o=$CASE_DIR/ours
    cmp_str "$name: DEL exit status" "$(cat "$r.del.rc")" "$(cat "$o.del.rc")"
    check_eq "$name: DEL leaves only lo in the reference pod" lo "$(cat "$r.after-del")"
    check_eq "$name: DEL leaves only lo in our pod" lo "$(cat "$o.after-del")"
    cmp_str "$name: host-local leases left after DEL" "$(cat "$r.leases")" "$(cat "$o.leases")"
    cmp_str "$name: second DEL exit status" "$(cat "$r.del2.rc")" "$(cat "$o.del2.rc")"
    check "$name: the master $master is still on the node" ip link show dev "$master" >/dev/null
}

# direct_add SIDE PLUGIN_JSON VERSION NETNS: exec one ADD without cnitool (to see the CNI error
# code, which cnitool does not print). Prints "CODE<TAB>MSG" (0 on success).
direct_add() {
    local side=$1 plugin=$2 version=$3 ns=$4 dir=$WORK/direct-$1 stdin out rc type
    mkdir -p "$dir"
    if [[ $side == ref ]]; then
        stdin=$(jq -c --arg v "$version" '. + {cniVersion: $v, name: "confnet"}' <<< "$plugin")
        type=$(jq -r .type <<< "$plugin")
    else
        jq -c --arg v "$version" -n --argjson p "$plugin" '{cniVersion: $v, name: "confnet", plugins: [$p]}' > "$dir/cluster.conflist"
        stdin=$(jq -nc --arg v "$version" --arg k "$STATE_DIR/wasmcni.kubeconfig" --arg c "$dir/cluster.conflist" \
            --arg d "$WORK/delegates" --arg g "$WORK/guests" \
            '{cniVersion: $v, name: "wasmcni", type: "wasmcni", kubeconfig: $k, clusterNetwork: $c,
              cniDir: $d, guestCacheDir: $g, nodeName: "node-1", guestTimeoutMs: 5000}')
        type=wasmcni
    fi
    out=$(CNI_COMMAND=ADD CNI_CONTAINERID=direct-$side-$ns CNI_NETNS=/var/run/netns/$ns CNI_IFNAME=$CONF_IFNAME \
        CNI_PATH=$CNI_BIN CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$CONF_POD;K8S_POD_UID=uid-$CONF_POD" \
        WASMCNI_LOG_FILE="$WORK/wasmcni.log" timeout 120 "$CNI_BIN/$type" <<< "$stdin" 2>/dev/null); rc=$?
    if [[ $rc == 0 ]]; then printf '0\t%s\n' "ok"; else
        printf '%s\t%s\n' "$(jq -r '.code // "?"' <<< "$out" 2>/dev/null || echo "?")" \
            "$(jq -r '[.msg, .details] | map(select(. != null and . != "")) | join(": ")' <<< "$out" 2>/dev/null | head -c 200)"
    fi
}

# bad_config NAME VERSION PLUGIN_JSON [documented]: both sides must refuse and leave the pod
# empty; the codes must match unless the difference is documented (then only reported).
bad_config() {
    local name=$1 version=$2 plugin=$3 documented=${4:-} side r o
    for side in ref ours; do
        new_netns "cf-bad-$side"
        local res; res=$(direct_add "$side" "$plugin" "$version" "cf-bad-$side")
        printf '%s\n' "$res" > "$WORK/bad-$side"
        echo "$(ip -n "cf-bad-$side" -j link show | jq -r 'map(.ifname) | join(",")')" > "$WORK/bad-$side.links"
        ip netns del "cf-bad-$side"
    done
    r=$(cat "$WORK/bad-ref"); o=$(cat "$WORK/bad-ours")
    log "bad config $name: reference [$r], ours [$o]"
    # The reference answers 999 (skel's catch-all for a plain Go error) to every bad config;
    # wasmcni answers with its documented codes (README, "Error codes"): 7 for a config that
    # can never work. So parity is: both refuse, nothing is left, ours says 7.
    [[ -n $documented ]] && log "bad config $name: documented difference: $documented"
    [[ -n $documented ]] || check "$name: reference refuses it" test "${r%%$'\t'*}" != 0
    check_eq "$name: ours refuses it as an invalid network config (7; reference: ${r%%$'\t'*})" 7 "${o%%$'\t'*}"
    check_eq "$name: nothing left in our pod" lo "$(cat "$WORK/bad-ours.links")"
    # What the reference leaves behind is its business (ipvlan without ipam leaves its link):
    # reported, not asserted.
    [[ $(cat "$WORK/bad-ref.links") == lo ]] ||
        log "bad config $name: the reference left [$(cat "$WORK/bad-ref.links")] in its pod"
}
