package onep

import (
	"os"
	"testing"

	"github.com/berth-containers/berth/internal/gostart/internal/probe"
)

func TestMain(m *testing.M) {
	probe.Main()
	os.Exit(m.Run())
}

// TestThreadSetup: with onep, one P besides sysmon's slack, and every thread and child
// back on the caller's CPUs.
func TestThreadSetup(t *testing.T) { probe.Check(t, true) }
