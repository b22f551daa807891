package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/berth-containers/berth/internal/nsview"
)

type nsFlags struct {
	types      []string
	task       int
	output     string
	outputAll  bool
	noHeadings bool
	raw        bool
	json       bool
	list       bool
	tree       string
	noTrunc    bool
	noWrap     bool
	persistent bool
	container  string
	root       string
	stateDirs  []string
}

func registerNSCommands() {
	var f nsFlags
	cmd := &cobra.Command{
		Use:   "ns [flags] [CONTAINER | NAMESPACE-INODE]",
		Short: "List namespaces and the containers that own them, or one container's isolation",
		Long: `List every namespace on the host like util-linux lsns, with a CONTAINER column naming
the container that created each one ("host" for the initial namespaces).

With a container name or id, show that container's isolation boundaries instead:
each namespace type (own or shared), its cgroups and limits, capabilities, seccomp,
no_new_privs and user-namespace id maps. With a namespace inode, list the processes
in that namespace, as lsns does.

Columns: ` + columnHelp(),
		// Flags are parsed here rather than by cobra: pflag cannot take an attached value
		// for a short flag whose value is optional (-Tparent), which lsns accepts.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, raw []string) error {
			fl := cmd.Flags()
			if err := fl.Parse(rewriteTreeFlag(raw)); err != nil {
				return err
			}
			if help, _ := fl.GetBool("help"); help {
				return cmd.Help()
			}
			args := fl.Args()
			if len(args) > 1 {
				return fmt.Errorf("accepts at most one argument (a container or a namespace inode), got %q", args)
			}
			// The detached form (-T parent) is accepted too, which lsns would read as a
			// namespace argument.
			if fl.Changed("tree") && f.tree == "owner" && len(args) == 1 {
				if _, err := nsview.ParseTree(args[0]); err == nil {
					f.tree, args = args[0], nil
				}
			}
			return runNS(cmd, f, args)
		},
	}
	cmd.InitDefaultHelpFlag()
	fl := cmd.Flags()
	fl.StringSliceVarP(&f.types, "type", "t", nil, "namespace type (mnt, net, ipc, user, pid, uts, cgroup, time); repeatable")
	fl.IntVarP(&f.task, "task", "p", 0, "print the namespaces of this process")
	fl.StringVarP(&f.output, "output", "o", "", "output columns, comma-separated; a leading + adds to the defaults")
	fl.BoolVar(&f.outputAll, "output-all", false, "output all columns")
	fl.BoolVarP(&f.noHeadings, "noheadings", "n", false, "don't print headings")
	fl.BoolVarP(&f.raw, "raw", "r", false, "use the raw output format")
	fl.BoolVarP(&f.json, "json", "J", false, "use JSON output format")
	fl.BoolVarP(&f.list, "list", "l", false, "use list format output (no tree)")
	fl.StringVarP(&f.tree, "tree", "T", "", "use tree format: owner (default), parent or process")
	fl.Lookup("tree").NoOptDefVal = "owner"
	fl.BoolVarP(&f.noTrunc, "notruncate", "u", false, "don't truncate text in columns")
	fl.BoolVarP(&f.noWrap, "nowrap", "W", false, "don't use multi-line representation")
	fl.BoolVarP(&f.persistent, "persistent", "P", false, "only namespaces without processes")
	fl.StringVar(&f.container, "container", "", "only the namespaces of this container (name or id)")
	fl.StringVar(&f.root, "root", nsview.DefaultBerthRoot(), "berth-runtime state root (env BERTH_RUNTIME_ROOT)")
	fl.StringArrayVar(&f.stateDirs, "state-dir", nil, "also read another runtime's state root, as RUNTIME=DIR (runc, crun, containerd, ...)")
	rootCmd.AddCommand(cmd)
}

// rewriteTreeFlag turns -T<rel> into --tree=<rel> so that pflag reads it as lsns does.
func rewriteTreeFlag(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && strings.HasPrefix(a, "-T") {
			a = "--tree=" + strings.TrimPrefix(a[2:], "=")
		}
		out = append(out, a)
	}
	return out
}

func columnHelp() string {
	var b strings.Builder
	for _, c := range nsview.Columns {
		fmt.Fprintf(&b, "\n  %10s  %s", c.Name, c.Help)
	}
	return b.String()
}

