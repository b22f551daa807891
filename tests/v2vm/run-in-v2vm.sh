#!/usr/bin/env bash
# run-in-v2vm.sh — run a command as root inside a throwaway QEMU VM whose
# /sys/fs/cgroup is a pure cgroup v2 hierarchy with every controller enabled
# in the root's cgroup.subtree_control.  The host's cgroups are not touched.
# (berth's copy of the team's v2vm tool, so that CI needs nothing outside the
# repo; run-go-tests.sh beside it is what `make test-v2` uses.)
#
# Usage:
#   run-in-v2vm.sh [--] SCRIPT_OR_CMD [ARGS...]
#   run-in-v2vm.sh -c 'shell command line'
#
#   SCRIPT_OR_CMD is a file on the host  -> copied into the VM and run with ARGS
#                                           (its #! interpreter must exist in the
#                                           VM: /bin/sh is busybox; a bash script
#                                           gets host bash + libs copied in)
#   otherwise                            -> run as a command inside the VM
#                                           (busybox applets, or paths under SHARE)
#   -c STRING                            -> run STRING with the VM's /bin/sh -c
#
# The command runs as root (pid != 1; init waits for it) with stdin=/dev/null,
# stdout+stderr streamed to this script's stdout.  Exit status is the command's
# exit status; 124 = timeout, 125 = VM/infra failure (kernel log is printed).
#
# Environment (all optional):
#   SHARE=dir            host dir visible in the VM at the same absolute path and
#                        at /share (cwd of the command). 9p by default (read-write,
#                        changes visible on the host).
#   SHARE_MODE=9p|cpio   cpio = copy SHARE into the initramfs instead (read-write
#                        in the VM, nothing comes back; no 9p modules needed).
#   V2VM_ENV="A B"       names of host env vars to export into the VM.
#   V2VM_EXTRA_BINS="/usr/bin/unshare /sbin/ip"  host binaries copied in at the
#                        same path, with the shared libraries ldd reports.
#   V2VM_EXTRA_FILES="/etc/foo /usr/share/bar"   host files/dirs copied in as is.
#   V2VM_MEM=1024        guest RAM in MiB.          V2VM_CPUS=2  vCPUs.
#   V2VM_TIMEOUT=300     hard limit in seconds for the whole VM (boot included).
#   V2VM_DISK=256M       attach a blank sparse raw virtio disk as /dev/vda (for
#                        io.max tests; it is not formatted).
#   V2VM_ACCEL=auto|kvm|tcg  auto = kvm only if kvm_intel/kvm_amd is loaded.
#                        This CI machine's /dev/kvm is kvm_pvm (Ant Group's
#                        "Pagetable-based VM", no VT-x/SVM): it cannot run a stock
#                        kernel (bzImage: hangs in the decompressor; PVH: crawls to
#                        ~32 s guest time at mm init, then stalls), so auto = tcg.
#   V2VM_CPU=...         -cpu model (default: host for kvm, max for tcg).
#   V2VM_KERNEL=path V2VM_MODDIR=/lib/modules/VER  use this kernel instead of
#                        the Debian linux-image found in /boot or downloaded with
#                        apt-get download into the cache.
#   V2VM_MODULES="..."   modules (plus deps) put in the initramfs (see DEFAULT_MODULES).
#   V2VM_LOAD="..."      modules modprobe'd at boot (default: overlay veth bridge
#                        loop; "" = none). Others in the initramfs load on demand
#                        via the kernel's request_module -> busybox /sbin/modprobe.
#   V2VM_CGROUP2_OPTS=nsdelegate,memory_recursiveprot   cgroup2 mount options.
#   V2VM_APPEND="..."    extra kernel command line.
#   V2VM_OUT=virtio|serial  channel for the command's output: a virtio-serial
#                        port (default, ~MB/s) or the 2nd UART ttyS1 (~0.4 MB/s).
#   V2VM_BOOT=pvh|bzimage  pvh (default): boot the uncompressed vmlinux extracted
#                        from the bzImage via its PVH entry (~2x faster under TCG).
#   V2VM_CACHE=/tmp/v2vm-cache   kernel, vmlinux and base initramfs cache.
#   V2VM_DEBUG=1         stream the kernel console too (to stderr) and keep the run dir.
#   V2VM_TIMING=1        print boot/command/total timings to stderr.
#
# Needs (Debian): qemu-system-x86 busybox-static xz-utils binutils, installed by
# hack/deps-cgroups.sh (plus apt access to download linux-image-*-amd64 once,
# or an installed linux-image-amd64).
set -Eeuo pipefail
trap 'echo "run-in-v2vm: internal error at line $LINENO: $BASH_COMMAND" >&2; exit 125' ERR

