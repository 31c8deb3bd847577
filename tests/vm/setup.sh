#!/bin/bash
# tests/vm/setup.sh — one-time setup for tests/vm/run-in-vm.sh (idempotent; FORCE=1 rebuilds).
# Installs the host tools (qemu from bookworm-backports, busybox-static, cpio, kmod, socat, jq),
# unpacks Debian's own kernel (the package linux-image-amd64 depends on; it has ipvlan/dummy,
# which this host's kernel lacks) and builds a small busybox initramfs for it. Produces:
#   $VM_DIR/vmlinux        uncompressed kernel (booted via PVH: ~2x faster under TCG than bzImage)
#   $VM_DIR/base.cpio.gz   busybox + bash + iproute2 + coreutils timeout + jq + kernel modules + /init
#   $VM_DIR/base.recipe    hash of this script that built them: when this file
#                          changes, the next call rebuilds automatically instead of reusing a stale image
# The host kernel is never touched: the kernel .deb is only unpacked with dpkg-deb -x.
# Safe to call concurrently (flock); the outputs are replaced atomically (rename), so a VM that is
# booting from the old image is not disturbed.
set -euo pipefail
VM=${VM_DIR:-/var/tmp/kernel-vm}
SELF=$(readlink -f "$0")
mkdir -p "$VM"; cd "$VM"
HOST_PKGS=(qemu-system-x86 busybox-static cpio kmod socat jq)

recipe() { sha256sum < "$SELF" | cut -c1-16; }
uptodate() { [ -s vmlinux ] && [ -s base.cpio.gz ] && [ "$(cat base.recipe 2>/dev/null)" = "$(recipe)" ] &&
             command -v qemu-system-x86_64 socat >/dev/null; }
[ -z "${FORCE:-}" ] && uptodate && exit 0

exec 9> "$VM/.setup.lock"; flock 9                # one builder at a time; the others wait, then re-check
[ -z "${FORCE:-}" ] && uptodate && exit 0
t0=$SECONDS

