#!/usr/bin/env bash
# tests/e2e/002-bad-input.sh — bad input gets the spec's error JSON on stdout with the right
# code, a message a person can act on, a non-zero exit, and leaves nothing behind: no link in
# the pod, no cluster-network address, no IPPool entry, no delegate cache. The binary is exec'd
# directly, the way a runtime does, since cnitool would refuse some of these inputs itself.
source "$(dirname "$0")/lib.sh"

make_master eth1
new_netns wcni-bad
write_wasmcni_conf 1.0.0
apply_seed_nad bad-good macvlan eth1 172.16.9.0/24
make_pod bad-pod "default/bad-good"
defer "kc delete pod bad-pod bad-nad bad-policy bad-range bad-version bad-ips bad-lo bad-zero bad-master bad-mode bad-mac bad-dup bad-key --wait=false"
POOL=172.16.9.0-24
CID=bad-container-1

# The plugin config exactly as libcni hands it to the plugin: the list's name and version injected.
CONF=$(jq -c '.plugins[0] + {name: .name, cniVersion: .cniVersion}' "$NETDIR/00-wasmcni.conflist")

# direct STDIN VAR=VALUE...: run wasmcni with exactly these CNI variables; sets OUT and RC.
direct() {
    local stdin=$1; shift
    OUT=$(printf '%s' "$stdin" | env -i PATH="$PATH" CNI_PATH="$CNI_BIN" "$@" "$WASMCNI" 2>>"$WORK/stderr"); RC=$?
}
ADD_ENV=(CNI_COMMAND=ADD CNI_CONTAINERID=$CID CNI_IFNAME=eth0 CNI_NETNS=/var/run/netns/wcni-bad)
args() { echo "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$1;K8S_POD_INFRA_CONTAINER_ID=$CID"; }

# expect_error CASE CODE MESSAGE_PART [VERSION]: the last call failed with CODE, a message naming
# the problem, in the config's cniVersion (1.1.0 when the config could not be read at all).
expect_error() {
    local name=$1 code=$2 part=$3 version=${4:-1.0.0}
    if [[ $RC -ne 0 ]] && jq -es --argjson c "$code" --arg p "$part" --arg v "$version" \
        'length==1 and .[0].code==$c and (.[0].msg|length>0) and ((.[0].msg+" "+(.[0].details//""))|contains($p)) and .[0].cniVersion==$v' \
        <<<"$OUT" >/dev/null 2>&1; then
        pass "$name: code $code, exit $RC"
    else
        fail "$name" "want code $code mentioning [$part], got exit $RC and [$OUT]"
    fi
}

# expect_nothing_left CASE: the pod's namespace, the cluster IPAM, the pool and the cache are clean.
expect_nothing_left() {
    local left=""
    [[ $(ip -n wcni-bad -j link show | jq -r 'map(.ifname)|join(",")') == lo ]] || left+=" links:$(ip -n wcni-bad -j link show | jq -r 'map(.ifname)|join(",")')"
    ls "$WORK/host-local/cbr0" 2>/dev/null | grep -q '^10\.' && left+=" cluster-address"
    [[ $(pool_allocations $POOL) == '{}' ]] || left+=" ippool:$(pool_allocations $POOL)"
    [[ -z $(ls -A "$WORK/delegates" 2>/dev/null) ]] || left+=" cache"
    if [[ -z $left ]]; then pass "$1: nothing left behind"; else fail "$1: nothing left behind" "left:$left"; fi
}

# cluster_mark: what the cluster network's IPAM last handed out; unchanged across a call means the
# call never attached the cluster network (everything local was checked before the first side
# effect, so there was nothing to roll back).
cluster_mark() { cat "$WORK/host-local/cbr0/last_reserved_ip.0" 2>/dev/null || echo none; }
expect_cluster_untouched() {
    check_eq "$1: refused before the cluster network was attached" "$2" "$(cluster_mark)"
}

direct '{"cniVersion":"1.0.0", "name": ' "${ADD_ENV[@]}" "$(args bad-pod)"
expect_error "malformed stdin JSON" 6 "not JSON" 1.1.0
expect_nothing_left "malformed stdin JSON"

direct "$CONF" CNI_CONTAINERID=$CID CNI_IFNAME=eth0 CNI_NETNS=/var/run/netns/wcni-bad "$(args bad-pod)"
expect_error "missing CNI_COMMAND" 4 "CNI_COMMAND"

direct "$CONF" CNI_COMMAND=ADD CNI_IFNAME=eth0 CNI_NETNS=/var/run/netns/wcni-bad "$(args bad-pod)"
expect_error "missing CNI_CONTAINERID" 4 "CNI_CONTAINERID"

direct "$CONF" CNI_COMMAND=ADD CNI_CONTAINERID=$CID CNI_IFNAME=eth0 "$(args bad-pod)"
expect_error "missing CNI_NETNS" 4 "CNI_NETNS"
expect_nothing_left "missing env"

make_pod bad-nad "default/does-not-exist"
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-nad)"
expect_error "unknown NAD" 103 "default/does-not-exist"
expect_nothing_left "unknown NAD"

direct "$(jq -c '.delegation = {guest: "no-such-guest"}' <<<"$CONF")" "${ADD_ENV[@]}" "$(args bad-pod)"
expect_error "missing delegation guest" 102 "no-such-guest"
expect_nothing_left "missing delegation guest"

# A NAD naming an IPAM policy that does not exist: fails after the cluster network was attached,
# so the rollback is what keeps the node clean.
apply_nad bad-policy '{"cniVersion":"0.3.1","type":"macvlan","master":"eth1","ipam":{"type":"whereabouts","range":"172.16.9.0/24","policy":{"guest":"no-such-policy"}}}'
make_pod bad-policy "bad-policy"
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-policy)"
expect_error "missing IPAM guest" 102 "no-such-policy"
expect_nothing_left "missing IPAM guest (rolled back)"

