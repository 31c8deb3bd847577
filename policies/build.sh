#!/usr/bin/env bash
# policies/build.sh — build every example policy into target/policies/NAME.wasm, as a team's CI
# would: the Rust ones with cargo (wasm32-wasip2), lowest-free-py with componentize-py (installed
# from PyPI into target/policies/venv on first use). host/tests/policies.rs runs them all.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/target/policies
mkdir -p "$OUT"
cd "$REPO"
cargo build --locked --release --target wasm32-wasip2 --target-dir target/guests \
    -p policy-top-down -p policy-own-namespace-only >&2
for p in top-down own-namespace-only; do
    cp "target/guests/wasm32-wasip2/release/policy_${p//-/_}.wasm" "$OUT/$p.wasm"
done
CPY_VERSION=0.25.1
if ! "$OUT/venv/bin/componentize-py" --version 2>/dev/null | grep -q "$CPY_VERSION"; then
    python3 -m venv "$OUT/venv"
    "$OUT/venv/bin/pip" install -q "componentize-py==$CPY_VERSION"
fi
src=policies/lowest-free-py/app.py
if [[ ! -s "$OUT/lowest-free-py.wasm" || "$src" -nt "$OUT/lowest-free-py.wasm" || wit/policy.wit -nt "$OUT/lowest-free-py.wasm" ]]; then
    (cd policies/lowest-free-py && "$OUT/venv/bin/componentize-py" -d "$REPO/wit" -w ipam-policy \
        componentize app -o "$OUT/lowest-free-py.wasm.tmp" >&2)
    mv "$OUT/lowest-free-py.wasm.tmp" "$OUT/lowest-free-py.wasm"
fi
ls -l "$OUT"/*.wasm >&2
