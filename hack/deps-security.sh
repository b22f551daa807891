#!/bin/sh
# Packages the internal/security tests and generators need (Debian 12).
#   busybox-static  the shell the seccomp tests run under the default profile
#   linux-libc-dev  asm/unistd_x32.h, read by the seccomp table generator
#                   (go generate ./internal/security/seccomp)
set -eu
missing=""
for p in busybox-static linux-libc-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
apt-get install -y --no-install-recommends $missing
