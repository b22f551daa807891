package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded are the signals `run` passes on to the container's init: those a supervisor, a
// terminal or a user sends to ask a program to stop, reload or report. runc forwards every
// signal, but each signal given to signal.Notify costs a round trip through the Go
// runtime's locked signal-mask thread (two thread handoffs, four context switches) when
// registered and again when stopped: for all 65 signals that was 260 of the 430 context
// switches of `run` (perf record -e context-switches, stacks in startlockedm and
// stoplockedm under runtime.ensureSigM). Another signal with a terminating default action
// ends `run` itself, as an un-notified one does for runc's children.
var forwarded = []os.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM}

// Run creates and starts a container, and unless detach is set waits for it to exit,
// forwarding signals to it, then deletes it. It returns the container's exit status
// (128+N when signal N killed it), as runc does.
func (r *Runtime) Run(id string, o CreateOpts, detach bool) (int, error) {
	if !detach {
		// The init's first stage exits after forking into the new pid namespace; as
		// subreaper we inherit the init and can wait for it.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return -1, fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
		}
	}
	if err := r.Create(id, o); err != nil {
		return -1, err
	}
	sigs := make(chan os.Signal, 16)
	if !detach {
		signal.Notify(sigs, forwarded...)
		// Undoing the notification is as dear as making it, one round trip through the
		// signal-mask thread per signal; a process that exits right after has nothing to
		// undo (measured, interleaved pairs of `run`, n=60: -5% CPU, 0.4 ms).
		if !r.ExitAfterRun {
			defer signal.Stop(sigs)
		}
	}
	// The pid comes from start itself: a container that exits at once is already
	// "stopped" (pid 0) by the time any later look at its state is taken.
	pid, err := r.start(id)
	if err != nil {
		r.Delete(id, true)
		return -1, err
	}
	if detach {
		return 0, nil
	}
	done := make(chan int, 1)
	go func() { done <- reap(pid) }()
	for {
		select {
		case code := <-done:
			if err := r.Delete(id, true); err != nil {
				return code, err
			}
			return code, nil
		case s := <-sigs:
			sig, ok := s.(syscall.Signal)
			if !ok {
				continue
			}
			if err := r.Kill(id, unix.Signal(sig), false); err != nil && !errors.Is(err, ErrNotExist) {
				r.warn("forward %v to container %s: %v", sig, id, err)
			}
		}
	}
}

// reap waits for pid and returns its exit code, reaping any other orphan that comes our way.
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 255
		}
		if got != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}
