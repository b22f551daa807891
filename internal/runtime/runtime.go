// Package runtime turns an OCI bundle into a running container and manages its life:
// create, start, state, kill, delete and run. It is the library behind berth-runtime, and
// the engine calls it in-process.
//
// A container's first process is this same binary, started with _BERTH_INITPIPE naming a
// socket. The C stage in package nsenter joins and creates its namespaces before the Go
// runtime starts; then, in the common case, it executes the plan the parent compiled
// (plan.go, docs/init.md), so no Go runtime starts in the container; otherwise InitMain
// builds the rootfs. Either reports ready over the socket and blocks reading the state
// directory's exec.fifo (opened read-write, so it never sees end of file). `start` writes
// one byte into that fifo and the init execs the user's program.
package runtime

import (
	"fmt"
	"os"
)

// Runtime manages the containers recorded under one root directory.
type Runtime struct {
	// Root holds one directory per container (default /run/berth).
	Root string
	// Exe is the binary started as the container's init; it must import package nsenter
	// and call InitMain. Empty means this process's own executable.
	Exe string
	// Warn receives non-fatal messages (a capability the kernel doesn't know, ...).
	Warn func(msg string)
	// ExitAfterRun tells that the process exits as soon as Run returns. Run then leaves
	// the signals it forwards routed to it rather than undoing that (see Run).
	ExitAfterRun bool
	// SeccompCache, if set, is a private directory where compiled seccomp profiles are
	// kept between creates (profile_cache.go).
	SeccompCache string
}

// New returns a Runtime for root, creating the directory if needed.
func New(root string) (*Runtime, error) {
	if root == "" {
		root = DefaultRoot
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create state root %s: %w", root, err)
	}
	return &Runtime{Root: root}, nil
}

func (r *Runtime) warn(format string, args ...any) {
	if r.Warn != nil {
		r.Warn(fmt.Sprintf(format, args...))
	}
}

func (r *Runtime) exe() string {
	if r.Exe != "" {
		return r.Exe
	}
	return "/proc/self/exe"
}
