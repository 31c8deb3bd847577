#!/usr/bin/env bash
# tests/e2e/010-versions.sh — wasmcni speaks every CNI version libcni has (0.1.0 to 1.1.0) the
# way libcni and the reference plugins do (issues 3 and 10).
#
# For each version, the seed pod (eth0 from the bridge cluster network, net1 a macvlan) is
# attached with wasmcni's conflist at that version through cnitool (libcni), then CHECKed and
# DELeted:
#   - cnitool (libcni) accepts the result and it is at the requested version;
#   - what wasmcni printed (captured by a wrapper in CNI_PATH) is exactly what libcni reads and
#     writes back (`cniconvert -exec V V`: nothing libcni would drop, add or spell differently);
#   - it equals libcni's conversion of the same attachment's result: the cluster network's
#     result as wasmcni recorded it (its delegate cache), converted by libcni to 1.1.0 and from
#     1.1.0 to the version. Comparing with the same ADD's own result is the only exact
#     comparison: host-local hands out a fresh address on every ADD, even after a DEL.
#   - CHECK below 0.4.0: libcni refuses without calling the plugin, and wasmcni called directly
#     answers as the reference plugins do (skel: code 1, "config version does not allow CHECK").
# A conflist without cniVersion (0.1.0 to libcni) is attached the same way. Delegates at 0.2.0
# and without a cniVersion (old NADs; the reference bridge + host-local) are attached by wasmcni
# at 1.1.0, their results read as libcni reads them, CHECK and DEL handed to them as libcni's
# lists do. Then VERSION at every version, an unknown cniVersion, and a prevResult at another
# version than the config's, each compared with a reference plugin given the same input.
source "$(dirname "$0")/lib.sh"

VERSIONS=(0.1.0 0.2.0 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0)
CONV="$TOOLS/bin/cniconvert"
[[ -x $CONV ]] || { fail "cniconvert is built" "missing $CONV: run tests/tools/build.sh"; exit 1; }

# wasmcni behind a wrapper that keeps each call's stdin and stdout, as the runtime saw them.
rm "$CNI_BIN/wasmcni"
cat > "$CNI_BIN/wasmcni" <<SH
#!/usr/bin/env bash
n=\$(date +%s%N)
tee "$WORK/calls/\$n.\$CNI_COMMAND.in" | "$WASMCNI" | tee "$WORK/calls/\$n.\$CNI_COMMAND.out"
exit \${PIPESTATUS[1]}
SH
chmod +x "$CNI_BIN/wasmcni"
mkdir -p "$WORK/calls"
last_call() { ls "$WORK/calls/"*".$1.out" 2>/dev/null | tail -1; }
calls_of() { ls "$WORK/calls/"*".$1.in" 2>/dev/null | wc -l; }

# jq -S of a JSON file or string, for exact comparison
canon() { jq -cS . "$@"; }

make_master eth1
new_netns wcni-ver
apply_seed_nad ver-macvlan macvlan eth1 172.16.10.0/24
make_pod ver "ver-macvlan"
defer "kc delete pod ver --wait=false"

for v in "${VERSIONS[@]}"; do
    write_wasmcni_conf "$v"
    out=$(cni add wcni-ver ver); rc=$?
    check_eq "$v: ADD through cnitool (libcni accepted the result)" 0 "$rc"
    echo "$out" > "$WORK/cnitool-$v.json"
    check_eq "$v: the result is at cniVersion $v" "$v" "$(jq -r .cniVersion "$WORK/cnitool-$v.json")"
    raw=$(last_call ADD)
    check_eq "$v: what wasmcni printed is at cniVersion $v" "$v" "$(jq -r .cniVersion "$raw")"
    check_eq "$v: libcni reads wasmcni's result and writes back the same JSON" \
        "$(canon "$raw")" "$("$CONV" -exec "$v" "$v" < "$raw" | canon)"
    check_eq "$v: cnitool printed what wasmcni printed" "$(canon "$raw")" "$(canon "$WORK/cnitool-$v.json")"
    # The same attachment at 1.1.0, by libcni, from the result wasmcni recorded for it.
    rec=$(ls "$WORK/delegates/"* | head -1)
    jq '.cluster_result // .clusterResult | del(.interfaceExt, .routeExt, .ip4Routes)' "$rec" > "$WORK/held-$v.json"
    "$CONV" 1.1.0 < "$WORK/held-$v.json" > "$WORK/at-1.1.0-$v.json"
    check_eq "$v: the result equals libcni's conversion of the same attachment (held → 1.1.0 → $v)" \
        "$("$CONV" "$v" < "$WORK/at-1.1.0-$v.json" | canon)" "$(canon "$raw")"
    if [[ $v == 0.[123].* ]]; then
        before=$(calls_of CHECK)
        err=$(cni check wcni-ver ver 2>&1); rc=$?
        check "$v: libcni refuses CHECK below 0.4.0" bash -c "[[ $rc != 0 ]] && grep -q 'does not support the CHECK command' <<<'$err'"
        check_eq "$v: ... without calling wasmcni" "$before" "$(calls_of CHECK)"
    else
        check "$v: CHECK through cnitool succeeds" cni check wcni-ver ver
        chk=$(ls "$WORK/calls/"*.CHECK.in | tail -1)
        check_eq "$v: CHECK's prevResult is the ADD result, at $v" "$(canon "$raw")" "$(jq -cS .prevResult "$chk")"
    fi
    check "$v: DEL through cnitool" cni del wcni-ver ver
    check_eq "$v: DEL removed net1 and eth0" "lo" "$(ip -n wcni-ver -j link show | jq -r 'map(.ifname)|join(",")')"
