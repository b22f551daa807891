package cgroups

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMain removes the parent cgroups the tests' cgroups lived under, once they are empty
// (rmdir refuses one that still has children).
func TestMain(m *testing.M) {
	code := m.Run()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + DefaultParent)
	dirs = append(dirs, "/sys/fs/cgroup"+DefaultParent)
	for _, d := range dirs {
		syscall.Rmdir(d)
	}
	os.Exit(code)
}
