package cgroups

import (
	"fmt"
	"math"
)

// The OCI spec speaks cgroup v1 (shares, blkio weights, memory+swap); these turn its values
// into the v2 interface files' units the way runc and crun do.

// SharesToWeight maps cpu.shares [2, 262144] (default 1024) onto cpu.weight [1, 10000]
// (default 100). It is the curve crun 1.23 and runc 1.3.2 adopted: a parabola in log2
// space through (2,1), (1024,100) and (262144,10000), so that the v1 default lands on the
// v2 default. The older linear 1+(shares-2)*9999/262142 turned the default 1024 into 39,
// which starved containers next to system services. 0 means "not set" and stays 0.
func SharesToWeight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= 2:
		return 1
	case shares >= 262144:
		return 10000
	}
	l := math.Log2(float64(shares))
	exp := (l*l+125*l)/612.0 - 7.0/34.0
	return uint64(math.Ceil(math.Pow(10, exp)))
}

// BlkioWeightToIOWeight maps blkio.weight [10, 1000] onto io.weight [1, 10000] linearly, as
// runc does; 0 means "not set". io.bfq.weight, where the kernel has it, takes the v1 value
// unchanged (same range), so this is only for io.weight.
func BlkioWeightToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	if w < 10 {
		w = 10
	}
	return 1 + (uint64(w)-10)*9999/990
}

// SwapToV2 turns the spec's memory.swap (memory plus swap, v1's memsw) into v2's
// memory.swap.max (swap alone): swap - limit. -1 means no limit and maps to -1 ("max").
// limit is the memory limit in force (-1 or 0 when there is none).
func SwapToV2(swap, limit int64) (int64, error) {
	switch {
	case swap == -1:
		return -1, nil
	case swap < -1:
		return 0, fmt.Errorf("memory+swap limit %d is negative", swap)
	case limit <= 0:
		return 0, fmt.Errorf("memory+swap limit %d needs a memory limit: cgroup v2's memory.swap.max is swap alone, computed as swap - limit", swap)
	case swap < limit:
		return 0, fmt.Errorf("memory+swap limit %d is lower than the memory limit %d", swap, limit)
	}
	return swap - limit, nil
}
