#!/usr/bin/env bash
# deploy/image.sh — build wasmcni's container image offline: the binary and the shared libraries
# it links (as ldd resolves them on this machine, at the paths the binary asks for), packed by
# deploy/oci-image.py into one reproducible OCI archive. No base image, no registry, no daemon.
#
#   bash deploy/image.sh [BINARY] [OUT.tar] [NAME:TAG]
#     BINARY   default target/release/wasmcni (built with `cargo build --release` if missing)
#     OUT.tar  default target/image/wasmcni-<version>.tar
#     NAME     default localhost/wasmcni:<version> — the name deploy/daemonset.yaml uses
#
# Then, on each node (or push it to your registry with skopeo/crane and change the image in
# deploy/kustomization.yaml):
#   ctr -n k8s.io images import target/image/wasmcni-<version>.tar
# Prints the image's name and manifest digest.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)
BIN=${1:-$REPO/target/release/wasmcni}
OUT=${2:-$REPO/target/image/wasmcni-$VERSION.tar}
NAME=${3:-localhost/wasmcni:$VERSION}

if [[ ! -x $BIN && $BIN == "$REPO/target/release/wasmcni" ]]; then
    (cd "$REPO" && cargo build --release -p wasmcni >&2)
fi
[[ -x $BIN ]] || { echo "image.sh: $BIN is not an executable" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"

adds=(--add "$BIN=/usr/bin/wasmcni")
# What the dynamic loader needs: each library at the path ldd resolves (a static binary has none).
# The loader itself is listed by the path the binary names (/lib64/ld-linux-x86-64.so.2).
while read -r lib; do
    [[ -n $lib ]] && adds+=(--add "$lib=$lib")
done < <(ldd "$BIN" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)

python3 "$REPO/deploy/oci-image.py" "$OUT" "$NAME" "${adds[@]}" \
    --entrypoint '["/usr/bin/wasmcni"]'
echo "image.sh: $OUT" >&2
