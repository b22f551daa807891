package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// berth-runtime dispatches its commands itself, over pflag, instead of with cobra (which
// the engine's CLI uses). The reason is memory: this binary runs once or twice per container
// start, and its peak RSS is the size of the binary, because the page cache maps executable
// files in large folios (every 2 MiB chunk touched is resident whole). cobra links
// package regexp (a package-level MustCompile in its completions) and part of
// text/template, 0.48 MB in all: measured, the runtime linked with cobra is 5.27 MB, with
// this file and the same pflag flags 4.79 MB (peak RSS of every command 0.5 MiB lower), on
// the 5 MiB per command that issue 10 sets. The command line, the flags and their
// parsing (pflag's) are the same as with cobra; help is printed in cobra's layout.

// command is one subcommand: the part of cobra.Command that berth-runtime uses.
type command struct {
	// Use is the one-line usage; its first word is the command's name.
	Use     string
	Short   string
	Aliases []string
	// Args checks the positional arguments (nil: any).
	Args func(cmd *command, args []string) error
	RunE func(cmd *command, args []string) error

	flags *pflag.FlagSet
}

// Name is the command's name, the first word of Use.
func (c *command) Name() string {
	name, _, _ := strings.Cut(c.Use, " ")
	return name
}

// Flags are the command's own flags.
func (c *command) Flags() *pflag.FlagSet {
	if c.flags == nil {
		c.flags = newFlagSet(c.Name())
	}
	return c.flags
}

func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	// Errors are returned and printed once by main; usage is printed only on --help.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func noArgs(cmd *command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unknown command %q for %q", args[0], "berth-runtime "+cmd.Name())
	}
	return nil
}

func minArgs(n int) func(*command, []string) error {
	return func(cmd *command, args []string) error {
		if len(args) < n {
			return fmt.Errorf("requires at least %d arg(s), only received %d", n, len(args))
		}
		return nil
	}
}

// cli is the whole command line: the global flags and the commands.
type cli struct {
	name, short, version string
	global               *pflag.FlagSet
	commands             []*command
	// preRun runs after the flags are parsed and before a command runs; finalize after it.
	preRun   func(cmd *command) error
	finalize []func()
}

// execute parses args (without the program name) and runs the command they name.
func (c *cli) execute(args []string) error {
	var help, version bool
	c.global.BoolVarP(&help, "help", "h", false, "help for "+c.name)
	c.global.BoolVarP(&version, "version", "v", false, "version for "+c.name)
	// Global flags come before the command's name; they are accepted after it too (cobra's
	// persistent flags), by the command's own flag set.
	c.global.SetInterspersed(false)
	if err := c.global.Parse(args); err != nil {
		return err
	}
	rest := c.global.Args()
	switch {
	case version:
		fmt.Printf("%s version %s\n", c.name, c.version)
		return nil
	case help || len(rest) == 0:
		c.usage(os.Stdout, nil)
		return nil
	case rest[0] == "help":
		if len(rest) > 1 {
			if cmd := c.find(rest[1]); cmd != nil {
				c.usage(os.Stdout, cmd)
				return nil
			}
			return fmt.Errorf("unknown help topic %q", rest[1:])
		}
		c.usage(os.Stdout, nil)
		return nil
	}
	cmd := c.find(rest[0])
	if cmd == nil {
		return fmt.Errorf("unknown command %q for %q", rest[0], c.name)
	}
	fs := cmd.Flags()
	var cmdHelp bool
	fs.BoolVarP(&cmdHelp, "help", "h", false, "help for "+cmd.Name())
	c.global.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && f.Name != "version" && fs.Lookup(f.Name) == nil {
			fs.AddFlag(f)
		}
	})
	if err := fs.Parse(rest[1:]); err != nil {
		return err
	}
	if cmdHelp {
		c.usage(os.Stdout, cmd)
		return nil
	}
	if c.preRun != nil {
		if err := c.preRun(cmd); err != nil {
			return err
		}
	}
	defer func() {
		for _, f := range c.finalize {
			f()
		}
	}()
	if cmd.Args != nil {
		if err := cmd.Args(cmd, fs.Args()); err != nil {
			return err
		}
	}
	return cmd.RunE(cmd, fs.Args())
}

func (c *cli) find(name string) *command {
	for _, cmd := range c.commands {
		if cmd.Name() == name {
			return cmd
		}
		for _, a := range cmd.Aliases {
			if a == name {
				return cmd
			}
		}
	}
	return nil
}

// usage prints help for cmd, or for the whole program when cmd is nil, in cobra's layout.
func (c *cli) usage(w io.Writer, cmd *command) {
	if cmd == nil {
		fmt.Fprintf(w, "%s\n\nUsage:\n  %s [flags]\n  %s [command]\n\nAvailable Commands:\n", c.short, c.name, c.name)
		width := len("help")
		for _, cmd := range c.commands {
			width = max(width, len(cmd.Name()))
		}
		for _, cmd := range c.commands {
			fmt.Fprintf(w, "  %-*s %s\n", width+2, cmd.Name(), cmd.Short)
		}
		fmt.Fprintf(w, "  %-*s %s\n", width+2, "help", "Help about any command")
		fmt.Fprintf(w, "\nFlags:\n%s\nUse \"%s [command] --help\" for more information about a command.\n",
			c.global.FlagUsages(), c.name)
		return
	}
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s %s\n", cmd.Short, c.name, cmd.Use)
	if len(cmd.Aliases) > 0 {
		fmt.Fprintf(w, "\nAliases:\n  %s\n", strings.Join(append([]string{cmd.Name()}, cmd.Aliases...), ", "))
	}
	own := newFlagSet(cmd.Name())
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if c.global.Lookup(f.Name) == nil || f.Name == "help" {
			own.AddFlag(f)
		}
	})
	if own.HasAvailableFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", own.FlagUsages())
	}
	global := newFlagSet("global")
	c.global.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" && f.Name != "version" {
			global.AddFlag(f)
		}
	})
	if global.HasAvailableFlags() {
		fmt.Fprintf(w, "\nGlobal Flags:\n%s", global.FlagUsages())
	}
}
