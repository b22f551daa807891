package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CachedProbe keeps an answer per kernel release, probes again for another release, and
// keeps nothing when the probe did not run.
func TestCachedProbe(t *testing.T) {
	file := filepath.Join(t.TempDir(), ".driver")
	calls := 0
	refuse := func() error { calls++; return errors.New("mount overlay: invalid argument") }
	if d, why := CachedProbe(file, refuse); d != Copy || why != "mount overlay: invalid argument" || calls != 1 {
		t.Fatalf("first probe: %s %q after %d calls", d, why, calls)
	}
	b, _ := os.ReadFile(file)
	f := strings.Fields(string(b))
	if len(f) < 2 || f[0] != "copy" {
		t.Fatalf("cache after a refusal: %q", b)
	}
	if d, why := CachedProbe(file, refuse); d != Copy || why != "mount overlay: invalid argument" || calls != 1 {
		t.Errorf("cached refusal: %s %q after %d calls; want the cache, no probe", d, why, calls)
	}
	os.WriteFile(file, []byte("copy 0.0.1-other-kernel why\n"), 0o600)
	if d, _ := CachedProbe(file, func() error { calls++; return nil }); d != Overlay || calls != 2 {
		t.Errorf("another kernel's answer: %s after %d calls; want a new probe and overlay", d, calls)
	}
	if b, _ := os.ReadFile(file); !strings.HasPrefix(string(b), "overlay "+f[1]+"\n") {
		t.Errorf("cache after the new probe: %q", b)
	}
	os.Remove(file)
	noRun := func() error { return fmt.Errorf("%w: no user namespace", ErrNoAnswer) }
	if d, why := CachedProbe(file, noRun); d != Copy || !strings.Contains(why, "no user namespace") {
		t.Errorf("a probe that did not run: %s %q", d, why)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("a probe that did not run was cached: %v", err)
	}
}