V2VM_VERSION=4   # bump when the initramfs layout/init changes (cache key)
CACHE=${V2VM_CACHE:-/tmp/v2vm-cache}
MEM=${V2VM_MEM:-1024}
CPUS=${V2VM_CPUS:-2}
TIMEOUT=${V2VM_TIMEOUT:-300}
ACCEL=${V2VM_ACCEL:-auto}
SHARE=${SHARE:-}
SHARE_MODE=${SHARE_MODE:-9p}
CG2OPTS=${V2VM_CGROUP2_OPTS:-nsdelegate,memory_recursiveprot}
DEFAULT_MODULES="virtio_pci virtio_console virtio_blk virtio-rng 9pnet_virtio 9p overlay veth bridge br_netfilter loop tun dummy macvlan ipvlan vxlan squashfs fuse nf_tables nft_chain_nat nft_compat xt_MASQUERADE xt_addrtype xt_conntrack iptable_filter iptable_nat ip6table_filter ip6table_nat sch_netem cls_bpf act_bpf"
MODULES=${V2VM_MODULES:-$DEFAULT_MODULES}
LOAD=${V2VM_LOAD-overlay veth bridge loop}

die() { echo "run-in-v2vm: $*" >&2; exit 125; }
log() { [[ -n ${V2VM_DEBUG:-} ]] && echo "run-in-v2vm: $*" >&2 || true; }
now() { date +%s.%N; }
T_START=$(now)

