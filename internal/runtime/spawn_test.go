package runtime

import (
	"syscall"
	"testing"
)

// TestChildWaitAndKill checks how our own init child (tracked by pid, not os.Process)
// reports its end, which create adds to the error of a failed init.
func TestChildWaitAndKill(t *testing.T) {
	start := func(script string) *child {
		pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", script}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		if err != nil {
			t.Fatalf("fork /bin/sh: %v", err)
		}
		return &child{Pid: pid}
	}
	if got, err := start("exit 3").Wait(); err != nil || got != "exit status 3" {
		t.Errorf("Wait of sh exiting 3: %q, %v; want \"exit status 3\"", got, err)
	}
	ch := start("exec sleep 60")
	ch.Kill()
	if got, err := ch.Wait(); err != nil || got != "signal: killed" {
		t.Errorf("Wait after Kill: %q, %v; want \"signal: killed\"", got, err)
	}
	if _, err := ch.Wait(); err == nil {
		t.Error("second Wait of a reaped child: no error")
	}
}
