#!/bin/sh
# What rootless berth (and tests/engine/rootless_test.go) needs on Debian 12: newuidmap and
# newgidmap (uidmap) for the /etc/subuid and /etc/subgid ranges, slirp4netns for the
# user-mode network, util-linux for useradd's companions, busybox for the test image.
# Idempotent.
set -eu
pkgs="uidmap slirp4netns busybox-static"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends $missing || {
		apt-get update
		apt-get install -y --no-install-recommends $missing
	}
fi
# slirp4netns opens /dev/net/tun as the user inside the container's namespaces. udev makes
# it 0666 on a normal Debian system (the tun driver checks the namespace's privileges, not
# the file's); a /dev without udev leaves the kernel's 0600.
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
	chmod 0666 /dev/net/tun
fi