[[ $# -gt 0 ]] || { sed -n '2,/^set -E/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: apt-get install -y --no-install-recommends qemu-system-x86"
BUSYBOX=${V2VM_BUSYBOX:-/bin/busybox}
[[ -x $BUSYBOX ]] && ! ldd "$BUSYBOX" >/dev/null 2>&1 || die "static $BUSYBOX missing: apt-get install -y busybox-static"
mkdir -p "$CACHE"

# ---------------------------------------------------------------- kernel
# Sets KVER, MODDIR, BZIMAGE.  Prefers V2VM_KERNEL, then an installed Debian
# linux-image (/boot/vmlinuz-* with /lib/modules/VER), then downloads the
# package with apt-get download (no install, no initramfs-tools) into $CACHE.
find_kernel() {
  if [[ -n ${V2VM_KERNEL:-} ]]; then
    BZIMAGE=$V2VM_KERNEL
    KVER=${V2VM_KVER:-$(basename "$BZIMAGE" | sed 's/^vmlinuz-//')}
    MODDIR=${V2VM_MODDIR:-/lib/modules/$KVER}
    return
  fi
  local v
  for v in $(ls /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -rV || true); do
    if [[ -d /lib/modules/$v/kernel && -f /lib/modules/$v/modules.dep ]]; then
      BZIMAGE=/boot/vmlinuz-$v; KVER=$v; MODDIR=/lib/modules/$v; return
    fi
  done
  # already downloaded? (apt-cache costs ~1 s per call; V2VM_REFRESH=1 re-resolves)
  local kd
  if [[ -z ${V2VM_REFRESH:-} ]]; then
    kd=$(ls -d "$CACHE"/kernel-*/ok 2>/dev/null | sort -rV | head -1 || true)
    if [[ -n $kd ]]; then
      kd=${kd%/ok}; KVER=${kd##*/kernel-}
      BZIMAGE=$kd/root/boot/vmlinuz-$KVER; MODDIR=$kd/root/lib/modules/$KVER; return
    fi
  fi
  # download into the cache
  local pkg
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [[ -z $pkg ]]; then
    apt-get update -qq >&2 || true
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  fi
  [[ -n $pkg ]] || die "cannot resolve linux-image-amd64 (apt lists?)"
  KVER=${pkg#linux-image-}
  kd=$CACHE/kernel-$KVER
  if [[ ! -f $kd/ok ]]; then
    echo "run-in-v2vm: downloading $pkg into $kd (once)" >&2
    rm -rf "$kd"; mkdir -p "$kd"
    (cd "$kd" && apt-get download "$pkg" >/dev/null 2>&1) || { apt-get update -qq >&2; (cd "$kd" && apt-get download "$pkg" >&2); } || die "apt-get download $pkg failed"
    dpkg -x "$kd"/*.deb "$kd/root" || die "dpkg -x failed"
    rm -f "$kd"/*.deb
    "$BUSYBOX" depmod -b "$kd/root" "$KVER" || die "depmod failed"
    touch "$kd/ok"
  fi
  BZIMAGE=$kd/root/boot/vmlinuz-$KVER
  MODDIR=$kd/root/lib/modules/$KVER
}

# Extract the uncompressed ELF vmlinux from the bzImage: QEMU boots it through
# the PVH entry point, which skips the firmware's real-mode setup and the
# (very slow under TCG) in-guest xz decompression: ~3 s instead of ~8 s.
extract_vmlinux() {
  local out=$CACHE/vmlinux-$KVER
  if [[ ! -s $out ]]; then
    local off tmp=$out.tmp.$$
    for magic in '\xfd7zXZ\x00:xz -dc' '\x1f\x8b\x08:gzip -dc' '\x28\xb5\x2f\xfd:zstd -dc'; do
      off=$(LC_ALL=C grep -obUaP "${magic%%:*}" "$BZIMAGE" 2>/dev/null | head -1 | cut -d: -f1 || true)
      [[ -n $off ]] || continue
      tail -c +$((off + 1)) "$BZIMAGE" | ${magic#*:} > "$tmp" 2>/dev/null || true
      if [[ $(head -c 4 "$tmp" 2>/dev/null | od -An -c | tr -d ' ') == '177ELF' ]]; then mv "$tmp" "$out"; break; fi
    done
    rm -f "$tmp"
  fi
  if [[ -s $out && ! -f $out.pvh ]] && readelf -n "$out" 2>/dev/null | grep -q 'Unknown note type: (0x00000012)'; then
    touch "$out.pvh"
  fi
  if [[ -f $out.pvh && ${V2VM_BOOT:-pvh} == pvh ]]; then
    KIMAGE=$out
  else
    KIMAGE=$BZIMAGE    # no PVH note or no extractor: boot the bzImage (slower)
  fi
}

# ------------------------------------------------------------- initramfs
GUEST_INIT=$(cat <<'INIT_EOF'
#!/bin/sh
# v2vm guest init (generated by run-in-v2vm.sh)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
if [ "$1" != stage2 ]; then
  # Stage 1: we are on the initramfs "rootfs", where pivot_root(2) fails with
  # EINVAL. Bind-mount / onto itself and chroot into the bind mount so that
  # container runtimes inside the VM can pivot_root normally (no copying).
  mkdir -p /.v2vm-root
  mount --bind / /.v2vm-root
  cd /.v2vm-root
  mount --move . /
  exec chroot . /init stage2
fi
set -u
OUT=/dev/ttyS1
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin; ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm
mount -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
. /v2vm/config
mount -t cgroup2 -o "nosuid,nodev,noexec,$CG2OPTS" cgroup2 /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || echo "v2vm: cannot enable $c" > /dev/console
done
mount -t bpf -o nosuid,nodev,noexec,mode=0700 bpf /sys/fs/bpf 2>/dev/null
mount -t debugfs -o nosuid,nodev,noexec debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs -o nosuid,nodev,noexec tracefs /sys/kernel/tracing 2>/dev/null
mount -t securityfs -o nosuid,nodev,noexec securityfs /sys/kernel/security 2>/dev/null
hostname v2vm
ip link set lo up 2>/dev/null
for m in $LOAD; do modprobe "$m" 2>/dev/null || echo "v2vm: modprobe $m failed" > /dev/console; done
if [ -n "$SHARE" ]; then
  if [ "$SHARE_MODE" = 9p ]; then
    modprobe virtio_pci 2>/dev/null; modprobe 9pnet_virtio 2>/dev/null; modprobe 9p 2>/dev/null
    mkdir -p "$SHARE"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=mmap,access=client share "$SHARE" || echo "v2vm: 9p mount of $SHARE failed" > /dev/console
  else
    mkdir -p "$SHARE"; mount --bind /v2vm/share "$SHARE"
  fi
  [ "$SHARE" = /share ] || ln -sfn "$SHARE" /share
  export SHARE
  cd "$SHARE"
else
  cd /root
fi
[ -f /v2vm/env ] && . /v2vm/env
if [ "$OUTDEV" = virtio ]; then
  # command output goes through a virtio-serial port (~100x faster than the UART)
  modprobe virtio_pci 2>/dev/null; modprobe virtio_console 2>/dev/null
  OUT=""; i=0
  while [ -z "$OUT" ] && [ $i -lt 100 ]; do
    for p in /sys/class/virtio-ports/*; do
      [ "$(cat $p/name 2>/dev/null)" = v2vm.out ] && [ -c /dev/${p##*/} ] && OUT=/dev/${p##*/}
    done
    [ -n "$OUT" ] || { sleep 0.05; i=$((i + 1)); }
  done
  [ -n "$OUT" ] || { echo "v2vm: virtio port v2vm.out did not appear" > /dev/console; poweroff -f; }
else
  stty -F $OUT raw -echo 2>/dev/null
fi
read up _ < /proc/uptime
echo "@@V2VM_T0_${NONCE}=$up" > $OUT
/bin/sh /v2vm/run.sh > $OUT 2>&1 < /dev/null
rc=$?
read up _ < /proc/uptime
echo "@@V2VM_T1_${NONCE}=$up" > $OUT
echo "@@V2VM_EXIT_${NONCE}=$rc" > $OUT
# serial: tcsetattr(TCSADRAIN) waits until the UART has sent everything;
# virtio: every write already waited for the host to take the buffer
[ "$OUTDEV" = virtio ] || stty -F $OUT raw 2>/dev/null
sync
poweroff -f
INIT_EOF
)

modules_closure() {  # print relative module paths (deps included) for the names given
  local dep=$MODDIR/modules.dep
  [[ -f $dep ]] || die "$dep missing (run: busybox depmod -b ROOT $KVER)"
  local names=() n
  for n in "$@"; do names+=("${n//-/_}"); done
  awk -v want="${names[*]}" '
    BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) wanted[w[i]] = 1 }
    { f = $1; sub(/:$/, "", f); b = f; sub(/.*\//, "", b); sub(/\.ko(\.[a-z]+)?$/, "", b); gsub(/-/, "_", b)
      if (b in wanted) { print f; for (i = 2; i <= NF; i++) print $i; found[b] = 1 } }
    END { for (k in wanted) if (!(k in found)) print "missing-module:" k > "/dev/stderr" }
  ' "$dep" | sort -u
}

build_base() {  # sets BASE (an uncompressed newc cpio, cached)
  local key
  key=$( { echo "$V2VM_VERSION $KVER $MODULES"; echo "$GUEST_INIT"; sha256sum "$BUSYBOX"; } | sha256sum | cut -c1-16)
  BASE=$CACHE/base-$KVER-$key.cpio
  [[ -s $BASE ]] && return
  local t0; t0=$(now)
  local st; st=$(mktemp -d /tmp/v2vm-base.XXXXXX)
  mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,tmp,run,root,mnt,var/tmp,v2vm}
  cp "$BUSYBOX" "$st/bin/busybox"
  local a
  for a in $("$BUSYBOX" --list-full); do
    [[ -e $st/$a || -L $st/$a ]] || ln -s /bin/busybox "$st/$a"
  done
  ln -sf /bin/busybox "$st/bin/sh"
  printf '%s\n' "$GUEST_INIT" > "$st/init"; chmod 755 "$st/init"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$st/etc/passwd"
  printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$st/etc/group"
  echo v2vm > "$st/etc/hostname"
  printf '127.0.0.1 localhost v2vm\n::1 localhost\n' > "$st/etc/hosts"
  : > "$st/etc/resolv.conf"
  ln -s /proc/self/mounts "$st/etc/mtab"
  local md=$st/lib/modules/$KVER f
  mkdir -p "$md"
  # shellcheck disable=SC2086
  for f in $(modules_closure $MODULES); do
    mkdir -p "$md/$(dirname "$f")"; cp "$MODDIR/$f" "$md/$f"
  done
  for f in modules.builtin modules.builtin.modinfo modules.order; do
    if [[ -f $MODDIR/$f ]]; then cp "$MODDIR/$f" "$md/"; fi
  done
  "$BUSYBOX" depmod -b "$st" "$KVER" || die "depmod on initramfs failed"
  (cd "$st" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > "$BASE.tmp.$$"
  mv "$BASE.tmp.$$" "$BASE"
  rm -rf "$st"
  find "$CACHE" -maxdepth 1 -name 'base-*.cpio' ! -newer "$BASE" ! -path "$BASE" -mmin +60 -delete 2>/dev/null || true
  echo "run-in-v2vm: built base initramfs $(basename "$BASE") ($(du -h "$BASE" | cut -f1)) in $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}') s" >&2
}

copy_with_libs() {  # copy host binary $1 + its shared libraries into staging $2
  local bin=$1 st=$2 lib
  [[ -e $bin ]] || die "extra bin $bin not found"
  mkdir -p "$st/$(dirname "$bin")"; cp -L "$bin" "$st/$bin"
  for lib in $(ldd "$bin" 2>/dev/null | grep -oE '/[^ ]+' || true); do
    if [[ -e $st/$lib ]]; then continue; fi
    mkdir -p "$st/$(dirname "$lib")"; cp -L "$lib" "$st/$lib"
  done
}

shquote() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

# ---------------------------------------------------------------- main
exec 9>"$CACHE/lock"
flock 9
find_kernel
extract_vmlinux
build_base
flock -u 9
T_PREP=$(now)

RUN=$(mktemp -d /tmp/v2vm-run.XXXXXX)
cleanup() { [[ -n ${V2VM_DEBUG:-} ]] && echo "run-in-v2vm: run dir kept: $RUN" >&2 || rm -rf "$RUN"; }
trap cleanup EXIT
ST=$RUN/stage; mkdir -p "$ST/v2vm"
NONCE=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
EXTRA_BINS=${V2VM_EXTRA_BINS:-}

# command
if [[ $1 == -c ]]; then
  [[ $# -ge 2 ]] || die "-c needs a string"
  printf '%s\n' "$2" > "$ST/v2vm/cmd"
  printf 'exec /bin/sh /v2vm/cmd\n' > "$ST/v2vm/run.sh"
else
  if [[ $1 == -- ]]; then shift; fi
  if [[ -f $1 ]]; then
    cp "$1" "$ST/v2vm/cmd"; chmod 755 "$ST/v2vm/cmd"
    interp=$(head -n1 "$1" | sed -n 's/^#![[:space:]]*//p' | awk '{ if ($1 ~ /\/env$/) print $2; else print $1 }')
    case $interp in
      ""|/bin/sh|sh|/bin/ash|ash|/bin/busybox) ;;
      *) ip=$(command -v "$interp" || true)
         if [[ -n $ip ]] && ! "$BUSYBOX" --list-full | grep -qx "${ip#/}"; then EXTRA_BINS="$EXTRA_BINS $ip"; fi ;;
    esac
    cmdline="/v2vm/cmd"
  else
    cmdline=$(shquote "$1")
  fi
  shift
  for a in "$@"; do cmdline="$cmdline $(shquote "$a")"; done
  printf 'exec %s\n' "$cmdline" > "$ST/v2vm/run.sh"
fi

for b in $EXTRA_BINS; do copy_with_libs "$b" "$ST"; done
for f in ${V2VM_EXTRA_FILES:-}; do mkdir -p "$ST/$(dirname "$f")"; cp -a "$f" "$ST/$f"; done
{
  for v in ${V2VM_ENV:-}; do
    if [[ -n ${!v+x} ]]; then echo "export $v=$(shquote "${!v}")"; fi
  done
} > "$ST/v2vm/env"

SHARE_ABS=""
QEMU_SHARE=()
if [[ -n $SHARE ]]; then
  SHARE_ABS=$(cd "$SHARE" && pwd) || die "SHARE=$SHARE is not a directory"
  case $SHARE_ABS in /|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/bin|/sbin|/lib|/usr|/etc|/v2vm*|/init) die "SHARE path $SHARE_ABS would shadow guest system dirs";; esac
  if [[ $SHARE_MODE == 9p ]]; then
    QEMU_SHARE=(-fsdev "local,id=fs0,path=$SHARE_ABS,security_model=$([[ $EUID == 0 ]] && echo passthrough || echo none)" -device "virtio-9p-pci,fsdev=fs0,mount_tag=share")
  elif [[ $SHARE_MODE == cpio ]]; then
    mkdir -p "$ST/v2vm/share"; cp -a "$SHARE_ABS/." "$ST/v2vm/share/"   # bind-mounted at $SHARE_ABS
  else
    die "SHARE_MODE must be 9p or cpio"
  fi
fi
QEMU_DISK=()
if [[ -n ${V2VM_DISK:-} ]]; then
  truncate -s "$V2VM_DISK" "$RUN/disk.img"
  QEMU_DISK=(-drive "file=$RUN/disk.img,if=virtio,format=raw,cache=unsafe")
  LOAD="$LOAD virtio_pci virtio_blk"
fi
{
  echo "NONCE=$NONCE"
  echo "SHARE=$(shquote "$SHARE_ABS")"
  echo "SHARE_MODE=$SHARE_MODE"
  echo "CG2OPTS=$(shquote "$CG2OPTS")"
  echo "LOAD=$(shquote "$LOAD")"
  echo "OUTDEV=${V2VM_OUT:-virtio}"
} > "$ST/v2vm/config"
(cd "$ST" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) > "$RUN/run.cpio"
cat "$BASE" "$RUN/run.cpio" > "$RUN/initrd"

# accelerator
if [[ $ACCEL == auto ]]; then
  if [[ -w /dev/kvm ]] && [[ -d /sys/module/kvm_intel || -d /sys/module/kvm_amd ]]; then ACCEL=kvm; else ACCEL=tcg; fi
fi
case $ACCEL in
  kvm) ACCEL_ARGS=(-accel kvm -cpu "${V2VM_CPU:-host}") ;;
  tcg) ACCEL_ARGS=(-accel tcg,thread=multi -cpu "${V2VM_CPU:-max}") ;;
  *) die "V2VM_ACCEL must be auto, kvm or tcg" ;;
