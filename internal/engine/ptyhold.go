package engine

import (
	"fmt"
	"os"

	"github.com/berth-containers/berth/internal/engine/monitor"
)

// HoldPty hands the pty master of an `exec -it` to a small process of its own (the
// monitor binary as berth-pty-hold), so that the exec'd process goes on when the berth
// that ran it detaches (ctrl-p ctrl-q) and exits: the terminal stays open, and what the
// process writes is read and dropped, as Docker's daemon does after such a detach.
func (e *Engine) HoldPty(master *os.File) error {
	mon, err := e.monitorExe()
	if err != nil {
		return err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	p, err := os.StartProcess(mon, []string{monitor.PtyHoldName}, &os.ProcAttr{
		Env:   []string{"GOMAXPROCS=1"},
		Files: []*os.File{devnull, devnull, devnull, master},
		Sys:   &sysProcAttrSetsid,
	})
	if err != nil {
		return fmt.Errorf("hold the exec's terminal: start %s: %w", mon, err)
	}
	return p.Release()
}
