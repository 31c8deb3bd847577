#!/usr/bin/env bash
# tests/e2e/018-daemon.sh — thick mode: `wasmcni daemon` serves the node's calls on a unix
# socket and `wasmcni` exec'd by cnitool (the shim) forwards them there:
#   - ADD, CHECK, DEL of a pod with eth0 + a macvlan net1 from whereabouts IPAM, served by the
#     daemon (its log names each call), answered as exec mode answers: the same refusals byte
#     for byte (an unknown NAD, a malformed config), the same IPPool entries;
#   - the socket is 0600 in a 0700 directory; a socket in a directory others may write is not
#     used (the call runs in-process);
#   - bounded: with one slot and no queue, 6 concurrent ADDs all succeed — those the daemon
#     declines run in their shim's process — with 6 distinct addresses;
#   - the shim never blocks a DEL: with the daemon stopped (SIGSTOP) a DEL answers in-process
#     within the shim's wait; with it killed (a stale socket) DEL and ADD run in-process;
#   - /metrics (--metrics) counts what it served by verb and code, and its declines, as its log
#     says; /healthz and /readyz answer while it runs;
#   - killed mid-burst (SIGKILL): each ADD succeeds or answers code 11, each DEL then succeeds
#     in-process, and no link, entry or reservation is left;
#   - SIGTERM: the daemon removes its socket and exits 0; nothing is left in the pool.
source "$(dirname "$0")/lib.sh"

