#!/bin/sh
# Packages `make conformance` and `make test-clients` need on Debian 12, as root. Idempotent.
#  - runc, crun: the runtimes berth-runtime is compared with in docs/conformance.md;
#  - util-linux (unshare, nsenter), tar: used by the validation programs and the runner;
#  - containerd (ctr, containerd-shim-runc-v2), docker.io (dockerd, docker), podman with
#    conmon: the clients tests/clients drives berth-runtime through;
#  - busybox-static: the busybox image the client tests import.
# The validation suite itself comes from the Go module proxy when the runner builds it.
set -eu
need=""
for p in runc crun util-linux tar busybox-static containerd docker.io podman conmon; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
	apt-get update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=300 $need
fi
