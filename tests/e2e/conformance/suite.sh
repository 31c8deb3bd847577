#!/usr/bin/env bash
# tests/e2e/conformance/suite.sh macvlan|ipvlan — the conformance cases of one link type: each
# plugin config run through cnitool by the reference plugin and by wasmcni (clusterNetwork =
# that same config), compared field by field (conformance/lib.sh). macvlan runs natively;
# ipvlan needs a kernel with ipvlan: natively when it has it, else in the kernel VM (all ipvlan
# cases in one boot; 011-conformance.sh decides).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/lib.sh"
SCENARIO=011-conformance-${1:?macvlan|ipvlan}

# CONFORMANCE_KEEP=DIR: keep every case's files (results, states, outputs) in DIR.
[[ -n ${CONFORMANCE_KEEP:-} ]] && defer "mkdir -p '$CONFORMANCE_KEEP' && cp -a '$WORK' '$CONFORMANCE_KEEP/'"
make_master eth1
ip link set eth1 mtu 1500
make_conformance_pod
t0=$SECONDS

# IPAM sections. static: the same address by construction; host-local: the same range with
# a dataDir per side (@DATADIR@), so both get the first address of the range.
static_v4='{"type":"static","addresses":[{"address":"10.10.0.5/24","gateway":"10.10.0.1"}],
  "routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.50.0/24","gw":"10.10.0.254"}]}'
# The same with a dns section in the IPAM config (static passes it on in its result).
static_dns='{"type":"static","addresses":[{"address":"10.10.0.5/24","gateway":"10.10.0.1"}],
  "routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.50.0/24","gw":"10.10.0.254"}],
  "dns":{"nameservers":["10.10.0.53"],"search":["ipam.example"]}}'
hostlocal='{"type":"host-local","ranges":[[{"subnet":"10.20.0.0/24","rangeStart":"10.20.0.10","gateway":"10.20.0.1"}]],
  "routes":[{"dst":"0.0.0.0/0"},{"dst":"172.30.0.0/16","gw":"10.20.0.254"}],"dataDir":"@DATADIR@"}'
dual='{"type":"static","addresses":[{"address":"10.40.0.5/24","gateway":"10.40.0.1"},{"address":"fd00:40::5/64","gateway":"fd00:40::1"}],
  "routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}'
# 1.1.0 route attributes (priority = metric; table) that static passes through.
static_11='{"type":"static","addresses":[{"address":"10.50.0.5/24","gateway":"10.50.0.1"}],
  "routes":[{"dst":"0.0.0.0/0","priority":100},{"dst":"192.168.60.0/24","gw":"10.50.0.254","priority":50}]}'
static_table='{"type":"static","addresses":[{"address":"10.50.0.5/24","gateway":"10.50.0.1"}],
  "routes":[{"dst":"0.0.0.0/0","table":100},{"dst":"192.168.61.0/24","gw":"10.50.0.254","table":100}]}'
plugin_dns='"dns":{"nameservers":["192.0.2.53"],"domain":"plugin.example","search":["plugin.example"]}'

