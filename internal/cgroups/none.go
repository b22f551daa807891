package cgroups

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrNoCgroup is returned by the manager of a container that has no cgroup.
var ErrNoCgroup = errors.New("the container has no cgroup (a rootless container on a host that delegates none to its user)")

// None is the manager of a container without a cgroup: creating and destroying it does
// nothing, and everything that needs a cgroup fails with ErrNoCgroup.
func None() Manager { return none{} }

type none struct{}

func (none) Create() error                      { return nil }
func (none) AddProc(int) error                  { return nil }
func (none) TasksFiles() []string               { return nil }
func (none) UnifiedFD() (int, bool, error)      { return -1, false, nil }
func (none) CgroupFD() (int, bool, error)       { return -1, false, nil }
func (none) Update(*specs.LinuxResources) error { return fmt.Errorf("update: %w", ErrNoCgroup) }
func (none) Pids() ([]int, error)               { return nil, ErrNoCgroup }
func (none) Freeze() error                      { return fmt.Errorf("freeze: %w", ErrNoCgroup) }
func (none) Thaw() error                        { return nil }
func (none) Frozen() (bool, error)              { return false, nil }
func (none) Stats() (*Stats, error)             { return nil, ErrNoCgroup }
func (none) Destroy() error                     { return nil }
func (none) Paths() map[string]string           { return map[string]string{} }
func (none) Kill(syscall.Signal) error          { return fmt.Errorf("kill: %w", ErrNoCgroup) }
func (none) OOMKillCount() (uint64, error)      { return 0, ErrNoCgroup }
func (none) OOMEvents(context.Context) (<-chan struct{}, error) {
	return nil, ErrNoCgroup
}
func (none) Layout() Layout { l, _ := DetectLayout(); return l }
