package runtime

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// ProcStat reads the start time that /proc shows, for this process and for a child, and
// tells a dead child from a live one.
func TestProcStat(t *testing.T) {
	cmd := exec.Command("sleep", "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for _, pid := range []int{os.Getpid(), cmd.Process.Pid} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+2:])
		want, _ := strconv.ParseUint(string(f[19]), 10, 64)
		state, start, err := ProcStat(pid)
		if err != nil || start != want || state == 0 {
			t.Errorf("ProcStat(%d) = %q, %d, %v; /proc says start %d", pid, state, start, err, want)
		}
		if !Alive(pid, start) || Alive(pid, start+1) {
			t.Errorf("Alive(%d) does not match start time %d", pid, start)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, _, err := ProcStat(cmd.Process.Pid); err == nil {
		t.Errorf("ProcStat of reaped pid %d succeeded", cmd.Process.Pid)
	}
}