done
check_empty "the delegate cache is empty" "$(ls -A "$WORK/delegates")"

# A conflist without cniVersion: libcni hands wasmcni "cniVersion":"", which is 0.1.0.
write_wasmcni_conf 1.0.0
jq 'del(.cniVersion)' "$NETDIR/00-wasmcni.conflist" > "$WORK/nov.conflist" && mv "$WORK/nov.conflist" "$NETDIR/00-wasmcni.conflist"
out=$(cni add wcni-ver ver); rc=$?
check_eq "no cniVersion: ADD through cnitool" 0 "$rc"
check_eq "no cniVersion: wasmcni was called with an empty cniVersion" '""' "$(jq -c .cniVersion "$(ls "$WORK/calls/"*.ADD.in | tail -1)")"
check_eq "no cniVersion: the result is at 0.1.0, its address in ip4" "0.1.0 true" \
    "$(jq -r '"\(.cniVersion) \(.ip4.ip | test("^10\\.244\\.1\\."))"' <<<"$out")"
check_eq "no cniVersion: libcni reads it and writes back the same JSON" \
    "$(canon "$(last_call ADD)")" "$("$CONV" -exec 0.1.0 0.1.0 < "$(last_call ADD)" | canon)"
check "no cniVersion: DEL through cnitool" cni del wcni-ver ver
check_eq "no cniVersion: DEL removed net1 and eth0" "lo" "$(ip -n wcni-ver -j link show | jq -r 'map(.ifname)|join(",")')"

# Old NADs: a 0.2.0 config and a conflist without cniVersion, both the reference bridge with
# host-local, behind a wrapper that keeps what each call got and printed.
rm "$CNI_BIN/bridge"
mkdir -p "$WORK/bridge"
cat > "$CNI_BIN/bridge" <<SH
#!/usr/bin/env bash
f="$WORK/bridge/\$(date +%s%N).\$CNI_COMMAND.\$CNI_IFNAME"
tee "\$f.in" | "$TOOLS/cni/bridge" | tee "\$f.out"
exit \${PIPESTATUS[1]}
SH
chmod +x "$CNI_BIN/bridge"
bridge_call() { ls "$WORK/bridge/"*".$1.$2.$3" 2>/dev/null | tail -1; }
apply_nad old-020 "{\"cniVersion\":\"0.2.0\",\"name\":\"old-020\",\"type\":\"bridge\",\"bridge\":\"br-old0\",\"ipam\":{\"type\":\"host-local\",\"subnet\":\"10.77.0.0/24\",\"dataDir\":\"$WORK/host-local-old\"}}"
apply_nad old-none "{\"name\":\"old-none\",\"plugins\":[{\"type\":\"bridge\",\"bridge\":\"br-old1\",\"ipam\":{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.78.0.0/24\"}]],\"dataDir\":\"$WORK/host-local-old\"}}]}"
new_netns wcni-old
make_pod old "old-020,old-none"
defer "kc delete pod old --wait=false"
write_wasmcni_conf 1.1.0
out=$(cni add wcni-old old); rc=$?
check_eq "old NADs: ADD at 1.1.0 with a 0.2.0 and a versionless delegate" 0 "$rc"
a020=$(bridge_call ADD net1 out) anone=$(bridge_call ADD net2 out)
check_eq "old NADs: the 0.2.0 bridge was called at 0.2.0 and printed ip4 (libcni's 0.2.0 shape)" "0.2.0 0.2.0 true" \
    "$(jq -r .cniVersion "$(bridge_call ADD net1 in)") $(jq -r '"\(.cniVersion) \(has("ip4") and (has("ips")|not))"' "$a020")"
