#!/bin/sh
# Packages `make bench` needs on Debian 12: the contenders (runc, crun; lsns from
# util-linux), the busybox-static that fills the bundle, and gcc with a static libc to
# build the harness's spawn helper (bench/harness/spawn). Idempotent.
set -eu
need=""
for p in runc crun util-linux busybox-static gcc libc6-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
	apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need
fi