func stateDirs(f nsFlags) ([]nsview.StateDir, error) {
	dirs := nsview.StateDirsWithBerthRoot(f.root)
	for _, s := range f.stateDirs {
		rt, dir, ok := strings.Cut(s, "=")
		if !ok || rt == "" || dir == "" {
			return nil, fmt.Errorf("--state-dir %q: want RUNTIME=DIR", s)
		}
		d := nsview.StateDir{Runtime: rt, Dir: dir, Format: nsview.FormatRunc}
		switch rt {
		case "berth":
			d.Format = nsview.FormatBerth
		case "crun":
			d.Format = nsview.FormatCrun
		case "containerd":
			d.Nested = true
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

func runNS(cmd *cobra.Command, f nsFlags, args []string) error {
	if f.json && f.raw {
		return fmt.Errorf("mutually exclusive arguments: --json --raw")
	}
	if f.persistent && f.task != 0 {
		return fmt.Errorf("mutually exclusive arguments: --persistent --task")
	}
	dirs, err := stateDirs(f)
	if err != nil {
		return err
	}
	var types nsview.TypeSet
	for _, t := range f.types {
		typ, err := nsview.ParseType(t)
		if err != nil {
			return fmt.Errorf("unknown namespace type: %s", t)
		}
		types = types.With(typ)
	}
	tree := nsview.TreeNone
	if f.tree != "" {
		if tree, err = nsview.ParseTree(f.tree); err != nil {
			return err
		}
	}
	if len(args) == 1 {
		if ino, err := strconv.ParseUint(args[0], 10, 64); err == nil && ino > 0xffffffff/2 {
			if f.task != 0 {
				return fmt.Errorf("--task is mutually exclusive with <namespace>")
			}
			return nsProcesses(cmd, f, types, tree, ino)
		}
		iso, err := nsview.Inspect(args[0], dirs)
		if err != nil {
			return err
		}
		if f.json {
			return iso.WriteJSON(cmd.OutOrStdout())
		}
		return iso.WriteText(cmd.OutOrStdout())
	}

	var cols []string
	defaults := nsview.DefaultColumns(types == nsview.TypeSet(0).With(nsview.Net))
	switch {
	case f.outputAll:
		cols = nsview.AllColumns()
		if f.output != "" {
			more, err := nsview.ParseColumns(f.output, nil)
			if err != nil {
				return err
			}
			cols = append(cols, more...)
		}
	case f.output != "":
		if cols, err = nsview.ParseColumns(f.output, defaults); err != nil {
			return err
		}
	default:
		cols = defaults
	}
	// lsns draws the process tree unless asked for a list or for every column.
	if tree == nsview.TreeNone && !f.list && !f.outputAll {
		tree = nsview.TreeProcess
	}
	snap, err := nsview.Scan(nsview.Options{Types: types, Need: nsview.NeedFor(cols, tree), StateDirs: dirs})
	if err != nil {
		return err
	}
	for _, w := range snap.Warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "berth ns: warning: %s\n", w)
	}
	o := nsview.ListOptions{
		Columns: cols, Tree: tree, JSON: f.json, Raw: f.raw, NoHeadings: f.noHeadings,
		NoTruncate: f.noTrunc, NoWrap: f.noWrap || f.raw, Task: f.task, Persistent: f.persistent,
		ASCII: !nsview.UTF8Locale(), TermWidth: termWidth(),
	}
	if f.container != "" {
		c, err := nsview.FindContainer(snap.Containers, f.container)
		if err != nil {
			return err
		}
		o.Only = make(map[uint64]bool)
		for _, ino := range c.Namespaces {
			if ino != 0 {
				o.Only[ino] = true
			}
		}
	}
	return snap.WriteList(cmd.OutOrStdout(), o)
}

// nsProcesses is lsns <namespace>: the processes in one namespace.
func nsProcesses(cmd *cobra.Command, f nsFlags, types nsview.TypeSet, tree nsview.Tree, ino uint64) error {
	cols := []string{"PID", "PPID", "USER", "COMMAND"}
	if f.output != "" {
		var err error
		if cols, err = nsview.ParseProcessColumns(f.output, cols); err != nil {
			return err
		}
	}
	if tree == nsview.TreeNone && !f.list {
		tree = nsview.TreeProcess
	}
	snap, err := nsview.Scan(nsview.Options{Types: types, NoOwners: true})
	if err != nil {
		return err
	}
	ns := snap.Lookup(ino)
	if ns == nil {
		return fmt.Errorf("not found namespace: %d", ino)
	}
	return snap.WriteProcesses(cmd.OutOrStdout(), ns, nsview.ListOptions{
		Columns: cols, Tree: tree, JSON: f.json, Raw: f.raw, NoHeadings: f.noHeadings,
		NoTruncate: f.noTrunc, ASCII: !nsview.UTF8Locale(), TermWidth: termWidth(),
	})
}

// termWidth is the terminal's width when stdout is one, 0 otherwise (no truncation), as
// libsmartcols decides.
func termWidth() int {
	ws, err := unix.IoctlGetWinsize(int(os.Stdout.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 0
	}
	return int(ws.Col)
}
