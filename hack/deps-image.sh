#!/bin/sh
# Tools the image tests and benchmarks drive: a local registry (docker-registry), podman and
# skopeo to prove archive interchange, umoci for the unpack comparison, busybox to build test
# images from. Idempotent: apt-get skips what is already installed.
set -eu
pkgs="docker-registry podman skopeo umoci busybox-static"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends $missing || {
	apt-get update
	apt-get install -y --no-install-recommends $missing
}
# The registry package enables a system service; the tests start their own instance on a
# random loopback port, so the packaged one is not wanted.
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