check_eq "old NADs: the versionless bridge got an empty cniVersion and answered at 0.1.0" '"" 0.1.0' \
    "$(jq -c .cniVersion "$(bridge_call ADD net2 in)") $(jq -r .cniVersion "$anone")"
kc get pod old -o json > "$WORK/old-pod.json"
jq -r '.metadata.annotations["k8s.v1.cni.cncf.io/network-status"]' "$WORK/old-pod.json" > "$WORK/old-status.json"
for pair in net1:old-020:0.2.0:"$a020" net2:old-none:0.1.0:"$anone"; do
    IFS=: read -r ifn nad ver file <<<"$pair"
    want=$("$CONV" -exec "$ver" 1.1.0 < "$file" | jq -c '[.ips[].address | sub("/.*"; "")]')
    check_eq "old NADs: network-status of default/$nad lists what libcni reads from its $ver result" "$want" \
        "$(jq -c --arg n "default/$nad" '[.[]|select(.name==$n)][0].ips' "$WORK/old-status.json")"
    check_eq "old NADs: $ifn in the pod has that address" "$want" \
        "$(ip -n wcni-old -j addr show "$ifn" | jq -c '[.[0].addr_info[]|select(.family=="inet")|.local]')"
done
leases() { find "$WORK/host-local-old" -type f ! -name lock ! -name 'last_reserved_ip*' 2>/dev/null; }
check_eq "old NADs: host-local holds one lease per old network" 2 "$(leases | wc -l)"
check "old NADs: CHECK through cnitool succeeds" cni check wcni-old old
check_eq "old NADs: CHECK called no plugin below 0.4.0 (libcni's lists refuse CHECK there)" "0 0" \
    "$(ls "$WORK/bridge/"*.CHECK.net1.in 2>/dev/null | wc -l) $(ls "$WORK/bridge/"*.CHECK.net2.in 2>/dev/null | wc -l)"
check_eq "old NADs: ... while the 1.0.0 cluster network was CHECKed" 1 "$(ls "$WORK/bridge/"*.CHECK.eth0.in 2>/dev/null | wc -l)"
check "old NADs: DEL through cnitool" cni del wcni-old old
check_eq "old NADs: DEL hands no prevResult below 0.4.0 and the cached result at 1.0.0 (as libcni's DelNetworkList)" \
    "false false true" \
    "$(for i in net1 net2 eth0; do jq -r 'has("prevResult")' "$(bridge_call DEL $i in)"; done | xargs)"
check_eq "old NADs: DEL removed every link" "lo" "$(ip -n wcni-old -j link show | jq -r 'map(.ifname)|join(",")')"
check_empty "old NADs: host-local freed both addresses" "$(leases)"