# --- host packages (qemu from bookworm-backports: the machine's qemu-utils 10.0 blocks bookworm's qemu 7.2) ---
need=(); for p in "${HOST_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # the same Debian mirror the machine already uses, with the backports suite added
    uri=$(awk '$1=="URIs:" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
    [ -n "$uri" ] || uri=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    echo "deb $uri bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -t bookworm-backports "${need[@]}" ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

# --- guest kernel: the package linux-image-amd64 depends on (bookworm: linux-image-6.1.0-NN-amd64) ---
KPKG=${KPKG:-$(apt-cache depends linux-image-amd64 | awk '$1=="Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')}
[ -n "$KPKG" ] || { apt-get update -qq; KPKG=$(apt-cache depends linux-image-amd64 | awk '$1=="Depends:" && $2 ~ /^linux-image-/ {print $2; exit}'); }
KV=${KPKG#linux-image-}
mkdir -p debs
ls debs/"${KPKG}"_*.deb >/dev/null 2>&1 || (cd debs && apt-get download "$KPKG")
rm -rf kpkg && dpkg-deb -x debs/"${KPKG}"_*.deb kpkg && depmod -b "$VM/kpkg" "$KV"
grep -q '^CONFIG_IPVLAN=[ym]' "kpkg/boot/config-$KV" || { echo "kernel $KV lacks CONFIG_IPVLAN" >&2; exit 1; }
python3 - "kpkg/boot/vmlinuz-$KV" vmlinux.tmp <<'EOF'
import lzma, sys
d = open(sys.argv[1], 'rb').read()
open(sys.argv[2], 'wb').write(lzma.LZMADecompressor().decompress(d[d.find(b'\xfd7zXZ\x00'):]))
EOF
echo "$KV" > kernel-version; echo "$KPKG" > kernel-package

# --- initramfs root ---
R=$VM/rootfs
rm -rf "$R"; mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,var,usr,mnt/host,payload,lib/modules,lib64}
ln -s /run "$R/var/run"; ln -s ../bin "$R/usr/bin"; ln -s ../sbin "$R/usr/sbin"
mkdir -p "$R/var/lib" "$R/opt" "$R/etc/cni/net.d"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
copy_elf() {  # copy_elf HOST-PATH GUEST-PATH: an ELF binary plus the shared libraries ldd reports
  rm -f "$R$2"; cp -L "$1" "$R$2"
  ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"; done
}
copy_elf /usr/sbin/ip /sbin/ip          # iproute2: busybox ip can't do ipvlan or netns
copy_elf /bin/bash /bin/bash
copy_elf /usr/bin/timeout /bin/timeout  # GNU timeout (same options as on the host)
copy_elf /usr/bin/jq /bin/jq.real       # tests parse JSON (CNI results, kube API objects); the wrapper
printf '#!/bin/sh\nexec /bin/jq.real -M "$@"\n' > "$R/bin/jq"   # keeps ANSI colours off the serial tty
chmod +x "$R/bin/jq"
# ping, wget, nc, nsenter, unshare, ... are busybox applets.
# Debian's busybox ash always prefers its applets over $PATH (`ip` would be busybox ip): use bash as sh.
rm -f "$R/bin/sh"; ln -s bash "$R/bin/sh"
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/lib/x86_64-linux-gnu/"   # for dynamic Rust binaries
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"; printf 'root:x:0:\n' > "$R/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$R/etc/hosts"; printf 'hosts: files\n' > "$R/etc/nsswitch.conf"
echo vm > "$R/etc/hostname"

# kernel modules, in dependency order (virtio_net pulls in failover + net_failover)
MODS="ipvlan dummy veth macvlan 9p 9pnet_virtio virtio_pci virtio_net bridge"
: > "$R/etc/modules.load"
for m in $MODS; do
  modprobe -d "$VM/kpkg" -S "$KV" --show-depends "$m" | awk '$1=="insmod"{print $2}' | while read -r ko; do
    b=$(basename "$ko" .ko)
    grep -qx "$b" "$R/etc/modules.load" || { cp "$ko" "$R/lib/modules/"; echo "$b" >> "$R/etc/modules.load"; }
  done
done

cat > "$R/init" <<'EOF'
#!/bin/sh
# /init of the tests/vm initramfs: mounts, loads modules, configures the NIC if any, runs .vmrun.
export PATH=/sbin:/bin HOME=/root
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts pts /dev/pts; mount -t tmpfs shm /dev/shm
mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
while read -r m; do
  case $m in dummy) p=numdummies=0;; *) p=;; esac    # no stray dummy0
  insmod "/lib/modules/$m.ko" $p || echo "init: insmod $m failed"
done < /etc/modules.load
hostname "$(cat /etc/hostname)"
ip link set lo up
# qemu user networking (run-in-vm.sh VM_APISERVER_PORT): the only NIC; net.ifnames=0 and no udev, so the
# kernel's name eth0 is deterministic. Static address, no default route: only 10.0.2.0/24 is reachable.
if [ -e /sys/class/net/eth0 ]; then
  ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up || echo "init: eth0 setup failed"
  for i in $(seq 50); do [ "$(cat /sys/class/net/eth0/operstate)" = up ] && break; sleep 0.1; done
fi
# host folder shared with: -virtfs local,path=DIR,mount_tag=host0,security_model=none
grep -qs host0 /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag &&
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host0 /mnt/host
# the command: /payload/.vmrun (from an appended cpio) or /mnt/host/.vmrun (9p share)
for d in /payload /mnt/host; do [ -x "$d/.vmrun" ] && break; done
if [ -x "$d/.vmrun" ]; then (cd "$d" && exec "$d/.vmrun"); rc=$?; else echo "init: no .vmrun"; rc=254; fi
echo "@@VM_EXIT_CODE=$rc@@"
cd /; sync; umount /mnt/host 2>/dev/null; poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > base.cpio.gz.tmp
mv -f vmlinux.tmp vmlinux; mv -f base.cpio.gz.tmp base.cpio.gz
recipe > base.recipe.tmp; mv -f base.recipe.tmp base.recipe
echo "setup: kernel $KV, $(du -h base.cpio.gz | cut -f1) initramfs, recipe $(cat base.recipe)," \
     "$((SECONDS - t0)) s, modules: $(tr '\n' ' ' < "$R/etc/modules.load")" >&2
