// Package gostart sets how the Go runtime's threads start in the command that imports it:
// a 10 ms timer slack for the runtime's sysmon thread only, and, with package onep too,
// one P. It works from a C constructor, before the Go runtime starts; threads.c has the
// reasons and the measurements. Import it for its effect: `import _ ".../gostart"`.
package gostart

// #cgo LDFLAGS: -Wl,--wrap=pthread_create
// #include <time.h>
// extern int berth_gostart_cgroup_warm;
// extern struct timespec berth_gostart_t0;
import "C"

import "time"

// CgroupWarmStarted tells whether this process began the cgroup attach's wait before the
// Go runtime started (cgwarm.c), so the engine need not begin it again.
func CgroupWarmStarted() bool { return C.berth_gostart_cgroup_warm != 0 }

// ConstructorTime is when this package's C constructor ran, before the Go runtime started:
// the first step of a command's trace ($BERTH_TRACE).
func ConstructorTime() time.Time {
	return time.Unix(int64(C.berth_gostart_t0.tv_sec), int64(C.berth_gostart_t0.tv_nsec))
}
