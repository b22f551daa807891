package gostart

import (
	"os"
	"testing"

	"github.com/berth-containers/berth/internal/gostart/internal/probe"
)

func TestMain(m *testing.M) {
	warmProbe()
	probe.Main()
	os.Exit(m.Run())
}

// TestThreadSetup: without onep, sysmon alone gets the slack and the runtime keeps one P
// per CPU.
func TestThreadSetup(t *testing.T) { probe.Check(t, false) }