case $1 in
macvlan)
    conformance_case "macvlan bridge, static (gateway, routes) @1.0.0" 1.0.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":$static_v4}"
    conformance_case "macvlan bridge, static with ipam dns @0.4.0" 0.4.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":$static_dns}"
    conformance_case "macvlan private, static @0.3.1" 0.3.1 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"private\",\"ipam\":$static_v4}"
    conformance_case "macvlan vepa, host-local (gateway, route list) @0.4.0" 0.4.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"vepa\",\"ipam\":$hostlocal}"
    conformance_case "macvlan bridge, host-local, mtu 1400 @1.1.0" 1.1.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"mtu\":1400,\"ipam\":$hostlocal}"
    conformance_case "macvlan (mode omitted), host-local @1.0.0" 1.0.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"ipam\":$hostlocal}"
    conformance_case "macvlan private, mtu 1280, static @0.4.0" 0.4.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"private\",\"mtu\":1280,\"ipam\":$static_v4}"
    conformance_case "macvlan bridge, plugin-level dns + ipam dns @1.0.0" 1.0.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",$plugin_dns,\"ipam\":$static_dns}"
    conformance_case "macvlan bridge, dual-stack static @1.0.0" 1.0.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":$dual}"
    conformance_case "macvlan bridge, static with route priority @1.1.0" 1.1.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":$static_11}"
    conformance_case "macvlan bridge, static with routes in table 100 @1.1.0" 1.1.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":$static_table}" \
        "plugins v1.10.0 ValidateExpectedRoute looks for routes in the main table only"
    conformance_case "macvlan bridge, configured mac @1.0.0" 1.0.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"mac\":\"02:00:5e:10:00:42\",\"ipam\":$static_v4}"
    conformance_case "macvlan passthru, static @1.0.0" 1.0.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"passthru\",\"ipam\":$static_v4}"
    conformance_case "macvlan bridge, no ipam (L2 only) @1.0.0" 1.0.0 \
        '{"type":"macvlan","master":"eth1","mode":"bridge"}'
    # A node always has an interface named like the pod's primary one (eth0). The reference
    # creates the link under a random name and renames it inside the pod, because the kernel
    # looks the requested name up in the *creating* namespace (rtnl_newlink).
    make_master eth0
    CONF_IFNAME=eth0 conformance_case "macvlan bridge as the pod's eth0 while the node has an eth0 @1.0.0" 1.0.0 \
        "{\"type\":\"macvlan\",\"master\":\"eth1\",\"mode\":\"bridge\",\"ipam\":$static_v4}"
    ip link del eth0
    log "macvlan cases: $((SECONDS - t0)) s"

    bad_config "macvlan bad config: master missing" 1.0.0 \
        '{"type":"macvlan","mode":"bridge","ipam":{"type":"static","addresses":[{"address":"10.10.0.5/24"}]}}' \
        "wasmcni requires master; the reference falls back to the default-route interface"
    bad_config "macvlan bad config: master does not exist" 1.0.0 \
        '{"type":"macvlan","master":"nosuch0","mode":"bridge","ipam":{"type":"static","addresses":[{"address":"10.10.0.5/24"}]}}'
    bad_config "macvlan bad config: bad mode" 1.0.0 \
        '{"type":"macvlan","master":"eth1","mode":"l2","ipam":{"type":"static","addresses":[{"address":"10.10.0.5/24"}]}}'
    bad_config "macvlan bad config: mtu above the master's" 1.0.0 \
        '{"type":"macvlan","master":"eth1","mode":"bridge","mtu":9000,"ipam":{"type":"static","addresses":[{"address":"10.10.0.5/24"}]}}'
    ;;
ipvlan)
    conformance_case "ipvlan l2, static (gateway, routes), ipam dns @1.0.0" 1.0.0 \
        "{\"type\":\"ipvlan\",\"master\":\"eth1\",\"mode\":\"l2\",\"ipam\":$static_dns}"
    conformance_case "ipvlan l2, host-local (gateway, route list) @0.3.1" 0.3.1 \
        "{\"type\":\"ipvlan\",\"master\":\"eth1\",\"mode\":\"l2\",\"ipam\":$hostlocal}"
    conformance_case "ipvlan l3, host-local @0.4.0" 0.4.0 \
        "{\"type\":\"ipvlan\",\"master\":\"eth1\",\"mode\":\"l3\",\"ipam\":$hostlocal}"
    conformance_case "ipvlan l3s, static, mtu 1400 @1.1.0" 1.1.0 \
        "{\"type\":\"ipvlan\",\"master\":\"eth1\",\"mode\":\"l3s\",\"mtu\":1400,\"ipam\":$static_v4}"
    conformance_case "ipvlan (mode omitted), static, plugin-level dns @1.0.0" 1.0.0 \
        "{\"type\":\"ipvlan\",\"master\":\"eth1\",$plugin_dns,\"ipam\":$static_v4}"
    conformance_case "ipvlan l2, dual-stack static @1.0.0" 1.0.0 \
        "{\"type\":\"ipvlan\",\"master\":\"eth1\",\"mode\":\"l2\",\"ipam\":$dual}"
    # The VM's own NIC is eth0 (see the macvlan part for why that matters).
    CONF_IFNAME=eth0 conformance_case "ipvlan l2 as the pod's eth0 while the node has an eth0 @1.0.0" 1.0.0 \
        "{\"type\":\"ipvlan\",\"master\":\"eth1\",\"mode\":\"l2\",\"ipam\":$static_v4}"
    log "ipvlan cases: $((SECONDS - t0)) s"

    bad_config "ipvlan bad config: master does not exist" 1.0.0 \
        '{"type":"ipvlan","master":"nosuch0","mode":"l2","ipam":{"type":"static","addresses":[{"address":"10.10.0.5/24"}]}}'
    bad_config "ipvlan bad config: bad mode" 1.0.0 \
        '{"type":"ipvlan","master":"eth1","mode":"bridge","ipam":{"type":"static","addresses":[{"address":"10.10.0.5/24"}]}}'
    bad_config "ipvlan bad config: no ipam" 1.0.0 \
        '{"type":"ipvlan","master":"eth1","mode":"l2"}'
    ;;
*) echo "usage: $0 macvlan|ipvlan" >&2; exit 2 ;;
esac
log "$1 suite: $((SECONDS - t0)) s"
