#!/usr/bin/env bash
# demo.sh — the main job on a fresh machine: make a busybox image offline (from the
# busybox-static package, through `berth import`) and run a container that shows its
# isolation: its own hostname, pid 1 and no host process, its own network, root without
# most capabilities, and the limits it was given. Needs root; `make demo` runs deps and
# build first.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
# make build (run by `make demo` before this) built berth, berth-runtime and berth-monitor.
berth=$bin/berth

if ! "$berth" image inspect busybox >/dev/null 2>&1; then
  work=$(mktemp -d /tmp/berth-demo.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/rootfs/"{bin,etc,root,tmp,proc,sys,dev}
  cp /usr/bin/busybox "$work/rootfs/bin/busybox"
  for a in $(/usr/bin/busybox --list); do
    [[ $a == busybox ]] || ln -s busybox "$work/rootfs/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$work/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/rootfs/etc/group"
  chmod 1777 "$work/rootfs/tmp"
  tar -C "$work/rootfs" -cf "$work/busybox.tar" .
  echo "+ berth import -c 'CMD [\"sh\"]' busybox.tar busybox"
  "$berth" import -c 'CMD ["sh"]' "$work/busybox.tar" busybox
fi

echo '+ berth run --rm --hostname demo --memory 64m --cpus 0.5 --pids-limit 64 busybox sh -c ...'
"$berth" run --rm --hostname demo --memory 64m --cpus 0.5 --pids-limit 64 busybox sh -c '
echo "--- inside the container ---"
echo "hostname:     $(hostname)"
echo "id:           $(id)"
echo "processes:"; ps -o pid,user,comm
echo "network:"; ip -o -4 addr | awk "{print \"  \" \$2, \$4}"
echo "capabilities: $(grep CapEff /proc/self/status | cut -f2) (Docker'"'"'s default set)"
echo "limits:       memory $(($(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max) / 1048576)) MiB," \
     "cpu quota $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d" " -f1 /sys/fs/cgroup/cpu.max)/100000," \
     "pids $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
'
echo
echo "Try: bin/berth run -it busybox      (detach with ctrl-p ctrl-q, then bin/berth ps, bin/berth attach)"