make_master eth1
write_wasmcni_conf 1.0.0
apply_seed_nad dmn-net macvlan eth1 172.16.90.0/24
POOL=172.16.90.0-24
cleanup() {
    kc -n kube-system delete ippools.whereabouts.cni.cncf.io $POOL --ignore-not-found >/dev/null
    delete_orips '172\.16\.90\.'
}
cleanup
defer cleanup
net1_v4() { ip -n "$1" -j addr show net1 2>/dev/null | jq -r '.[0].addr_info[]?|select(.family=="inet")|.local'; }
RUN=$WORK/run
SOCK=$RUN/daemon.sock
DLOG=$WORK/daemon.log
# Started when it says it serves: a socket left by a killed daemon is there before the new
# one has bound it (or can take a SIGTERM as a clean stop).
start_daemon() {
    local before
    before=$(grep -c "daemon serving on" "$DLOG" 2>/dev/null)
    WASMCNI_LOG=info "$WASMCNI" daemon --socket "$SOCK" "$@" >>"$DLOG" 2>&1 &
    DPID=$!
    for _ in $(seq 100); do
        (($(grep -c "daemon serving on" "$DLOG") > ${before:-0})) && return 0
        kill -0 $DPID 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
defer 'kill -9 $DPID 2>/dev/null'
served() { grep -c "served $1" "$DLOG"; }

# Its metrics and probes on the node namespace's loopback.
MPORT=19745
scrape() { curl -s -o "$WORK/scrape.out" -w '%{http_code}' "http://127.0.0.1:$MPORT$1"; }
# "VERB CODE N" per wasmcni_cni_calls_total series, sorted.
calls_counted() {
    scrape /metrics >/dev/null
    sed -n 's/^wasmcni_cni_calls_total{verb="\([A-Z]*\)",code="\([0-9]*\)"} \([0-9]*\)$/\1 \2 \3/p' "$WORK/scrape.out" | sort
}
check "the daemon starts and listens" start_daemon --metrics 127.0.0.1:$MPORT
check_eq "/healthz answers 200" 200 "$(scrape /healthz)"
check_eq "/readyz answers 200 (it takes calls)" 200 "$(scrape /readyz)"
check_eq "its socket is 0600 in a 0700 directory" "600 700" "$(stat -c %a "$SOCK") $(stat -c %a "$RUN")"
export WASMCNI_DAEMON_SOCKET=$SOCK

pods=(dmn-a dmn-b)
for p in "${pods[@]}"; do new_netns wcni-$p; make_pod $p dmn-net; done
defer "kc delete pod ${pods[*]} dmn-bad dmn-k --wait=false --ignore-not-found"
out=$(cni add wcni-dmn-a dmn-a); rc=$?
check_eq "ADD through the daemon exits 0" 0 "$rc"
check_eq "…served by the daemon" 1 "$(served ADD)"
check_eq "…and the shim ran nothing itself (no line in its log)" 0 "$(cat "$WORK/wasmcni.log" 2>/dev/null | grep -c .)"
check_eq "net1 has the lowest free address" 172.16.90.1 "$(net1_v4 wcni-dmn-a)"
echo "$out" > "$WORK/result-a.json"
check_json "the result is the cluster network's, with eth0 (as Multus answers)" "$WORK/result-a.json" '(.interfaces|map(.name)|index("eth0")!=null) and (.ips[0].address|startswith("10.244.1."))'
check_eq "the IPPool entry is whereabouts' (podref, net1)" '{"ifname":"net1","podref":"default/dmn-a"}' \
    "$(pool_allocations $POOL | jq -c '.["1"]|{ifname,podref}')"
check "CHECK through the daemon" cni check wcni-dmn-a dmn-a
check_eq "…served by it" 1 "$(served CHECK)"

# The same refusals as exec mode, byte for byte.
new_netns wcni-dmn-bad
make_pod dmn-bad default/no-such-nad
via_daemon=$(cni add wcni-dmn-bad dmn-bad 2>&1)
in_process=$(WASMCNI_DAEMON_SOCKET= cni add wcni-dmn-bad dmn-bad 2>&1)
check_grep "an unknown NAD is refused through the daemon, naming it" 'NetworkAttachmentDefinition default/no-such-nad not found' "$via_daemon"
check_eq "…byte for byte as exec mode refuses it" "$in_process" "$via_daemon"
raw() { CNI_COMMAND=ADD CNI_CONTAINERID=c-raw CNI_IFNAME=eth0 CNI_NETNS=/var/run/netns/wcni-dmn-bad \
        CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=dmn-bad" CNI_PATH=$CNI_BIN "$WASMCNI" <<<'{"cniVersion":"1.0.0",' 2>/dev/null; echo "rc=$?"; }
check_eq "a malformed config: the same answer and exit status either way" "$(WASMCNI_DAEMON_SOCKET= raw)" "$(raw)"
check_grep "…code 6 through the daemon" '"code": ?6' "$(raw)"

# A socket in a directory others may write is not the daemon's: the call runs in-process.
chmod 0777 "$RUN"
n=$(served ADD)
WASMCNI_LOG=debug cni add wcni-dmn-b dmn-b >/dev/null; rc=$?
check_eq "ADD of dmn-b with the socket's directory world-writable exits 0" 0 "$rc"
check_eq "…in-process: the daemon served no ADD" "$n" "$(served ADD)"
check_grep "…and the shim says why" 'writable by others: not used' "$(cat "$WORK/wasmcni.log")"
chmod 0700 "$RUN"
# What the daemon served so far: ADD and CHECK of dmn-a, the unknown NAD's ADD, two malformed
# configs; not dmn-b's ADD (in-process).
# (103: a requested NAD does not exist, README's code table; 6: the config is not JSON.)
want=$(printf '%s\n' "ADD 0 1" "ADD 103 1" "ADD 6 2" "CHECK 0 1" | sort)
check_eq "/metrics counts the calls it served, by verb and CNI code" "$want" "$(calls_counted)"
check_grep "…and how long each took (ADDs in the histogram)" '^wasmcni_cni_call_seconds_count\{verb="ADD"\} 4$' "$(cat "$WORK/scrape.out")"
check "DEL of dmn-b through the daemon" cni del wcni-dmn-b dmn-b

# Bounded: one slot, no queue; 6 ADDs at once, the declined ones run in their shim's process.
kill -TERM $DPID; wait $DPID 2>/dev/null
check_eq "a stopped daemon's endpoint is gone" 000 "$(scrape /readyz)"
check "a restart with one slot and no queue" start_daemon --max-calls 1 --max-waiting 0 --metrics 127.0.0.1:$MPORT
burst=(dmn-c0 dmn-c1 dmn-c2 dmn-c3 dmn-c4 dmn-c5)
for p in "${burst[@]}"; do new_netns wcni-$p; make_pod $p dmn-net; done
defer "kc delete pod ${burst[*]} --wait=false --ignore-not-found"
for p in "${burst[@]}"; do ( cni add wcni-$p $p >"$WORK/$p.out" 2>&1; echo $? > "$WORK/$p.rc" ) & done
wait_for() { for _ in $(seq 600); do [[ $(ls "$WORK"/dmn-c*.rc 2>/dev/null | wc -l) == 6 ]] && return 0; sleep 0.1; done; return 1; }
check "the 6 ADDs finish" wait_for
check_eq "all 6 exit 0" "0 0 0 0 0 0" "$(cat "$WORK"/dmn-c*.rc | tr '\n' ' ' | sed 's/ $//')"
for p in "${burst[@]}"; do [[ $(cat "$WORK/$p.rc") == 0 ]] || log "$p: $(head -c 600 "$WORK/$p.out")"; done
addrs=$(for p in "${burst[@]}"; do net1_v4 wcni-$p; done | sort -u | grep -c .)
check_eq "6 distinct addresses" 6 "$addrs"
declined=$(grep -c 'declined a call: busy' "$DLOG")
log "burst: the daemon served $(grep -c 'served ADD' "$DLOG") ADDs in all and declined $declined"
check "the daemon declined some (busy) and those ran in-process" test "$declined" -ge 1
scrape /metrics >/dev/null
check_grep "/metrics counts the declines as the log does" "^wasmcni_daemon_declined_calls_total $declined\$" "$(cat "$WORK/scrape.out")"
check_grep "…and the ADDs it served" "^wasmcni_cni_calls_total\\{verb=\"ADD\",code=\"0\"\\} $((6 - declined))\$" "$(cat "$WORK/scrape.out")"
check_grep "…with nothing waiting or running now" '^wasmcni_daemon_calls_waiting 0$' "$(cat "$WORK/scrape.out")"
for p in "${burst[@]}"; do cni del wcni-$p $p >/dev/null; done
kill -TERM $DPID; wait $DPID 2>/dev/null
check "restarted with the defaults" start_daemon

# The shim never blocks a DEL: a stopped daemon (SIGSTOP) takes the call and never answers.
kill -STOP $DPID
t0=$(date +%s)
check "DEL of dmn-a with the daemon stopped exits 0" cni del wcni-dmn-a dmn-a
took=$(( $(date +%s) - t0 ))
log "DEL with a stopped daemon: $took s (the shim waits 15 s, then runs it)"
check "…within the shim's 15 s wait and the in-process DEL" test "$took" -le 40
check_empty "…net1 is gone" "$(net1_v4 wcni-dmn-a)"
check_eq "…and its address is free" null "$(pool_allocations $POOL | jq -c '.["1"]')"
kill -CONT $DPID
sleep 1
check "the resumed daemon's late DEL of dmn-a is harmless (DEL is idempotent)" cni del wcni-dmn-a dmn-a

# Killed (its socket stale): ADD and DEL run in-process.
kill -9 $DPID; wait $DPID 2>/dev/null
check "a killed daemon leaves its socket" test -S "$SOCK"
new_netns wcni-dmn-k; make_pod dmn-k dmn-net
check "ADD with the daemon dead runs in-process" cni add wcni-dmn-k dmn-k
check "DEL with the daemon dead runs in-process" cni del wcni-dmn-k dmn-k

# Killed mid-burst: every ADD answers (served, or code 11 from a shim whose daemon died with
# its call), every DEL then succeeds in-process, and nothing is left (checked at the end).
check "a daemon for a burst" start_daemon
kb=(dmn-m0 dmn-m1 dmn-m2 dmn-m3 dmn-m4 dmn-m5 dmn-m6 dmn-m7 dmn-m8 dmn-m9)
for p in "${kb[@]}"; do new_netns wcni-$p; make_pod $p dmn-net; done
defer "kc delete pod ${kb[*]} --wait=false --ignore-not-found"
n=$(served ADD)
for p in "${kb[@]}"; do ( cni add wcni-$p $p >"$WORK/$p.out" 2>&1; echo $? > "$WORK/$p.rc" ) & done
for _ in $(seq 200); do (($(served ADD) > n)) && break; sleep 0.05; done
kill -9 $DPID; wait $DPID 2>/dev/null
in_daemon=$(( $(served ADD) - n ))
wait_kb() { for _ in $(seq 600); do [[ $(ls "$WORK"/dmn-m*.rc 2>/dev/null | wc -l) == 10 ]] && return 0; sleep 0.1; done; return 1; }
check "every ADD of the burst answers" wait_kb
ok=0; retry=0
for p in "${kb[@]}"; do
    case $(cat "$WORK/$p.rc") in
        0) ok=$((ok + 1)) ;;
        *) grep -q 'node daemon did not answer' "$WORK/$p.out" && retry=$((retry + 1)) ;;
    esac
done
log "killed mid-burst: $in_daemon ADDs served before the kill, $ok of 10 succeeded, $retry answered code 11 (the daemon died with them)"
check_eq "…each either succeeded or answered the daemon's death (code 11, retryable)" 10 $((ok + retry))
check "…and some were taken by the daemon when it died" test "$retry" -ge 1
dels=0; for p in "${kb[@]}"; do cni del wcni-$p $p >/dev/null 2>&1 && dels=$((dels + 1)); done
check_eq "every DEL succeeds (in-process: the socket is stale)" 10 "$dels"
left=$(for p in "${kb[@]}"; do ip -n wcni-$p -o link show 2>/dev/null | grep -v ' lo:'; done)
check_empty "…and no link is left in the burst's namespaces" "$left"

# SIGTERM: the socket goes, the daemon exits 0.
check "a daemon restarts over the stale socket" start_daemon
kill -TERM $DPID; wait $DPID; rc=$?
check_eq "SIGTERM: exit 0" 0 "$rc"
check "…and its socket is removed" test ! -e "$SOCK"
check_eq "nothing is left in the pool" '{}' "$(pool_allocations $POOL)"
check_empty "…nor any reservation" "$(orips_matching '172\.16\.90\.')"
