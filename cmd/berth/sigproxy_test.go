package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sigProxyChild is the child of TestSigProxyDefaultAction: it catches every signal as a
// foreground run does, forwards to nothing (before the container runs, or after with
// "over"), sends itself SIGTERM and must die of it.
func sigProxyChild(mode string) {
	p, err := startSigProxy(nil)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(4)
	}
	if mode == "forward" {
		got := make(chan string, 2)
		p.kill = func(id string, sig unix.Signal) error {
			got <- id + " " + strconv.Itoa(int(sig))
			return nil
		}
		p.forward("c1")
		// SIGTERM, SIGTSTP (whose default would stop us) and a real-time signal.
		for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGTSTP, 40} {
			unix.Kill(os.Getpid(), sig)
			select {
			case s := <-got:
				os.Stdout.WriteString(s + "\n")
			case <-time.After(5 * time.Second):
				os.Stdout.WriteString("not forwarded: " + strconv.Itoa(int(sig)) + "\n")
			}
		}
		os.Exit(0)
	}
	if mode == "over" {
		p.forward("no-such-container")
		p.stop()
	}
	unix.Kill(os.Getpid(), unix.SIGTERM)
	time.Sleep(5 * time.Second)
	os.Exit(3)
}

// TestSigProxyForwards: once a container runs, the signals the command gets go to it, and
// the command lives on.
func TestSigProxyForwards(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "_BERTH_SIGPROXY_CHILD=forward")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v (output %q)", err, out)
	}
	want := "c1 15\nc1 20\nc1 40\n" // SIGTERM, SIGTSTP, SIGRTMIN+6 (glibc)
	if string(out) != want {
		t.Errorf("forwarded:\n%s\nwant:\n%s", out, want)
	}
}

// TestSigProxyDefaultAction: a signal that the proxy has nothing to forward to gets its
// default action (SIGTERM kills the command), whether it came before the container ran
// or after it ended.
func TestSigProxyDefaultAction(t *testing.T) {
	for _, mode := range []string{"idle", "over"} {
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
