// Command berth is the daemonless container engine: images, containers, volumes, networks
// and the namespace view, with Docker's command names and habits.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-containers/berth/internal/engine"
	// sysmon's timer slack, but not gostart/onep's one P: teardown runs in goroutines side
	// by side (internal/gostart's threads.c has the measurements).
	"github.com/berth-containers/berth/internal/gostart"
	"github.com/berth-containers/berth/internal/image"
	_ "github.com/berth-containers/berth/internal/namespaces/nsenter"
	"github.com/berth-containers/berth/internal/runtime"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// rootCmd is the `berth` command; each area of the CLI adds its subcommands from its own
// file's init(), so the engine, image, network and ns commands stay apart.
var rootCmd = &cobra.Command{
	Use:           "berth",
	Short:         "A daemonless container engine",
	SilenceUsage:  true,
	SilenceErrors: true,
}

func init() {
	// Docker's wording for bad flags, and its exit code for them (125).
	rootCmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitError{code: 125, err: usageMessage{err: err, cmd: cmd.CommandPath()}}
	})
}

func main() {
	if runtime.Tracing() {
		runtime.TraceAt(gostart.ConstructorTime(), "ctor")
		runtime.Trace("main")
	}
	// This binary is also the container's init (a re-exec by the runtime library) and the
	// monitor's helper; both are told apart before anything else runs.
	if runtime.IsInit() {
		runtime.InitMain() // never returns
	}
	if engine.IsHelper() {
		os.Exit(engine.RunHelper())
	}
	if gostart.CgroupWarmStarted() {
		// gostart's constructor began the cgroup attach's wait already.
		engine.CgroupWarmed()
	}
	if len(os.Args) > 1 && os.Args[1] == "run" && !hasFlag(os.Args[2:], "--runtime") && !hasFlag(os.Args[2:], "--help") &&
		!hasFlag(os.Args[2:], "--root") {
		// The container's id, directory, cgroup and monitor, made while the command line is
		// parsed (engine.BeginRun).
		engine.BeginRun(os.Getenv("BERTH_ROOT"))
	}
	// The commands are built here rather than in init functions: the init and the helper
	// above never need them, and they are started on every container's path. `berth run`
	// builds its own alone (the rest is 0.25-0.4 ms of CPU before it starts its work).
	registers := []func(){registerRunCommands, registerContainerCommands, registerExecCommands,
		registerStatsCommands, registerVolumeCommands, registerSystemCommands, registerExportCommands,
		registerImageCommands, registerNetworkCommands, registerNSCommands, registerHealthCommands}
	if len(os.Args) > 1 && os.Args[1] == "run" {
		registers = []func(){registerRunOnly}
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		// Each container's monitor runs it at every interval.
		registers = []func(){registerHealthCommands}
	}
	for _, register := range registers {
		register()
	}
	if needsFull(os.Args[1:]) {
		handOff()
	}
	cmd, err := rootCmd.ExecuteC()
	engine.DropBegun()
	runtime.Trace("exit")
	if image.Lean && errors.Is(err, image.ErrFullBinary) {
		// Work the lean build leaves to berth-full (a pull, say), met before anything
		// was done that stays.
		handOff()
	}
	if err != nil {
		printError(cmd, err)
		os.Exit(exitCode(err))
	}
}

// hasFlag tells whether args name the long flag (as --flag or --flag=...).
func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// usageMessage is a command-line error followed by Docker's pointer to the help.
type usageMessage struct {
	err error
	cmd string
}

func (u usageMessage) Error() string { return u.err.Error() + "\nSee '" + u.cmd + " --help'." }
func (u usageMessage) Unwrap() error { return u.err }

// exitError carries the exit code a command wants, with or without a message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// printError writes the error as Docker's CLI does: run and create (the commands whose
// failures are the engine's, code 125) prefix the program's name; the others say "Error".
func printError(cmd *cobra.Command, err error) {
	msg := err.Error()
	if msg == "" {
		return
	}
	if strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") || strings.Contains(msg, "See '") {
		fmt.Fprintln(os.Stderr, msg)
		return
	}
	name := ""
	if cmd != nil {
		name = cmd.Name()
	}
	switch name {
	case "run", "create", "start", "exec":
		fmt.Fprintf(os.Stderr, "berth: %s\n", msg)
	default:
		fmt.Fprintf(os.Stderr, "Error: %s\n", msg)
	}
}

// exitCode maps an error to Docker's exit codes: the code an error carries (the
// container's, or 125/126/127 for run), 125 for a bad command line, else 1.
func exitCode(err error) int {
	type coder interface{ ExitCode() int }
	var c coder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") || strings.HasPrefix(msg, "unknown shorthand flag") {
		return 125
	}
	return 1
}
