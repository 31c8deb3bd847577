#!/usr/bin/env python3
"""Pack files into a one-layer OCI image archive, offline: no registry, no daemon.

    deploy/oci-image.py OUT.tar NAME:TAG --add SRC=DEST ... [--entrypoint '["/bin/x"]']

Writes an OCI image layout as a tar (oci-layout, index.json, blobs/sha256/...) that
`ctr -n k8s.io images import OUT.tar` (containerd 1.6+) and `podman load` read. The image is
named by the `io.containerd.image.name` annotation (what ctr's importer reads for an OCI
archive) and by `org.opencontainers.image.ref.name`.

The archive is reproducible: file times, owners and tar headers are fixed, entries are sorted,
so the same inputs give the same image digest on any machine (an admin can pin it by digest).
Each --add copies one regular file SRC to the absolute path DEST in the image, keeping SRC's
executable bit; parent directories are created (mode 0755, owner root).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

EPOCH = 0  # every timestamp in the image: reproducible, and honest that there is no build time


def layer_tar(files):
    """An uncompressed tar of files [(src, dest)], with parent dirs, deterministic."""
    buf = io.BytesIO()
    dirs = set()
    for _, dest in files:
        parts = dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for src, dest in sorted(files, key=lambda f: f[1]):
            with open(src, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(dest.strip("/"))
            info.size, info.mtime = len(data), EPOCH
            info.mode = 0o755 if os.access(src, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def blob(blobs, media_type, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("name", help="image reference, e.g. localhost/wasmcni:0.1.0")
    ap.add_argument("--add", action="append", default=[], metavar="SRC=DEST", required=True)
    ap.add_argument("--entrypoint", default=None, help="JSON list")
    ap.add_argument("--env", action="append", default=[], metavar="K=V")
    args = ap.parse_args()

    files = []
    for spec in args.add:
        src, sep, dest = spec.partition("=")
        if not sep or not dest.startswith("/"):
            sys.exit(f"oci-image.py: --add {spec!r}: want SRC=/absolute/dest")
        if not os.path.isfile(src):
            sys.exit(f"oci-image.py: --add {spec!r}: {src} is not a regular file")
        files.append((os.path.realpath(src), dest))
    if ":" not in args.name.rsplit("/", 1)[-1]:
        sys.exit(f"oci-image.py: {args.name!r}: want NAME:TAG")

    raw = layer_tar(files)
    # gzip without a file name or time in its header: reproducible
    gz = gzip.compress(raw, compresslevel=6, mtime=EPOCH)
    blobs = {}
    layer = blob(blobs, "application/vnd.oci.image.layer.v1.tar+gzip", gz)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"] + args.env},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        "history": [{"created_by": "deploy/oci-image.py " + " ".join(d for _, d in files)}],
    }
    if args.entrypoint:
        config["config"]["Entrypoint"] = json.loads(args.entrypoint)
    cfg = blob(blobs, "application/vnd.oci.image.config.v1+json", canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg,
        "layers": [layer],
    }
    man = blob(blobs, "application/vnd.oci.image.manifest.v1+json", canonical(manifest))
    man["annotations"] = {
        "io.containerd.image.name": args.name,
        "org.opencontainers.image.ref.name": args.name.rsplit(":", 1)[1],
    }
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [man]}

    tmp = args.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        def put(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(data))

        put("oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
        put("index.json", canonical(index))
        for digest in sorted(blobs):
            put("blobs/sha256/" + digest.split(":", 1)[1], blobs[digest])
    os.replace(tmp, args.out)
    print(f"{args.name} {man['digest']}")


if __name__ == "__main__":
    main()