esac

case ${V2VM_OUT:-virtio} in
  # A regular file, followed by tail -f: with a FIFO QEMU drops data when the
  # reader lags (seen with virtio-serial; the UART drops bytes after 4 retries).
  virtio) QEMU_OUT=(-device virtio-serial-pci,id=vser0 -chardev "file,id=v2vmout,path=$RUN/out" -device virtserialport,bus=vser0.0,chardev=v2vmout,name=v2vm.out) ;;
  serial) QEMU_OUT=(-chardev "file,id=v2vmout,path=$RUN/out" -serial chardev:v2vmout) ;;
  *) die "V2VM_OUT must be virtio or serial" ;;
esac
APPEND="console=ttyS0 quiet panic=-1 mitigations=off tsc=reliable no_timer_check 8250.nr_uarts=2 ${V2VM_APPEND:-}"
KLOG=$RUN/kernel.log
QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -display none -vga none
  -machine pc "${ACCEL_ARGS[@]}" -m "$MEM" -smp "$CPUS" -no-reboot
  -kernel "$KIMAGE" -initrd "$RUN/initrd" -append "$APPEND"
  -serial "file:$KLOG" "${QEMU_OUT[@]}"
  "${QEMU_SHARE[@]}" "${QEMU_DISK[@]}")
