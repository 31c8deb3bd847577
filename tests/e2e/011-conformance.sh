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
if has_ipvlan; then
    log "this kernel has ipvlan: ipvlan cases run natively"
    bash "$HERE/conformance/suite.sh" ipvlan
    log "native ipvlan part: $((SECONDS - t0)) s"
    exit
fi
log "no ipvlan in this kernel ($(uname -r)): ipvlan cases run in the kernel VM, one boot"
in_kernel_vm "ipvlan conformance" conformance/suite.sh ipvlan
log "ipvlan part in the kernel VM (boot included): $((SECONDS - t0)) s"
