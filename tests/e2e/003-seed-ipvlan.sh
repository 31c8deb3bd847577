#!/usr/bin/env bash
# tests/e2e/003-seed-ipvlan.sh — runs ipvlan/seed-ipvlan.sh natively when this kernel has ipvlan,
# else inside the kernel VM (tests/vm/) with the apiserver reached through qemu's restricted
# guestfwd. Either way it runs: a VM that cannot start is a failure, never a skip.
source "$(dirname "$0")/lib.sh"

if has_ipvlan; then
    log "this kernel has ipvlan: running natively"
    exec bash "$(dirname "$0")/ipvlan/seed-ipvlan.sh"
fi
log "no ipvlan in this kernel ($(uname -r)): running in the kernel VM"
VM_TIMEOUT=${VM_TIMEOUT:-600} in_kernel_vm "ipvlan scenario" ipvlan/seed-ipvlan.sh