log "${QEMU[*]}"
if [[ -n ${V2VM_TIMING:-} ]]; then echo "run-in-v2vm: accel=$ACCEL kernel=$KIMAGE" >&2; fi

if [[ -n ${V2VM_DEBUG:-} ]]; then
  : > "$KLOG"; tail -n +1 -f "$KLOG" >&2 & TAILPID=$!
fi

: > "$RUN/out"
T_QEMU=$(now)
timeout -k 5 "$TIMEOUT" "${QEMU[@]}" < /dev/null > "$RUN/qemu.out" 2> "$RUN/qemu.err" &
QPID=$!   # the timeout(1) process; it forwards SIGTERM to its qemu child
INTERRUPTED=""
trap 'INTERRUPTED=1; kill -TERM "$QPID" 2>/dev/null' INT TERM HUP
# mawk/gawk: strips CRs, hides the nonce'd markers (also when glued to an
# unterminated last output line) and records host arrival time of T0/T1.
AWK_OPTS=()   # mawk block-buffers pipe input unless -W interactive
if awk -W version 2>&1 | grep -q mawk; then AWK_OPTS=(-W interactive); fi
tail -n +1 -s 0.1 -f --pid="$QPID" "$RUN/out" 2>/dev/null | awk "${AWK_OPTS[@]}" -v n="$NONCE" -v run="$RUN" '
  function mark(line, tag, file,   p, i, v) {
    p = "@@V2VM_" tag "_" n "="; i = index(line, p)
    if (i == 0) return 0
    if (i > 1) { print substr(line, 1, i - 1); fflush() }
    v = substr(line, i + length(p)); gsub(/[^0-9.]/, "", v)
    if (tag == "EXIT") print v > (run "/exit")
    else system("echo " v " $(date +%s.%N) > " run "/" file)
    return 1
  }
  { sub(/\r$/, "") }
  mark($0, "T0", "t0") || mark($0, "T1", "t1") || mark($0, "EXIT", "exit") { next }
  { print; fflush() }
