#!/bin/sh
# What the engine's tests and `berth top` need: busybox-static to build the test image
# from, procps for `berth top` (it runs the host's ps, as Docker does), runc for
# `--runtime runc`. Idempotent.
set -eu
pkgs="busybox-static procps runc"
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
