#!/bin/bash
# tests/vm/run-in-vm.sh — run one command as root inside a throwaway qemu VM.
# Usage: run-in-vm.sh <command-file-or-binary> [more files or directories to copy in]
# Boots Debian's own kernel (6.1, has ipvlan/dummy/veth/macvlan, which this host's kernel lacks) with
# the busybox initramfs built by setup.sh (called first; a no-op when up to date), runs the command
# and exits with the command's exit code. The files/directories are copied into a fresh host dir that
# is shared via 9p; in the guest it is /mnt/host (the cwd, also first on PATH, with .lib/ holding the
# shared libraries of copied ELF files on LD_LIBRARY_PATH), so the command can leave results there.
# Network: none (-nic none) unless VM_APISERVER_PORT is set, see below.
# Env: VM_ARGS    shell words appended to the command line in the guest (e.g. "--exact 'a b'")
#      VM_TIMEOUT seconds before the VM is killed (default 300); VM_MEM MiB (1024); VM_SMP (1)
#      VM_APISERVER_PORT=N  give the guest one virtio NIC on qemu user networking with restrict=on
#                 (no packet leaves this machine) and a guestfwd rule: each guest TCP connection to
#                 10.0.2.100:6443 runs `socat - TCP:127.0.0.1:N` on the host, i.e. reaches the host's
#                 loopback port N (a kube-apiserver). The guest init sets eth0 = 10.0.2.15/24 (no default
#                 route); the command sees VM_APISERVER=10.0.2.100:6443 in its environment. socat's
#                 messages are printed on stderr after the run.
#      VM_ACCEL   kvm|tcg (default: kvm only if kvm_intel/kvm_amd is loaded, else tcg; the
#                 kvm_pvm /dev/kvm of this sandbox can't run a stock kernel)
#      VM_KEEP=1  keep the shared dir (path printed on stderr); VM_DIR (default /var/tmp/kernel-vm)
set -euo pipefail
VM=${VM_DIR:-/var/tmp/kernel-vm}
[ $# -ge 1 ] && [ -e "$1" ] || { echo "usage: $0 <command-file-or-binary> [more files]" >&2; exit 2; }
"$(dirname "$0")/setup.sh"                   # no-op once vmlinux + base.cpio.gz exist for this recipe

mkdir -p "$VM/runs"; share=$(mktemp -d "$VM/runs/run.XXXXXX")
trap '[ -n "${VM_KEEP:-}" ] && echo "run-in-vm: shared dir kept: $share" >&2 || rm -rf "$share"' EXIT
mkdir "$share/.lib"
for f in "$@"; do
  cp -a "$f" "$share/"
  # shared libraries of ELF files (libc/libgcc_s are in the initramfs already; copying is harmless)
  if [ -f "$f" ] && cmp -s -n4 "$f" <(printf '\177ELF'); then
    { ldd "$f" 2>/dev/null || true; } | awk '$2=="=>" && $3 ~ /^\// {print $3}' | xargs -r cp -L -t "$share/.lib"
  fi
done
cmd=$(basename "$1"); chmod +x "$share/$cmd"

net=(-nic none); netenv=
if [ -n "${VM_APISERVER_PORT:-}" ]; then
  case $VM_APISERVER_PORT in ''|*[!0-9]*) echo "run-in-vm: VM_APISERVER_PORT must be a port number" >&2; exit 2;; esac
  command -v socat >/dev/null || { echo "run-in-vm: socat missing (run setup.sh)" >&2; exit 2; }
  # cmd: form = a new socat per guest connection (the chardev form, guestfwd=...-tcp:HOST:PORT,
  # connects once at qemu start and serves a single connection only).
  # socat's messages (e.g. "Connection refused") go to $share/.guestfwd.log, shown on stderr at the end,
  # instead of being interleaved with the guest's console output.
  case $share in *[,\ ]*) echo "run-in-vm: VM_DIR must not contain commas or spaces" >&2; exit 2;; esac
  net=(-nic "user,model=virtio-net-pci,restrict=on,net=10.0.2.0/24,host=10.0.2.2,guestfwd=tcp:10.0.2.100:6443-cmd:socat -lf $share/.guestfwd.log - TCP:127.0.0.1:$VM_APISERVER_PORT")
  netenv=' VM_APISERVER=10.0.2.100:6443'
fi
# The libraries are copied into the guest's RAM once: the 9p share has no page cache
# (cache=none), so every exec that loads them from it reads them again (seconds under TCG).
printf '#!/bin/sh\ncp -r /mnt/host/.lib /opt/host-lib\nexport PATH=/mnt/host:$PATH LD_LIBRARY_PATH=/opt/host-lib%s\nexec ./%q %s\n' \
  "$netenv" "$cmd" "${VM_ARGS:-}" > "$share/.vmrun"
chmod +x "$share/.vmrun"

accel=${VM_ACCEL:-tcg}
[ -z "${VM_ACCEL:-}" ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; } && accel=kvm
[ "$accel" = kvm ] && cpu=host || cpu=max

log=$share/.console.log
set +e
timeout -k 5 "${VM_TIMEOUT:-300}" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" \
    -m "${VM_MEM:-1024}" -smp "${VM_SMP:-1}" -nodefaults -no-user-config -display none -no-reboot \
    -bios /usr/share/qemu/qboot.rom -serial stdio "${net[@]}" \
    -kernel "$VM/vmlinux" -initrd "$VM/base.cpio.gz" -append "console=ttyS0 quiet panic=-1 net.ifnames=0 no_timer_check" \
    -virtfs "local,path=$share,mount_tag=host0,security_model=none" < /dev/null 2>&1 |
  sed -u 's/\r$//' | tee "$log" |
  sed -u -e '/^@@VM_EXIT_CODE=[0-9]*@@$/d' -e 's/@@VM_EXIT_CODE=[0-9]*@@$//' -e '/reboot: Power down$/d'
qrc=${PIPESTATUS[0]}
set -e
[ -s "$share/.guestfwd.log" ] && { echo "run-in-vm: guestfwd (socat) messages:"; cat "$share/.guestfwd.log"; } >&2
rc=$(grep -o '@@VM_EXIT_CODE=[0-9]*@@' "$log" | tail -n1 | tr -dc 0-9 || true)
if [ -z "$rc" ]; then
  echo "run-in-vm: no exit marker from guest (qemu/timeout status $qrc)" >&2
  [ "$qrc" = 124 ] && exit 124 || exit 125
fi
exit "$rc"
