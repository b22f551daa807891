package engine

import (
	"errors"
	"time"

	"github.com/berth-containers/berth/internal/runtime"

	"golang.org/x/sys/unix"
)

var (
	procStat = runtime.ProcStat
	alive    = runtime.Alive
)

// waitPidGone waits until the process is gone or a zombie, up to timeout (forever when
// negative). It reports whether it is gone.
func waitPidGone(pid int, start uint64, timeout time.Duration) bool {
	if !alive(pid, start) {
		return true
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer unix.Close(fd)
	if !alive(pid, start) {
		return true
	}
	ms := -1
	if timeout >= 0 {
		ms = int(timeout / time.Millisecond)
	}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if errors.Is(err, unix.EINTR) {
			if timeout >= 0 {
				ms = int(time.Until(deadline) / time.Millisecond)
				if ms < 0 {
					ms = 0
				}
			}
			continue
		}
		return err == nil && n > 0
	}
}