# Direct calls: wasmcni and a reference plugin, same env and stdin; "rc code" of each.
# plugin_conf TYPE VERSION [PREV_JSON]: one plugin's config as libcni hands it over.
plugin_conf() {
    local type=$1 v=$2 prev=${3:-}
    local base; base=$(jq -c '.plugins[0]' "$NETDIR/00-wasmcni.conflist")
    jq -cn --argjson b "$base" --arg t "$type" --arg v "$v" --argjson p "${prev:-null}" \
        '$b + {type:$t, name:"wasmcni", cniVersion:$v} + (if $p == null then {} else {prevResult:$p} end)'
}
# direct CMD PLUGIN STDIN: "exit-status code" (code from the error JSON; 0 when none)
direct() {
    local cmd=$1 plugin=$2 stdin=$3 out rc
    out=$(CNI_COMMAND=$cmd CNI_CONTAINERID=direct-1 CNI_NETNS=/var/run/netns/wcni-ver CNI_IFNAME=eth0 \
        CNI_PATH=$CNI_BIN CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=ver" \
        WASMCNI_LOG_FILE="$WORK/wasmcni.log" "$plugin" <<<"$stdin" 2>/dev/null); rc=$?
    log "$cmd $(basename "$plugin") $(jq -r .cniVersion <<<"$stdin"): exit $rc ${out:-(no output)}"
    echo "exit $rc code $(jq -r '.code // 0' <<<"${out:-{\}}" 2>/dev/null || echo '?')"
}
# A reference meta plugin: skel, and version.ParsePrevResult on ADD, CHECK and DEL (with no
# portMappings its DEL does nothing else).
REF="$TOOLS/cni/portmap"

for v in 0.1.0 0.2.0 0.3.0 0.3.1; do
    check_eq "$v: CHECK called directly answers as the reference plugins (skel: code 1)" \
        "$(direct CHECK "$REF" "$(plugin_conf portmap $v)")" "$(direct CHECK "$WASMCNI" "$(plugin_conf wasmcni $v)")"
done

for v in "${VERSIONS[@]}" 9.9.9 ""; do
    ans=$(CNI_COMMAND=VERSION "$WASMCNI" <<<"{\"cniVersion\":\"$v\"}"); rc=$?
    check_eq "VERSION for \"$v\" exits 0" 0 "$rc"
    # libcni's version.PluginDecoder: cniVersion non-empty and supportedVersions listed
    check_eq "VERSION for \"$v\": supportedVersions as libcni decodes them" \
        '["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]' "$(jq -c '.supportedVersions' <<<"$ans")"
    check "VERSION for \"$v\": cniVersion is one libcni speaks" \
        bash -c "jq -e '.cniVersion as \$c | [\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"] | index(\$c) != null' <<<'$ans' >/dev/null"
done
check_eq "VERSION ignores a stdin that is not JSON, as skel does" 0 \
    "$(CNI_COMMAND=VERSION "$WASMCNI" <<<"not json" >/dev/null; echo $?)"

for cmd in ADD DEL CHECK; do
    check_eq "$cmd with an unknown cniVersion: the reference plugin's answer (code 1)" \
        "$(direct $cmd "$REF" "$(plugin_conf portmap 9.9.9)")" "$(direct $cmd "$WASMCNI" "$(plugin_conf wasmcni 9.9.9)")"
done

# prevResult at another version than the config's: readable within a shape family (0.3.0,
# 0.3.1, 0.4.0 | 1.0.0, 1.1.0), refused across (version.ParsePrevResult). libcni's own reading
# (cniconvert -prev) and the reference plugin decide alike; wasmcni must decide as they do.
# (The reference's code for a refusal is 999: skel wraps the plain Go error; only the decision
# is compared.)
prev_at() {
    case $1 in
        0.1.0|0.2.0) jq -cn --arg v "$1" '{cniVersion:$v, ip4:{ip:"10.244.1.99/24"}}' ;;
        *) jq -c --arg v "$1" '.cniVersion=$v | if ($v|startswith("0.")) then .ips|=map(.+{version:"4"}) else . end' \
            <<<'{"ips":[{"address":"10.244.1.99/24"}]}' ;;
    esac
}
for pair in 1.0.0:0.4.0 0.4.0:1.0.0 0.3.0:0.4.0 0.3.1:0.4.0 0.4.0:0.3.1 1.1.0:1.0.0 1.0.0:1.1.0 1.0.0:9.9.9 0.4.0: \
    0.2.0:0.1.0 0.1.0:0.2.0 0.2.0:0.4.0 0.4.0:0.2.0 1.0.0:0.2.0 0.2.0:; do
    conf_v=${pair%%:*} prev_v=${pair##*:}
    prev=$(prev_at "$prev_v")
    [[ -n $prev_v ]] || prev=$(jq -c 'del(.cniVersion)' <<<"$prev")
    if "$CONV" -prev "$conf_v" - <<<"$prev" >/dev/null 2>&1; then libcni=reads; else libcni=refuses; fi
    ref=$(direct DEL "$REF" "$(plugin_conf portmap "$conf_v" "$prev")")
    ours=$(direct DEL "$WASMCNI" "$(plugin_conf wasmcni "$conf_v" "$prev")")
    what="prevResult ${prev_v:-without cniVersion} in a $conf_v config"
    [[ $libcni == reads ]] && want="exit 0" || want="exit 1"
    check_eq "$what: libcni $libcni it, and so does the reference plugin" "$want" "${ref% code*}"
    check_eq "$what: wasmcni decides as libcni and the reference plugin" "$want" "${ours% code*}"
done
