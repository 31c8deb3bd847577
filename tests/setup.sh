#!/usr/bin/env bash
# tests/setup.sh — install everything the tests and the demo need on a fresh Debian bookworm
# machine (as root). Idempotent: a second run only checks. Used by tests/run.sh, deploy/demo.sh
# and .ci/run.
#   - Debian packages: iproute2, iputils-ping, jq, openssl, socat, nftables (portmap's backend),
#     curl, containerd + runc (the real-node tier) (+ the VM kit's qemu & co.)
#   - the wasm32-wasip2 Rust target and rustfmt/clippy
#   - Go-built tools: kube-apiserver, etcd, kubectl, cnitool, reference plugins (tests/tools/)
#     and the peers measured against and run beside wasmcni: whereabouts (tests/tools/peers/)
#   - the real node's kubelet, kube-scheduler, kube-controller-manager, pause (tests/tools/node/)
#   - the kernel VM image (tests/vm/setup.sh), unless SETUP_NO_VM=1
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
t0=$(date +%s)

need=()
for p in iproute2 iputils-ping jq openssl socat ca-certificates nftables curl containerd runc; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [[ ${#need[@]} -gt 0 ]]; then
    echo "setup: apt-get install ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
for c in rustfmt clippy; do
    rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

bash "$HERE/tools/build.sh" >&2
bash "$HERE/tools/peers/build.sh" >&2
bash "$HERE/tools/node/build.sh" >&2
[[ "${SETUP_NO_VM:-0}" == 1 ]] || bash "$HERE/vm/setup.sh" >&2
echo "setup: done in $(( $(date +%s) - t0 )) s" >&2
