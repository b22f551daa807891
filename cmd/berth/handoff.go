package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/berth-containers/berth/internal/image"
)

// fullBinary is the full build of berth, installed beside the lean one: the program that
// has the registry, compression and archive code the lean build leaves out
// (internal/image/lean.go).
const fullBinary = "berth-full"

// needsFull tells whether the lean build must hand this command line to berth-full before
// it runs: a command it does not have (the image commands), or the top level's help.
func needsFull(args []string) bool {
	if !image.Lean {
		return false
	}
	cmd, _, err := rootCmd.Find(args)
	return err != nil || cmd == rootCmd || cmd.Name() == "help"
}

// handOff replaces this process with berth-full, given the same arguments and environment;
// the command starts again from the beginning there. It is called before the command has
// done anything a user could see or that would stay.
func handOff() {
	full := fullBinary
	if self, err := os.Executable(); err == nil {
		full = filepath.Join(filepath.Dir(self), fullBinary)
	}
	if _, err := os.Stat(full); err != nil {
		if p, perr := exec.LookPath(fullBinary); perr == nil {
			full = p
		}
	}
	err := syscall.Exec(full, os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "berth: this command needs %s, installed beside berth or in $PATH (make build makes it): exec %s: %v\n",
		fullBinary, full, err)
	os.Exit(125)
}