' || true
QRC=0
wait "$QPID" || QRC=$?
trap - INT TERM HUP
T_END=$(now)
if [[ -n ${TAILPID:-} ]]; then sleep 0.2; kill "$TAILPID" 2>/dev/null || true; wait "$TAILPID" 2>/dev/null || true; fi

if [[ -n ${V2VM_TIMING:-} ]]; then
  {
    awk -v s="$T_START" -v p="$T_PREP" -v q="$T_QEMU" -v e="$T_END" 'BEGIN{printf "v2vm timing: prepare(kernel+base cache) %.2fs, per-run initrd %.2fs, qemu total %.2fs, wall total %.2fs\n", p-s, q-p, e-q, e-s}'
    if [[ -f $RUN/t0 && -f $RUN/t1 ]]; then
      read -r g0 h0 < "$RUN/t0"; read -r g1 h1 < "$RUN/t1"
      awk -v a="$ACCEL" -v q="$T_QEMU" -v g0="$g0" -v h0="$h0" -v g1="$g1" 'BEGIN{printf "v2vm timing: boot-to-command %.2fs (host clock; guest uptime at start %.2fs), command %.2fs (guest clock), accel=%s\n", h0-q, g0, g1-g0, a}'
    fi
  } >&2
fi

if [[ -n $INTERRUPTED ]]; then
  echo "run-in-v2vm: interrupted; qemu stopped" >&2; exit 130
fi
if [[ -f $RUN/exit ]]; then
  rc=$(cat "$RUN/exit")
  if [[ $rc =~ ^[0-9]+$ ]]; then exit "$rc"; fi
fi
if [[ $QRC == 124 || $QRC == 137 ]]; then
  echo "run-in-v2vm: TIMEOUT after ${TIMEOUT}s (V2VM_TIMEOUT); last kernel messages:" >&2
  tail -n 40 "$KLOG" >&2; exit 124
fi
echo "run-in-v2vm: VM ended without an exit marker (qemu rc=$QRC); qemu stderr + last kernel messages:" >&2
cat "$RUN/qemu.err" >&2; tail -n 60 "$KLOG" >&2
exit 125
