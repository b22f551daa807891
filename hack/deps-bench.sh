#!/bin/sh
# Packages `make bench` needs on Debian 12: the runtime contenders (runc, crun; lsns from
# util-linux), the engine contenders (podman with conmon; docker.io with containerd, whose
# dockerd the harness starts itself in a private root), the image tools of section 5
# (skopeo, umoci, and docker-registry for the local registry), the busybox-static that fills
# the bundles and images, tar, and gcc with a static libc to build the harness's spawn helper
# (bench/harness/spawn). Idempotent.
set -eu
need=""
for p in runc crun util-linux busybox-static gcc libc6-dev tar podman conmon docker.io containerd skopeo umoci docker-registry; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
	apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $need
	# The registry package enables a system service; section 5 starts its own instance on a
	# random loopback port.
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable --now docker-registry >/dev/null 2>&1 || true
	fi
fi
