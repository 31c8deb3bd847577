#!/usr/bin/env bash
# tests/e2e/011-conformance.sh — wasmcni's built-in macvlan/ipvlan against the reference plugins
# (containernetworking/plugins, as built by tests/tools/build.sh): the same plugin config run
# through cnitool as the reference's conflist (pod A) and as wasmcni's clusterNetwork (pod B),
# compared field by field — result JSON, link/addresses/routes/sysctls in the pod, CHECK, DEL
# twice, host-local leases — plus bad-config parity (conformance/lib.sh, conformance/suite.sh).
# macvlan runs on this kernel; ipvlan natively when the kernel has it, else every ipvlan case in
# one boot of the kernel VM (tests/vm/). A VM that cannot start is a failure, never a skip.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

# CONFORMANCE_PARTS (default "macvlan ipvlan"): which parts to run, while working on one.
parts=${CONFORMANCE_PARTS:-macvlan ipvlan}
t0=$SECONDS
if [[ $parts == *macvlan* ]]; then
    bash "$HERE/conformance/suite.sh" macvlan
    log "native macvlan part: $((SECONDS - t0)) s"
fi
[[ $parts == *ipvlan* ]] || exit 0

t0=$SECONDS
if ip link add wcni-probe type veth peer name wcni-probep 2>/dev/null &&
   ip link add link wcni-probe name wcni-probe-ipv type ipvlan mode l2 2>/dev/null; then
    ip link del wcni-probe
    log "this kernel has ipvlan: ipvlan cases run natively"
    bash "$HERE/conformance/suite.sh" ipvlan
    log "native ipvlan part: $((SECONDS - t0)) s"
    exit
fi
ip link del wcni-probe 2>/dev/null
log "no ipvlan in this kernel ($(uname -r)): ipvlan cases run in the kernel VM"

# What the VM needs, laid out the way lib.sh expects it (as 003-seed-ipvlan.sh does).
share=$WORK/share
mkdir -p "$share/tools/bin" "$share/tools/cni" "$share/state" "$share/conformance"
cp "$TOOLS/bin/cnitool" "$TOOLS/bin/kubectl" "$share/tools/bin/"
cp "$TOOLS"/cni/* "$share/tools/cni/"
cp "$WASMCNI" "$share/wasmcni"
cp "$STATE_DIR/wasmcni-vm.kubeconfig" "$share/state/wasmcni.kubeconfig"
sed "s#server: https://127.0.0.1:[0-9]*#server: https://10.0.2.100:6443#" "$KUBECONFIG" > "$share/state/admin.kubeconfig"
cp "$HERE/lib.sh" "$share/"
cp "$HERE"/conformance/* "$share/conformance/"
cat > "$share/run.sh" <<'IN'
#!/bin/bash
# Inside the VM: the ipvlan cases, with the VM's paths.
cd /mnt/host/files
export REPO=/mnt/host/files TOOLS=/mnt/host/files/tools KUBECTL=/mnt/host/files/tools/bin/kubectl \
    WASMCNI=/mnt/host/files/wasmcni STATE_DIR=/mnt/host/files/state \
    KUBECONFIG=/mnt/host/files/state/admin.kubeconfig E2E_RESULTS=/tmp/results
mkdir -p /var/run/netns
bash ./conformance/suite.sh ipvlan
IN
chmod +x "$share/run.sh"
mv "$share" "$WORK/files"
console=$WORK/console.log
VM_APISERVER_PORT=$APISERVER_PORT VM_TIMEOUT=${VM_TIMEOUT:-1200} \
    bash "$REPO/tests/vm/run-in-vm.sh" "$WORK/files/run.sh" "$WORK/files" > "$console" 2>&1
rc=$?
grep -E '^(PASS|FAIL) ' "$console" >> "$E2E_RESULTS"
grep -E '^(PASS|FAIL) |^\[|^Error' "$console" >&2
if [[ $rc -ne 0 ]] || ! grep -q '^PASS ' "$console"; then
    fail "ipvlan conformance in the kernel VM ran" "run-in-vm.sh exited $rc; console: $(tail -n 20 "$console")"
fi
log "ipvlan part in the kernel VM (boot included): $((SECONDS - t0)) s"
