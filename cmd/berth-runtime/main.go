// Command berth-runtime is an OCI runtime whose command line is runc's, so containerd,
// Docker, Podman and Kubernetes can use it in place of runc.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	_ "github.com/berth-containers/berth/internal/namespaces/nsenter"
	"github.com/berth-containers/berth/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var version = "dev"

// globals are runc's global flags.
var globals struct {
	root          string
	log           string
	logFormat     string
	debug         bool
	systemdCgroup bool
	rootless      string
}

var logOut io.Writer

func main() {
	if runtime.IsInit() {
		runtime.InitMain() // never returns
	}
	if err := newCLI().execute(os.Args[1:]); err != nil {
		logError(err)
		os.Exit(1)
	}
}

func newCLI() *cli {
	c := &cli{
		name:    "berth-runtime",
		short:   "An OCI container runtime with runc's command line",
		version: version + "\nspec: " + specs.Version,
		global:  newFlagSet("berth-runtime"),
	}
	c.preRun = func(cmd *command) error {
		if globals.log != "" {
			f, err := os.OpenFile(globals.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
			if err != nil {
				return fmt.Errorf("--log %s: %w", globals.log, err)
			}
			logOut = f
		}
		switch globals.logFormat {
		case "text", "json":
		default:
			return fmt.Errorf("--log-format %q: must be text or json", globals.logFormat)
		}
		if globals.debug {
			start := time.Now()
			logMsg("debug", fmt.Sprintf("berth-runtime %s", strings.Join(os.Args[1:], " ")))
			c.finalize = append(c.finalize, func() { logMsg("debug", fmt.Sprintf("%s took %v", cmd.Name(), time.Since(start))) })
		}
		switch globals.rootless {
		case "auto", "true", "false":
			// berth decides by the effective uid: an unprivileged caller gets a
			// cgroup only where one is delegated, whatever this flag says.
		default:
			return fmt.Errorf("--rootless %q: must be true, false or auto", globals.rootless)
		}
		if globals.systemdCgroup {
			return fmt.Errorf("--systemd-cgroup: the systemd cgroup driver is not supported yet; berth manages cgroupfs directly")
		}
		return nil
	}
	f := c.global
	f.StringVar(&globals.root, "root", runtime.DefaultRootFor(), "root directory for storage of container state")
	f.StringVar(&globals.log, "log", "", "write log messages to this file (default: stderr only)")
	f.StringVar(&globals.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&globals.debug, "debug", false, "enable debug logging")
	f.BoolVar(&globals.systemdCgroup, "systemd-cgroup", false, "use the systemd cgroup driver (unsupported)")
	f.StringVar(&globals.rootless, "rootless", "auto", "ignore cgroup permission errors (true, false or auto)")
	f.String("criu", "", "path to criu (checkpoint/restore is not supported; accepted for compatibility)")
	f.Lookup("criu").Hidden = true

	c.commands = []*command{createCmd(), runCmd(), startCmd(), stateCmd(), killCmd(), deleteCmd(), listCmd(), specCmd(),
		pauseCmd(), resumeCmd(), psCmd(), eventsCmd(), updateCmd(), execCmd(), featuresCmd()}
	return c
}

func featuresCmd() *command {
	return &command{
		Use:   "features",
		Short: "Print what this runtime supports on this host (the runtime spec's features JSON)",
		Args:  noArgs,
		RunE: func(cmd *command, args []string) error {
			return printJSON(runtime.Features())
		},
	}
}

func newRuntime() (*runtime.Runtime, error) {
	r, err := runtime.New(globals.root)
	if err != nil {
		return nil, err
	}
	r.Warn = func(msg string) { logMsg("warning", msg) }
	return r, nil
}

func logError(err error) { logMsg("error", err.Error()) }

// logMsg writes to stderr, and to --log in the chosen format (containerd reads the JSON
// lines to show a runtime's error).
func logMsg(level, msg string) {
	fmt.Fprintf(os.Stderr, "berth-runtime: %s\n", msg)
	if logOut == nil {
		return
	}
	now := time.Now()
	if globals.logFormat == "json" {
		b, _ := json.Marshal(map[string]string{"level": level, "msg": msg, "time": now.Format(time.RFC3339Nano)})
		fmt.Fprintf(logOut, "%s\n", b)
		return
	}
	fmt.Fprintf(logOut, "time=%q level=%s msg=%q\n", now.Format(time.RFC3339Nano), level, msg)
}

// oneID is the Args check of commands that take exactly a container id.
func oneID(cmd *command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s: expects exactly one container id, got %d arguments", cmd.Name(), len(args))
	}
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func trimSig(s string) string { return strings.TrimPrefix(strings.ToUpper(s), "SIG") }

func newIndentEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "\t")
	return enc
}
