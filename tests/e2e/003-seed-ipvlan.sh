#!/usr/bin/env bash
# tests/e2e/003-seed-ipvlan.sh — runs ipvlan/seed-ipvlan.sh natively when this kernel has ipvlan,
# else inside the kernel VM (tests/vm/) with the apiserver reached through qemu's restricted
# guestfwd. Either way it runs: a VM that cannot start is a failure, never a skip.
source "$(dirname "$0")/lib.sh"

if ip link add wcni-probe type veth peer name wcni-probep 2>/dev/null &&
   ip link add link wcni-probe name wcni-probe-ipv type ipvlan mode l2 2>/dev/null; then
    ip link del wcni-probe
    log "this kernel has ipvlan: running natively"
    exec bash "$(dirname "$0")/ipvlan/seed-ipvlan.sh"
fi
ip link del wcni-probe 2>/dev/null
log "no ipvlan in this kernel ($(uname -r)): running in the kernel VM"

# What the VM needs, laid out the way lib.sh expects it.
share=$WORK/share
mkdir -p "$share/tools/bin" "$share/tools/cni" "$share/state" "$share/ipvlan"
cp "$TOOLS/bin/cnitool" "$TOOLS/bin/kubectl" "$share/tools/bin/"
cp "$TOOLS"/cni/* "$share/tools/cni/"
cp "$WASMCNI" "$share/wasmcni"
cp "$STATE_DIR/wasmcni-vm.kubeconfig" "$share/state/wasmcni.kubeconfig"
sed "s#server: https://127.0.0.1:[0-9]*#server: https://10.0.2.100:6443#" "$KUBECONFIG" > "$share/state/admin.kubeconfig"
cp "$(dirname "$0")/lib.sh" "$share/"
cp "$(dirname "$0")/ipvlan/seed-ipvlan.sh" "$share/ipvlan/"
cat > "$share/run.sh" <<'IN'
#!/bin/bash
# Inside the VM: the same scenario, with the VM's paths.
cd /mnt/host/files
export REPO=/mnt/host/files TOOLS=/mnt/host/files/tools KUBECTL=/mnt/host/files/tools/bin/kubectl \
    WASMCNI=/mnt/host/files/wasmcni STATE_DIR=/mnt/host/files/state \
    KUBECONFIG=/mnt/host/files/state/admin.kubeconfig E2E_RESULTS=/tmp/results
mkdir -p /var/run/netns
bash ./ipvlan/seed-ipvlan.sh
IN
chmod +x "$share/run.sh"
mv "$share" "$WORK/files"
console=$WORK/console.log
VM_APISERVER_PORT=$APISERVER_PORT VM_TIMEOUT=${VM_TIMEOUT:-600} \
    bash "$REPO/tests/vm/run-in-vm.sh" "$WORK/files/run.sh" "$WORK/files" > "$console" 2>&1
rc=$?
grep -E '^(PASS|FAIL) ' "$console" >> "$E2E_RESULTS"
grep -E '^(PASS|FAIL) |^\[|^Error' "$console" >&2
if [[ $rc -ne 0 ]] || ! grep -q '^PASS ' "$console"; then
    fail "ipvlan scenario in the kernel VM ran" "run-in-vm.sh exited $rc; console: $(tail -n 20 "$console")"
fi
