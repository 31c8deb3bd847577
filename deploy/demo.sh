#!/usr/bin/env bash
# deploy/demo.sh — the local demo: wasmcni doing Multus + IPVLAN + Whereabouts on one machine,
# on its embedded defaults (the built-in multus-default and lowest-free guests). It installs
# what it needs (tests/setup.sh), builds wasmcni, starts a throwaway kube-apiserver + etcd
# inside a network namespace standing in for a node, attaches two pods through real CNI calls,
# prints their network-status, pings between them, and cleans everything up. Needs root.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
SETUP_NO_VM=1 bash tests/setup.sh
cargo build --locked
exec bash tests/e2e/run.sh "$REPO/deploy/demo/two-pods.sh"
