#!/usr/bin/env bash
# deps-cgroups.sh — install what internal/cgroups' tests and the cgroup v2 test lane
# (tests/v2vm, `make test-v2`) need on Debian 12, as root. Idempotent: installs only what
# is missing, and touches apt's lists only then.
#   busybox-static   the test processes (host and VM) and the VM's whole userland
#   qemu-system-x86  the v2 lane's VM (TCG; no KVM needed)
#   xz-utils         unpacking the guest kernel's vmlinux from its bzImage
#   binutils         readelf, to see whether that vmlinux has a PVH entry point
# The guest kernel itself (linux-image-*-amd64) is fetched by tests/v2vm/run-in-v2vm.sh
# with `apt-get download` into its cache, not installed.
set -euo pipefail
need=()
{ [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v xz >/dev/null || need+=(xz-utils)
command -v readelf >/dev/null || need+=(binutils)
if ((${#need[@]})); then
  echo "deps-cgroups: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null
fi
