#!/bin/bash
# ab.sh N DIR_A DIR_B [-- BERTH ARGS...] — two builds of berth side by side: N interleaved
# rounds (the order swapped every round, 2 warm-up rounds not counted) of
# `berth run --rm --network none bb:1 true` (or the berth arguments given after --), each
# build with its own state root (a busybox image imported into it first, then
# `berth $AB_SETUP` if set, e.g. AB_SETUP="create --name c --network none bb:1 true" for
# `-- start -a c`). It prints each
# build's median and p90 wall time and the median of the paired ratios B/A. This is how the
# changes in docs/benchmarks.md that are not a `make bench` figure were measured: build A
# and B fully (`make build BINDIR=...`, so each berth and its berth-runtime share a stamp).
# Root; on the host's own cgroup layout (not the benchmark's v1 view).
set -eu
n=$1 a=$(realpath "$2") b=$(realpath "$3")
shift 3
[ "${1:-}" = -- ] && shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(run --rm --network none bb:1 true)
work=$(mktemp -d /tmp/berth-ab.XXXXXX)
cleanup() {
	for d in A B; do
		BERTH_ROOT=$work/$d BERTH_RUNTIME_ROOT=$work/$d-run "$work/bin$d/berth" rm -f $(BERTH_ROOT=$work/$d "$work/bin$d/berth" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
for x in sh true; do ln -s busybox "$work/rootfs/bin/$x"; done
tar -C "$work/rootfs" -cf "$work/bb.tar" .
ln -s "$a" "$work/binA"
ln -s "$b" "$work/binB"
for d in A B; do
	BERTH_ROOT=$work/$d BERTH_RUNTIME_ROOT=$work/$d-run "$work/bin$d/berth" import "$work/bb.tar" bb:1 >/dev/null
	if [ -n "${AB_SETUP:-}" ]; then
		# shellcheck disable=SC2086 # AB_SETUP is a list of arguments
		BERTH_ROOT=$work/$d BERTH_RUNTIME_ROOT=$work/$d-run "$work/bin$d/berth" $AB_SETUP >/dev/null
	fi
done
one() { # one BUILD: wall ms of one command
	local t0 t1
	t0=$(date +%s%N)
	BERTH_ROOT=$work/$1 BERTH_RUNTIME_ROOT=$work/$1-run "$work/bin$1/berth" "${args[@]}" >/dev/null
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000))
}
for ((i = 0; i < n + 2; i++)); do
	if ((i % 2 == 0)); then x=$(one A); y=$(one B); else y=$(one B); x=$(one A); fi
	((i >= 2)) && echo "$x $y" >>"$work/pairs"
done
med() { sort -n | awk '{v[NR]=$1} END{printf "%.4f", (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
p90() { sort -n | awk '{v[NR]=$1} END{i=int(NR*0.9); if(i<1)i=1; printf "%.2f", v[i]}'; }
for c in 1 2; do
	name=$([ $c = 1 ] && echo "A $a" || echo "B $b")
	echo "$name: median $(awk -v c=$c '{print $c/1000}' "$work/pairs" | med | awk '{printf "%.2f", $1}') ms, p90 $(awk -v c=$c '{print $c/1000}' "$work/pairs" | p90) ms"
done
echo "B/A, median of the paired ratios: $(awk '{print $2/$1}' "$work/pairs" | med | awk '{printf "%.3f", $1}')"
