#!/bin/sh
# Packages the network tests need: iproute2 (ip, to look inside namespaces), util-linux
# (nsenter), nftables (nft, to check berth's table is gone) and busybox-static (the
# containers' and the simulated outside host's httpd, wget, ping). The library itself
# needs no package: it speaks rtnetlink and nf_tables netlink directly. Idempotent.
set -eu
need=""
for p in iproute2 util-linux nftables busybox-static; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
	apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need
fi
