#!/bin/sh
# build-runtime.sh OUT [STAMP] — builds berth-runtime as it ships; the Makefile and the test
# harnesses (tests/integration, tests/engine) all build it here, so the tests run the binary
# users get.
#
# Static, so neither of its starts per container pays for the dynamic loader (1.3 ms CPU per
# `run`, docs/benchmarks.md). Against musl when musl-gcc is installed (hack/deps.sh installs
# musl-tools): static glibc adds 0.9 MB of C and a CPU-feature probe at every start; with musl
# the binary is 3.8 MB instead of 4.6, every command's peak RSS is 4.3-4.8 MiB instead of
# 5.2-5.7 (this kernel maps nearly all of a small binary's pages), and `run` costs 1.4 ms
# less CPU (measured with bench/cmd/berth-bench -sections 1,4). The C stage includes kernel
# UAPI headers (<linux/openat2.h>, ...), which musl-gcc leaves out of its include path: they
# come from linux-libc-dev, after musl's own headers.
set -eu
out=$1
case $out in /*) ;; *) out=$PWD/$out ;; esac
stamp=${2:-}
ldflags="-s -w"
[ -n "$stamp" ] && ldflags="$ldflags -X github.com/berth-containers/berth/internal/runtime.BuildStamp=$stamp"
cd "$(dirname "$0")/.."
if command -v musl-gcc >/dev/null 2>&1; then
	CC=musl-gcc CGO_CFLAGS="-O2 -idirafter /usr/include -idirafter /usr/include/$(gcc -print-multiarch)" \
		exec go build -trimpath -tags osusergo,netgo -ldflags "$ldflags -linkmode external -extldflags=-static" -o "$out" ./cmd/berth-runtime
fi
exec go build -trimpath -tags osusergo,netgo -ldflags "$ldflags -extldflags=-static" -o "$out" ./cmd/berth-runtime