apply_nad bad-range '{"cniVersion":"0.3.1","type":"macvlan","master":"eth1","ipam":{"type":"whereabouts","range":"172.16.9.0"}}'
make_pod bad-range "bad-range"
mark=$(cluster_mark)
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-range)"
expect_error "range not a CIDR" 7 "is not a CIDR"
expect_cluster_untouched "range not a CIDR" "$mark"
expect_nothing_left "range not a CIDR"

# Whereabouts keys: a typo, a key wasmcni does not implement, and one whereabouts drops
# silently are refused with code 7 naming the key, before anything is attached.
for case in 'range_star|{"range":"172.16.9.0/24","range_star":"172.16.9.5"}|ipam."range_star" is not a whereabouts key' \
            'node_slice_size|{"range":"172.16.9.0/24","node_slice_size":"/28"}|ipam.node_slice_size is not supported' \
            'exclude without range|{"exclude":["172.16.9.0/30"],"ipRanges":[{"range":"172.16.9.0/24"}]}|ipam.exclude applies to ipam.range' \
            'block_size wider than the range|{"range":"172.16.9.0/24","block_size":20}|ipam.block_size 20: blocks must lie inside the range'; do
    IFS='|' read -r what ipam part <<<"$case"
    apply_nad bad-key "{\"cniVersion\":\"1.0.0\",\"type\":\"macvlan\",\"master\":\"eth1\",\"ipam\":$(jq -c '. + {type: "whereabouts"}' <<<"$ipam")}"
    make_pod bad-key "bad-key"
    mark=$(cluster_mark)
    direct "$CONF" "${ADD_ENV[@]}" "$(args bad-key)"
    expect_error "ipam key: $what" 7 "$part"
    expect_cluster_untouched "ipam key: $what" "$mark"
    expect_nothing_left "ipam key: $what"
done

apply_nad bad-version '{"cniVersion":"9.9.9","type":"macvlan","master":"eth1","ipam":{"type":"whereabouts","range":"172.16.9.0/24"}}'
make_pod bad-version "bad-version"
mark=$(cluster_mark)
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-version)"
expect_error "a NAD of an unknown cniVersion" 7 'cniVersion "9.9.9" is not a CNI version'
expect_cluster_untouched "a NAD of an unknown cniVersion" "$mark"
expect_nothing_left "a NAD of an unknown cniVersion"

make_pod bad-ips '[{"name":"bad-good","ips":["172.16.9.300"]}]'
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-ips)"
expect_error "a requested address that is not one" 7 'ips: "172.16.9.300" is not an IP address'
expect_nothing_left "a requested address that is not one"

make_pod bad-lo '[{"name":"bad-good","interface":"lo"}]'
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-lo)"
expect_error "interface lo" 101 'is reserved in every network namespace'
expect_nothing_left "interface lo"

apply_nad bad-zero '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1","ipam":{"type":"whereabouts","range":"0.0.0.0/0"}}'
make_pod bad-zero "bad-zero"
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-zero)"
expect_error "range 0.0.0.0/0" 7 "covers every address"
expect_nothing_left "range 0.0.0.0/0"

# The master is not on this node: the address taken first is given back, no link is left.
apply_nad bad-master '{"cniVersion":"1.0.0","type":"macvlan","master":"nosuch0","ipam":{"type":"whereabouts","range":"172.16.9.0/24"}}'
make_pod bad-master "bad-master"
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-master)"
expect_error "master interface missing" 7 'master interface "nosuch0" does not exist on this node'
expect_nothing_left "master interface missing (address released, rolled back)"

apply_nad bad-mode '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1","mode":"l2","ipam":{"type":"whereabouts","range":"172.16.9.0/24"}}'
make_pod bad-mode "bad-mode"
mark=$(cluster_mark)
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-mode)"
expect_error "macvlan mode that does not exist" 7 'macvlan mode "l2" is not supported'
expect_cluster_untouched "macvlan mode that does not exist" "$mark"
expect_nothing_left "bad mode"

apply_nad bad-mac '{"cniVersion":"1.0.0","type":"macvlan","master":"eth1","capabilities":{"mac":true},"ipam":{"type":"whereabouts","range":"172.16.9.0/24"}}'
make_pod bad-mac '[{"name":"bad-mac","mac":"01:00:5e:00:00:01"}]'
mark=$(cluster_mark)
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-mac)"
expect_error "requested MAC is multicast" 7 "is a multicast address"
expect_cluster_untouched "requested MAC is multicast" "$mark"
expect_nothing_left "bad MAC"

make_pod bad-dup "bad-good@net1,bad-good@net1"
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-dup)"
expect_error "duplicate interface names" 101 'interface "net1" is used twice'
expect_nothing_left "duplicate interface names"

# The good pod still attaches after all this, and DEL of a never-added container succeeds.
direct "$CONF" "${ADD_ENV[@]}" "$(args bad-pod)"
check_eq "a good ADD after the bad ones exits 0" 0 "$RC"
direct "$CONF" CNI_COMMAND=DEL CNI_CONTAINERID=$CID CNI_IFNAME=eth0 CNI_NETNS=/var/run/netns/wcni-bad "$(args bad-pod)"
check_eq "its DEL exits 0" 0 "$RC"
expect_nothing_left "after ADD + DEL"
direct "$CONF" CNI_COMMAND=DEL CNI_CONTAINERID=never-added CNI_IFNAME=eth0 CNI_NETNS=/var/run/netns/wcni-bad "$(args bad-pod)"
check_eq "DEL of a container never added exits 0" 0 "$RC"
