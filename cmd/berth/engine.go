package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/berth-containers/berth/internal/engine"
	"github.com/berth-containers/berth/internal/image"
	"github.com/berth-containers/berth/internal/nsview"
)

var (
	engOnce sync.Once
	eng     *engine.Engine
	engErr  error
)

// openEngine opens the engine on --root (or $BERTH_ROOT) and the runtime root
// ($BERTH_RUNTIME_ROOT, default /run/berth).
func openEngine() (*engine.Engine, error) {
	engOnce.Do(func() {
		eng, engErr = engine.Open(berthRoot(), engine.DefaultRuntimeRoot())
		if eng != nil {
			eng.Warn = func(msg string) { fmt.Fprintln(os.Stderr, "WARNING: "+msg) }
		}
	})
	return eng, engErr
}

func init() {
	// berth ns names the engine's containers.
	nsview.RegisterNameFunc(func(rt, id string) (string, bool) {
		if rt != "berth" && rt != "runc" && rt != "crun" {
			return "", false
		}
		// A view reads: with no engine store there is no name to find, and opening one
		// would make it.
		if _, err := os.Stat(filepath.Join(berthRoot(), "containers")); err != nil {
			return "", false
		}
		e, err := openEngine()
		if err != nil {
			return "", false
		}
		info, err := e.Inspect(id)
		if err != nil || info.Container.ID != id {
			return "", false
		}
		return info.Container.Name, true
	})
}

// forEach runs fn for each argument as Docker's multi-container commands do: the ones that
// worked are printed, the errors printed after, and the command fails if any did.
func forEach(args []string, print bool, fn func(string) error) error {
	var errs []string
	for _, a := range args {
		if err := fn(a); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if print {
			fmt.Println(a)
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}

func requireArgs(min int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min {
			return &exitError{code: 125, err: fmt.Errorf("%q requires at least %d argument%s.\nSee '%s --help'.\n\nUsage:  %s\n\n%s",
				cmd.CommandPath(), min, plural(min), cmd.CommandPath(), cmd.UseLine(), what)}
		}
		return nil
	}
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &exitError{code: 125, err: fmt.Errorf("%q requires exactly %d argument%s.\nSee '%s --help'.\n\nUsage:  %s\n\n%s",
				cmd.CommandPath(), n, plural(n), cmd.CommandPath(), cmd.UseLine(), what)}
		}
		return nil
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// confirm asks Docker's prune question after warning, and reads the answer. Without a
// terminal on stdin, or with --force, the answer is yes, as with Docker.
func confirm(force bool, warning string) bool {
	if force || !image.IsTerminal(os.Stdin) {
		return true
	}
	fmt.Print(warning + "\nAre you sure you want to continue? [y/N] ")
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}
