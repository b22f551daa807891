#!/bin/sh
# Packages the berth ns tests and benchmark need: util-linux (lsns, unshare, as the
# reference and to make namespaces), busybox (the processes inside them) and runc (a real
# container to attribute). Idempotent.
set -eu
need=""
for p in util-linux busybox-static runc; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
	apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need
fi
