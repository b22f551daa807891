package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sigProxyChild is the child of TestSigProxyDefaultAction: it catches every signal as a
// foreground run does, forwards to nothing (before the container runs, or after with
// "over"), sends itself SIGTERM and must die of it.
func sigProxyChild(mode string) {
	p := startSigProxy(nil, mode == "async")
	if mode == "over" {
		p.forward("no-such-container")
		p.stop()
	}
	// The asynchronous start may not have caught anything yet: the signal then kills at
	// once, which is as right. Either way it must kill.
	time.Sleep(20 * time.Millisecond)
	unix.Kill(os.Getpid(), unix.SIGTERM)
	time.Sleep(5 * time.Second)
	os.Exit(3)
}

// TestSigProxyDefaultAction: a signal that the proxy has nothing to forward to gets its
// default action (SIGTERM kills the command), whether it came before the container ran
// or after it ended.
func TestSigProxyDefaultAction(t *testing.T) {
	for _, mode := range []string{"async", "sync", "over"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "_BERTH_SIGPROXY_CHILD="+mode)
		start := time.Now()
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("%s: child: %v, want death by SIGTERM", mode, err)
			continue
		}
		ws := ee.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("%s: child ended with %v, want death by SIGTERM", mode, ee)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: child took %v to die", mode, d)
		}
	}
}
