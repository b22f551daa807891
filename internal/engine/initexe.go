package engine

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/runtime"
)

// initExeCache is the file under the engine root that remembers which berth-runtime
// binary (by device, inode, size and modification time) carries which build stamp, so
// the check costs a stat and a small read, not a run of that binary.
const initExeCache = "init-exe"

// initExe returns the binary the runtime starts as the containers' init: berth-runtime
// next to this berth when it is the same build (runtime.BuildStamp), because it is
// static and about half the size, so it starts faster; otherwise "" (berth itself).
func (e *Engine) initExe() string {
	if runtime.BuildStamp == "" {
		return ""
	}
	self, err := e.exe()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(self), "berth-runtime")
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ""
	}
	key := strings.Join([]string{p, strconv.FormatUint(st.Dev, 10), strconv.FormatUint(st.Ino, 10),
		strconv.FormatInt(st.Size, 10), strconv.FormatInt(st.Mtim.Nano(), 10)}, " ")
	cache := filepath.Join(e.Root, initExeCache)
	stamp := ""
	if b, err := os.ReadFile(cache); err == nil {
		if k, v, ok := strings.Cut(strings.TrimSpace(string(b)), "\n"); ok && k == key {
			stamp = v
		}
	}
	if stamp == "" {
		cmd := exec.Command(p)
		cmd.Env = []string{runtime.StampQueryEnv + "=1"}
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		stamp = string(bytes.TrimSpace(out))
		if stamp == "" {
			stamp = "-" // no stamp: never a match
		}
		// A temporary file of our own: concurrent berths write theirs. A cache that
		// cannot be written only costs the next command the same run.
		if f, err := os.CreateTemp(e.Root, initExeCache+".tmp-"); err == nil {
			_, werr := f.WriteString(key + "\n" + stamp + "\n")
			if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), cache) != nil {
				os.Remove(f.Name())
			}
		}
	}
	if stamp != runtime.BuildStamp {
		return ""
	}
	return p
}
