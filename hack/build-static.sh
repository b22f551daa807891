#!/bin/sh
# build-static.sh OUT PACKAGE [STAMP] — builds berth-runtime (./cmd/berth-runtime) or berth
# (./cmd/berth) as they ship; the Makefile and the test harnesses (tests/integration,
# tests/engine, tests/clients) all build them here, so the tests run the binaries users get.
#
# Static, against musl when musl-gcc is installed (hack/deps.sh installs musl-tools), else
# against glibc. Both programs are started for every container, and measured:
# - berth-runtime: no dynamic loader at its starts (1.3 ms CPU per `run`); static glibc adds
#   0.9 MB of C and a CPU-feature probe at every start; with musl the binary is 3.8 MB instead
#   of 4.6, every command's peak RSS is 4.3-4.8 MiB instead of 5.2-5.7 (this kernel maps
#   nearly all of a small binary's pages), and `run` costs 1.4 ms less CPU
#   (bench/cmd/berth-bench -sections 1,4).
# - berth: `run --rm busybox true` took 1-1.8 ms less wall and 1.2-1.4 ms less CPU against
#   musl than dynamically linked (interleaved pairs, n=40); static glibc gained nothing.
# osusergo and netgo: no NSS in a static binary. The C stages include kernel UAPI headers
# (<linux/openat2.h>, ...), which musl-gcc leaves out of its include path: they come from
# linux-libc-dev, after musl's own headers.
set -eu
out=$1
case $out in /*) ;; *) out=$PWD/$out ;; esac
pkg=$2
stamp=${3:-}
ldflags="-s -w"
[ -n "$stamp" ] && ldflags="$ldflags -X github.com/berth-containers/berth/internal/runtime.BuildStamp=$stamp"
cd "$(dirname "$0")/.."
build() { # build OUT TAGS
	if command -v musl-gcc >/dev/null 2>&1; then
		CC=musl-gcc CGO_CFLAGS="-O2 -idirafter /usr/include -idirafter /usr/include/$(gcc -print-multiarch)" \
			go build -trimpath -tags "osusergo,netgo$2" -ldflags "$ldflags -linkmode external -extldflags=-static" -o "$1" "$pkg"
	else
		go build -trimpath -tags "osusergo,netgo$2" -ldflags "$ldflags -extldflags=-static" -o "$1" "$pkg"
	fi
}
# berth comes in two builds of one program (internal/image/lean.go): OUT, the lean one
# people run, without the registry, compression and archive code, whose start is 0.6 ms
# shorter; and berth-full beside it, to which the lean one hands the image commands and
# pulls.
if [ "$pkg" = ./cmd/berth ]; then
	build "$(dirname "$out")/berth-full" ""
	build "$out" ",berth_lean"
	exit 0
fi
build "$out" ""
