package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-containers/berth/internal/runtime"
)

// berth-runtime next to berth is the init only when its build stamp is ours; its stamp is
// read once and cached by file identity, and a rebuilt binary is asked again.
func TestInitExeMatchesBuildStamp(t *testing.T) {
	dir := t.TempDir()
	old := runtime.BuildStamp
	t.Cleanup(func() { runtime.BuildStamp = old })
	e := &Engine{Root: dir, Exe: filepath.Join(dir, "berth")}
	rtBin := filepath.Join(dir, "berth-runtime")
	fake := func(stamp string) {
		// Answers the stamp query only, as the real binary does.
		script := "#!/bin/sh\n[ \"$" + runtime.StampQueryEnv + "\" = 1 ] && echo " + stamp + "\n"
		if err := os.WriteFile(rtBin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	runtime.BuildStamp = "build-1"
	if got := e.initExe(); got != "" {
		t.Errorf("no berth-runtime next to berth: initExe = %q, want berth itself", got)
	}
	fake("build-1")
	if got := e.initExe(); got != rtBin {
		t.Errorf("same stamp: initExe = %q, want %s", got, rtBin)
	}
	if b, err := os.ReadFile(filepath.Join(dir, initExeCache)); err != nil || len(b) == 0 {
		t.Errorf("the stamp was not cached: %q, %v", b, err)
	}
	// Cached: the binary is not run again (a binary that now fails would say no).
	os.Chmod(rtBin, 0o644)
	if got := e.initExe(); got != rtBin {
		t.Errorf("cached stamp: initExe = %q, want %s", got, rtBin)
	}
	// Rebuilt with another stamp (new size and time): asked again, refused.
	time.Sleep(10 * time.Millisecond)
	fake("build-22")
	if got := e.initExe(); got != "" {
		t.Errorf("other stamp: initExe = %q, want berth itself", got)
	}
	// A berth without a stamp trusts no other binary.
	runtime.BuildStamp = ""
	fake("")
	if got := e.initExe(); got != "" {
		t.Errorf("no stamp: initExe = %q, want berth itself", got)
	}
}
