#!/usr/bin/env bash
# deps.sh — install everything berth's build, tests and lint need on Debian 12, as root.
# Idempotent; each area's own script lists its packages and why.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
# musl-gcc: berth-runtime and berth are linked statically against musl (hack/build-static.sh says why).
for cmd in busybox:busybox-static git:git gcc:gcc make:make ip:iproute2 lsns:util-linux musl-gcc:musl-tools; do
  command -v "${cmd%%:*}" >/dev/null || need+=("${cmd#*:}")
done
# The integration tests copy busybox into each rootfs: it must be the static build.
if [[ -x /usr/bin/busybox ]] && ldd /usr/bin/busybox >/dev/null 2>&1; then need+=(busybox-static); fi
[[ -x /usr/bin/busybox ]] || need+=(busybox-static)
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null
fi
for s in hack/deps-*.sh; do bash "$s"; done
# staticcheck, from the Go module proxy, pinned.
if ! command -v staticcheck >/dev/null && [[ ! -x "$(go env GOPATH)/bin/staticcheck" ]]; then
  echo "deps: installing staticcheck" >&2
  GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
