#!/usr/bin/env bash
# tests/bench/cni.sh [-n N] [--warmup W] [--runs R] — ADD, DEL and VERSION latency of wasmcni in
# exec mode and in thick mode (through a `wasmcni daemon` it starts) against the reference
# macvlan + host-local plugins and against the chain wasmcni replaces — Multus thin v4.2.4 with
# macvlan + host-local as the cluster network and a macvlan + whereabouts v0.9.2 NAD (the peers
# built by tests/tools/peers) — on the same inputs, interleaved round-robin in one run. A
# benchmark, not a test: nothing here asserts a time.
#
# Like the e2e tier it makes a "node" network namespace, starts the throwaway control plane on
# that namespace's loopback (tests/cluster/with-cluster.sh), uses a veth there as the macvlan
# master and pod namespaces it creates; the machine's own network namespace is never touched and
# everything is removed at exit. tests/bench/cni_driver.py execs every call as a runtime does (a
# fresh process, CNI_* environment, config on stdin) and times spawn→exit with a monotonic clock.
# Prints a Markdown table for the README's performance table and the spread between runs.
#
# Needs root, tests/setup.sh's tools (tests/.tools) and a release build:
#   cargo build --release --locked -p wasmcni && bash tests/bench/cni.sh
# WASMCNI: the binary (default target/release/wasmcni; copied first, so a rebuild during the run
# changes nothing). CNI_BENCH_RAW=FILE keeps every sample; CNI_BENCH_PROFILE=DIR adds, after the
# runs, untimed ADD/DELs of each wasmcni case with WASMCNI_LOG=trace, under strace and perf stat.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export REPO
export WASMCNI=${WASMCNI:-$REPO/target/release/wasmcni}
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
export PYTHON

if [[ "${1:-}" != --in-node ]]; then
    [[ $(id -u) == 0 ]] || { echo "cni.sh: needs root (network namespaces)" >&2; exit 1; }
    [[ -x $WASMCNI ]] || { echo "cni.sh: $WASMCNI not built (cargo build --release --locked -p wasmcni)" >&2; exit 1; }
    export BENCH_CMD="bash tests/bench/cni.sh${*:+ $*}"
    node=wcni-bench-$$
    ip netns add "$node" || exit 1
    trap 'ip netns del '"$node" EXIT
    ip -n "$node" link set lo up
    ip netns exec "$node" "$REPO/tests/cluster/with-cluster.sh" "$0" --in-node "$@"
    exit
fi

# ---- inside the node namespace, cluster up (with-cluster.sh sourced its env) ----
shift
: "${KUBECONFIG:?}" "${KUBECTL:?}" "${TOOLS:?}"
STATE_DIR=$(dirname "$KUBECONFIG")
WORK=$(mktemp -d /tmp/wasmcni-bench-cni.XXXXXX)
NETNS=()
# shellcheck disable=SC2317  # invoked by trap
cleanup() {
    local n
    [[ -n ${DAEMON:-} ]] && kill -9 "$DAEMON" 2>/dev/null
    for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
    ip link del bench0 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
source "$REPO/tests/cluster/objects.sh"   # kc, apply_nad, make_pod

# CNI_PATH: a copy of wasmcni and the reference plugins (tests/tools: containernetworking/plugins).
mkdir -p "$WORK/bin"
cp "$WASMCNI" "$WORK/bin/wasmcni" || exit 1
for p in "$TOOLS"/cni/*; do ln -s "$(readlink -f "$p")" "$WORK/bin/"; done
# The peers (wasmcni execs neither: its macvlan and whereabouts IPAM are in-process).
PEERS=$REPO/tests/.peers/bin
for p in multus whereabouts; do
    [[ -x $PEERS/$p ]] || { echo "cni.sh: $PEERS/$p missing (bash tests/tools/peers/build.sh)" >&2; exit 1; }
    cp "$PEERS/$p" "$WORK/bin/$p"
done

# The macvlan master, standing in for the node's eth1: a veth whose peer stays here.
ip link add bench0 type veth peer name bench0p && ip link set bench0 up && ip link set bench0p up || exit 1

# One pod namespace per case (a case's ADD and DEL leave it as they found it).
declare -A NS
for c in ref_one w_one_rt w_one_get ref_two w_two_rt w_two_get d_one_rt d_two_rt d_two_get multus_two; do
    n=wcnib-$$-${c//_/-}
    ip netns del "$n" 2>/dev/null; rm -f "/var/run/netns/$n"
    ip netns add "$n" && ip -n "$n" link set lo up || exit 1
    NETNS+=("$n"); NS[$c]=$n
done

# The cluster network, for both sides: macvlan on bench0 + host-local. wasmcni's clusterNetwork
# is this file; the reference is exec'd with the same plugin config.
cat > "$WORK/cluster.conflist" <<JSON
{"cniVersion":"1.0.0","name":"benchnet","plugins":[
  {"type":"macvlan","master":"bench0","mode":"bridge",
   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"dataDir":"$WORK/host-local"}}]}
JSON
# The reference's second interface (the Multus-shaped case): the same shape on its own range.
cat > "$WORK/net1.conflist" <<JSON
{"cniVersion":"1.0.0","name":"benchnet1","plugins":[
  {"type":"macvlan","master":"bench0","mode":"bridge",
   "ipam":{"type":"host-local","ranges":[[{"subnet":"172.16.21.0/24"}]],"dataDir":"$WORK/host-local"}}]}
JSON
# The node's primary conflist: wasmcni, with containerd's pod-annotations capability declared
# (the driver passes runtimeConfig only in the cases that model a runtime which fills it in).
cat > "$WORK/00-wasmcni.conflist" <<JSON
{"cniVersion":"1.0.0","name":"wasmcni","plugins":[{"type":"wasmcni",
  "kubeconfig":"$STATE_DIR/wasmcni.kubeconfig",
  "clusterNetwork":"$WORK/cluster.conflist",
  "cniDir":"$WORK/delegates","guestCacheDir":"$WORK/guests",
  "nodeName":"node-1","capabilities":{"io.kubernetes.cri.pod-annotations":true}}]}
JSON

# The extra network of the Multus-shaped case: the seed's NAD shape (macvlan, whereabouts IPAM).
apply_nad bench-extra '{"cniVersion":"0.3.1","plugins":[{"type":"macvlan","master":"bench0","mode":"bridge","ipam":{"type":"whereabouts","range":"172.16.20.0/24"}}]}' || exit 1
for p in w-one-rt w-one-get d-one-rt; do make_pod "bench-$p" "" || exit 1; done
for p in w-two-rt w-two-get d-two-rt d-two-get; do make_pod "bench-$p" "default/bench-extra" || exit 1; done

# The Multus chain: Multus thin with the cluster network inline in "delegates" (as its installer
# writes it; v4.2.4's DEL breaks with a conflist path as clusterNetwork), the same NAD shape on
# its own range, whereabouts reading its flat file for the kubeconfig.
echo "{\"kubernetes\":{\"kubeconfig\":\"$KUBECONFIG\"},\"log_level\":\"error\"}" > "$WORK/whereabouts.conf"
apply_nad bench-extra-m "{\"cniVersion\":\"0.3.1\",\"plugins\":[{\"type\":\"macvlan\",\"master\":\"bench0\",\"mode\":\"bridge\",\"ipam\":{\"type\":\"whereabouts\",\"range\":\"172.16.22.0/24\",\"configuration_path\":\"$WORK/whereabouts.conf\"}}]}" || exit 1
make_pod bench-multus-two "default/bench-extra-m" || exit 1
jq -n --arg k "$KUBECONFIG" --arg dir "$WORK/multus" --slurpfile c "$WORK/cluster.conflist" \
    '{cniVersion: "1.0.0", name: "multus-cni-network",
      plugins: [{type: "multus", kubeconfig: $k, delegates: [$c[0]], cniDir: $dir}]}' > "$WORK/00-multus.conflist"

# The node daemon for the thick-mode cases (the others set WASMCNI_DAEMON_SOCKET empty).
mkdir -p -m 0700 "$WORK/daemon"
WASMCNI_LOG=warn NODENAME=node-1 "$WORK/bin/wasmcni" daemon --socket "$WORK/daemon/daemon.sock" \
    >"$WORK/daemon/log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do grep -q "daemon serving on" "$WORK/daemon/log" && break; sleep 0.1; done
grep -q "daemon serving on" "$WORK/daemon/log" || { echo "cni.sh: the daemon did not start:" >&2; cat "$WORK/daemon/log" >&2; exit 1; }

jq -n --arg work "$WORK" --arg cni_path "$WORK/bin" \
    --slurpfile ref "$WORK/cluster.conflist" --slurpfile net1 "$WORK/net1.conflist" \
    --slurpfile w "$WORK/00-wasmcni.conflist" --slurpfile m "$WORK/00-multus.conflist" \
    --arg ns_ref_one "${NS[ref_one]}" --arg ns_w_one_rt "${NS[w_one_rt]}" --arg ns_w_one_get "${NS[w_one_get]}" \
    --arg ns_ref_two "${NS[ref_two]}" --arg ns_w_two_rt "${NS[w_two_rt]}" --arg ns_w_two_get "${NS[w_two_get]}" \
    --arg ns_d_one_rt "${NS[d_one_rt]}" --arg ns_d_two_rt "${NS[d_two_rt]}" --arg ns_d_two_get "${NS[d_two_get]}" \
    --arg ns_multus_two "${NS[multus_two]}" \
    --arg daemon_socket "$WORK/daemon/daemon.sock" \
    --argjson uids "$(kc get pods -o json | jq -c '[.items[] | {(.metadata.name): .metadata.uid}] | add // {}')" \
    --arg machine "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" \
    '{work: $work, cni_path: $cni_path, machine: $machine, daemon_socket: $daemon_socket, uids: $uids,
      ref_conflist: $ref[0], ref_net1_conflist: $net1[0], wasmcni_conflist: $w[0],
      multus_conflist: $m[0],
      extra_nad: "default/bench-extra",
      netns: {ref_one: ("/var/run/netns/" + $ns_ref_one), w_one_rt: ("/var/run/netns/" + $ns_w_one_rt),
              w_one_get: ("/var/run/netns/" + $ns_w_one_get), ref_two: ("/var/run/netns/" + $ns_ref_two),
              w_two_rt: ("/var/run/netns/" + $ns_w_two_rt), w_two_get: ("/var/run/netns/" + $ns_w_two_get),
              d_one_rt: ("/var/run/netns/" + $ns_d_one_rt), d_two_rt: ("/var/run/netns/" + $ns_d_two_rt),
              d_two_get: ("/var/run/netns/" + $ns_d_two_get),
              multus_two: ("/var/run/netns/" + $ns_multus_two)},
      pods: {ref_one: "bench-ref-one", w_one_rt: "bench-w-one-rt", w_one_get: "bench-w-one-get",
             ref_two: "bench-ref-two", w_two_rt: "bench-w-two-rt", w_two_get: "bench-w-two-get",
             d_one_rt: "bench-d-one-rt", d_two_rt: "bench-d-two-rt", d_two_get: "bench-d-two-get",
             multus_two: "bench-multus-two"}}' \
    > "$WORK/setup.json" || exit 1

"$PYTHON" "$HERE/cni_driver.py" --setup "$WORK/setup.json" --command "$BENCH_CMD" \
    ${CNI_BENCH_RAW:+--raw "$CNI_BENCH_RAW"} ${CNI_BENCH_PROFILE:+--profile "$CNI_BENCH_PROFILE"} "$@"
rc=$?
kill -TERM $DAEMON; wait $DAEMON 2>/dev/null
grep -E "ERROR|WARN" "$WORK/daemon/log" | grep -v "serving on\|stopping" | head -5 >&2

# Every ADD was undone: nothing may be left (links in pod namespaces, addresses, cache).
left=""
for n in "${NETNS[@]}"; do
    l=$(ip -n "$n" -o link show | awk -F': ' '{print $2}' | grep -v '^lo$' | tr '\n' ' ')
    [[ -z $l ]] || left+=" $n: $l;"
done
for pool in 172.16.20.0-24 172.16.22.0-24; do
    alloc=$(kc -n kube-system get ippools.whereabouts.cni.cncf.io $pool -o json 2>/dev/null | jq -c '.spec.allocations // {}')
    [[ -z $alloc || $alloc == '{}' ]] || left+=" IPPool $pool allocations $alloc;"
done
[[ -z $(ls -A "$WORK/delegates" 2>/dev/null) ]] || left+=" delegate cache $(ls "$WORK/delegates");"
for f in "$WORK"/host-local/*/[0-9]*; do [[ -e $f ]] && { left+=" host-local lease ${f#"$WORK"/};"; break; }; done
if [[ -n $left ]]; then echo "cni.sh: left behind after the run:$left" >&2; rc=1; fi
exit $rc
