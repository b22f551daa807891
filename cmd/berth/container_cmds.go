package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-containers/berth/internal/engine"
	"github.com/berth-containers/berth/internal/image"
)

func registerContainerCommands() {
	rootCmd.AddCommand(newStopCmd(), newKillCmd(), newRmCmd("rm"), newRestartCmd(), newWaitCmd(),
		newPauseCmd(), newUnpauseCmd(), newRenameCmd(), newLogsCmd(), newPsCmd("ps"), newContainerInspectCmd())
	ctr := &cobra.Command{Use: "container", Short: "Manage containers", Args: cobra.NoArgs}
	ctr.AddCommand(newRunCmd(), newCreateCmd(), newStartCmd(), newAttachCmd(), newStopCmd(), newKillCmd(),
		newRmCmd("rm"), newRestartCmd(), newWaitCmd(), newPauseCmd(), newUnpauseCmd(), newRenameCmd(),
		newLogsCmd(), newPsCmd("ls"), newContainerInspectCmd(), newContainerPruneCmd())
	rootCmd.AddCommand(ctr)
}

func timeoutFlag(cmd *cobra.Command, secs *int) {
	cmd.Flags().IntVarP(secs, "time", "t", 0, "Seconds to wait before killing the container")
	cmd.Flags().IntVar(secs, "timeout", 0, "Seconds to wait before killing the container")
	cmd.Flags().MarkHidden("timeout")
}

func newStopCmd() *cobra.Command {
	var secs int
	var sig string
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  requireArgs(1, "Stop one or more running containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			var t *int
			if cmd.Flags().Changed("time") || cmd.Flags().Changed("timeout") {
				t = &secs
			}
			return forEach(args, true, func(ref string) error { return e.Stop(ref, t) })
		},
	}
	timeoutFlag(cmd, &secs)
	cmd.Flags().StringVarP(&sig, "signal", "s", "", "Signal to send to the container")
	cmd.Flags().MarkHidden("signal")
	return cmd
}

func newRestartCmd() *cobra.Command {
	var secs int
	cmd := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart one or more containers",
		Args:  requireArgs(1, "Restart one or more containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			var t *int
			if cmd.Flags().Changed("time") || cmd.Flags().Changed("timeout") {
				t = &secs
			}
			return forEach(args, true, func(ref string) error { return e.Restart(ref, t) })
		},
	}
	timeoutFlag(cmd, &secs)
	return cmd
}

func newKillCmd() *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  requireArgs(1, "Kill one or more running containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := engine.ParseSignal(sig)
			if err != nil {
				return err
			}
			e, err := openEngine()
			if err != nil {
				return err
			}
			return forEach(args, true, func(ref string) error { return e.Kill(ref, s) })
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "Signal to send to the container")
	return cmd
}

func newRmCmd(use string) *cobra.Command {
	var force, volumes, link bool
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more containers",
		Args:    requireArgs(1, "Remove one or more containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return forEach(args, true, func(ref string) error {
				err := e.Remove(ref, force, volumes)
				var nf *engine.NotFoundError
				if force && errors.As(err, &nf) {
					return nil
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	cmd.Flags().BoolVarP(&link, "link", "l", false, "Remove the specified link")
	return cmd
}

func newWaitCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  requireArgs(1, "Block until one or more containers stop, then print their exit codes"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return forEach(args, false, func(ref string) error {
				code, err := e.Wait(ref)
				if err != nil {
					return err
				}
				fmt.Println(code)
				return nil
			})
		},
	}
}

func newPauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pause CONTAINER [CONTAINER...]",
		Short: "Pause all processes within one or more containers",
		Args:  requireArgs(1, "Pause all processes within one or more containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return forEach(args, true, e.Pause)
		},
	}
}

func newUnpauseCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unpause CONTAINER [CONTAINER...]",
		Short: "Unpause all processes within one or more containers",
		Args:  requireArgs(1, "Unpause all processes within one or more containers"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return forEach(args, true, e.Unpause)
		},
	}
}

func newRenameCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2, "Rename a container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			return e.Rename(args[0], args[1])
		},
	}
}

// parseSince reads --since/--until: RFC 3339 times, Unix timestamps or durations back from
// now ("10m").
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid value for \"since\": failed to parse value as time or duration: %q", s)
}

func newLogsCmd() *cobra.Command {
	var follow, timestamps, details bool
	var tail, since, until string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1, "Fetch the logs of a container"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			o := engine.LogOptions{Follow: follow, Tail: -1}
			if tail != "all" && tail != "" {
				n, err := strconv.Atoi(tail)
				if err != nil || n < 0 {
					n = -1
				}
				o.Tail = n
			}
			if o.Since, err = parseSince(since); err != nil {
				return err
			}
			if o.Until, err = parseSince(until); err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			return e.Logs(ctx, args[0], o, func(ent engine.LogEntry) error {
				out := os.Stdout
				if ent.Stream == "stderr" {
					out = os.Stderr
				}
				line := ent.Log
				if timestamps {
					line = ent.Time.UTC().Format(time.RFC3339Nano) + " " + line
				}
				_, err := out.WriteString(line)
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "Follow log output")
	fl.BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	fl.BoolVar(&details, "details", false, "Show extra details provided to logs")
	fl.StringVarP(&tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	fl.StringVar(&since, "since", "", "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	fl.StringVar(&until, "until", "", "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
	return cmd
}

// executeFormat runs a --format template on v as Docker does: templates see the JSON
// form's field names; "json" prints the JSON.
func executeFormat(format string, v any) error {
	if format == "json" || format == "{{json .}}" {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	t, err := template.New("format").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return fmt.Errorf("template parsing error: %v", err)
	}
	m, err := jsonView(v)
	if err != nil {
		return err
	}
	if err := t.Execute(os.Stdout, m); err != nil {
		return fmt.Errorf("template: %v", err)
	}
	fmt.Println()
	return nil
}

// jsonView is v as templates see it on Docker: the JSON form's names, and numbers printed
// as they are (json.Number, not float64).
func jsonView(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m any
	return m, dec.Decode(&m)
}

func newContainerInspectCmd() *cobra.Command {
	var format, typ string
	var size bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on containers or images",
		Args:  requireArgs(1, "Return low-level information on Docker objects"),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := openEngine()
			if err != nil {
				return err
			}
			var docs []any
			var errs []string
			for _, ref := range args {
				if typ == "" || typ == "container" {
					info, err := e.Inspect(ref)
					if err == nil {
						docs = append(docs, e.Doc(info))
						continue
					}
					var nf *engine.NotFoundError
					if !errors.As(err, &nf) || typ == "container" {
						errs = append(errs, err.Error())
						continue
					}
				}
				if typ == "" || typ == "image" {
					s, err := openStore()
					if err == nil {
						img, err := s.Get(ref)
						if err == nil {
							if in, err := s.Inspect(img); err == nil {
								docs = append(docs, in)
								continue
							}
						} else if errors.Is(err, image.ErrFullBinary) {
							return err // berth-full looks it up (nothing is printed yet)
						}
					}
				}
				errs = append(errs, "No such object: "+ref)
			}
			if format != "" {
				for _, d := range docs {
					if err := executeFormat(format, d); err != nil {
						return err
					}
				}
			} else {
				if docs == nil {
					docs = []any{}
				}
				b, err := json.MarshalIndent(docs, "", "    ")
				if err != nil {
					return err
				}
				fmt.Println(string(b))
			}
			if len(errs) > 0 {
				return errors.New(strings.Join(errs, "\n"))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().StringVar(&typ, "type", "", "Return JSON for specified type (container or image)")
	cmd.Flags().BoolVarP(&size, "size", "s", false, "Display total file sizes if the type is container")
	return cmd
}

// psRow is one line of `ps`, with Docker's template field names.
type psRow struct {
	ID         string `json:"ID"`
	Image      string `json:"Image"`
	Command    string `json:"Command"`
	CreatedAt  string `json:"CreatedAt"`
	RunningFor string `json:"RunningFor"`
	Ports      string `json:"Ports"`
	State      string `json:"State"`
	Status     string `json:"Status"`
	Size       string `json:"Size"`
	Names      string `json:"Names"`
	Labels     string `json:"Labels"`
	Mounts     string `json:"Mounts"`
	Networks   string `json:"Networks"`
	labels     map[string]string
}

// Label is the {{.Label "key"}} of ps templates.
func (r psRow) Label(k string) string { return r.labels[k] }

func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func statusText(st engine.State) string {
	switch st.Status {
	case engine.StatusRunning:
		return "Up " + humanDuration(time.Since(st.StartedAt))
	case engine.StatusPaused:
		return "Up " + humanDuration(time.Since(st.StartedAt)) + " (Paused)"
	case engine.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, humanDuration(time.Since(st.FinishedAt)))
	case engine.StatusExited:
		if st.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, humanDuration(time.Since(st.FinishedAt)))
	case engine.StatusCreated:
		return "Created"
	case engine.StatusDead:
		return "Dead"
	}
	return st.Status
}

func portsText(st engine.State) string {
	if st.Network == nil || (st.Status != engine.StatusRunning && st.Status != engine.StatusPaused) {
		return ""
	}
	var out []string
	for _, p := range st.Network.Ports {
		hip := p.HostIP
		if hip == "" {
			hip = "0.0.0.0"
		}
		out = append(out, fmt.Sprintf("%s:%d->%d/%s", hip, p.HostPort, p.ContainerPort, p.Protocol))
	}
	return strings.Join(out, ", ")
}

func makeRow(i *engine.Info, trunc bool) psRow {
	c := i.Container
	cmd := strings.Join(append([]string{c.Path}, c.Args...), " ")
	id := c.ID
	if trunc {
		cmd = ellipsis(cmd, 20)
		id = id[:12]
	}
	var labels []string
	for k, v := range c.Config.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	var mounts []string
	for _, m := range c.Mounts {
		n := m.Name
		if n == "" {
			n = m.Source
		}
		if trunc {
			n = ellipsis(n, 15)
		}
		mounts = append(mounts, n)
	}
	var nets []string
	for _, n := range c.Networks {
		if n != "" {
			nets = append(nets, n)
		}
	}
	return psRow{ID: id, Image: c.Config.Image, Command: strconv.Quote(cmd), CreatedAt: c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: humanDuration(time.Since(c.Created)) + " ago", Ports: portsText(i.State), State: i.State.Status,
		Status: statusText(i.State) + healthText(i), Size: "0B", Names: c.Name, Labels: strings.Join(labels, ","),
		Mounts: strings.Join(mounts, ","), Networks: strings.Join(nets, ","), labels: c.Config.Labels}
}

// psFilter is one --filter of ps.
type psFilter struct{ key, value string }

func matchFilters(i *engine.Info, fs []psFilter) (bool, error) {
	byKey := map[string][]string{}
	for _, f := range fs {
		byKey[f.key] = append(byKey[f.key], f.value)
	}
	c := i.Container
	for key, vals := range byKey {
		ok := false
		for _, v := range vals {
			switch key {
			case "id":
				ok = ok || strings.HasPrefix(c.ID, v)
			case "name":
				re, err := regexp.Compile(v)
				if err != nil {
					return false, fmt.Errorf("invalid filter 'name=%s': %v", v, err)
				}
				ok = ok || re.MatchString(c.Name)
			case "status":
				switch v {
				case "created", "restarting", "running", "removing", "paused", "exited", "dead":
				default:
					return false, fmt.Errorf("invalid filter 'status=%s'", v)
				}
				ok = ok || i.State.Status == v
			case "label":
				k, want, hasV := strings.Cut(v, "=")
				got, has := c.Config.Labels[k]
				ok = ok || (has && (!hasV || got == want))
			case "ancestor":
				ok = ok || c.Config.Image == v || strings.TrimPrefix(c.Image, "sha256:") == strings.TrimPrefix(v, "sha256:") ||
					strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), v) || c.Config.Image == strings.TrimSuffix(v, ":latest")
			case "exited":
				n, err := strconv.Atoi(v)
				if err != nil {
					return false, fmt.Errorf("invalid filter 'exited=%s'", v)
				}
				ok = ok || (i.State.Status == engine.StatusExited && i.State.ExitCode == n)
			case "network":
				for _, n := range c.Networks {
					ok = ok || n == v
				}
			case "volume":
				for _, m := range c.Mounts {
					ok = ok || m.Name == v || m.Source == v || m.Destination == v
				}
			case "health":
				match, err := healthFilter(i, v)
				if err != nil {
					return false, err
				}
				ok = ok || match
			default:
				return false, fmt.Errorf("invalid filter '%s'", key)
			}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

var psHeaders = map[string]string{
	"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
	"RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
	"Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
}

func newPsCmd(use string) *cobra.Command {
	var all, quiet, noTrunc, latest, size bool
	var last int
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var fs []psFilter
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					return fmt.Errorf("bad format of filter (expected name=value)")
				}
				fs = append(fs, psFilter{k, v})
			}
			e, err := openEngine()
			if err != nil {
				return err
			}
			infos, err := e.List()
			if err != nil {
				return err
			}
			if latest {
				last = 1
			}
			var rows []psRow
			for _, i := range infos {
				if !all && last <= 0 && len(fs) == 0 && !i.Running() && i.State.Status != engine.StatusRestarting {
					continue
				}
				if len(fs) > 0 && !all && last <= 0 {
					if !i.Running() && i.State.Status != engine.StatusRestarting {
						hasStatus := false
						for _, f := range fs {
							hasStatus = hasStatus || f.key == "status" || f.key == "exited"
						}
						if !hasStatus {
							continue
						}
					}
				}
				ok, err := matchFilters(i, fs)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				rows = append(rows, makeRow(i, !noTrunc))
				if last > 0 && len(rows) == last {
					break
				}
			}
			if quiet {
				for _, r := range rows {
					fmt.Println(r.ID)
				}
				return nil
			}
			if format == "" {
				format = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
			}
			return printRows(format, rows, psHeaders)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	fl.IntVarP(&last, "last", "n", -1, "Show n last created containers (includes all states)")
	fl.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	fl.StringVar(&format, "format", "", "Format output using a custom template ('table', 'table TEMPLATE', 'json', 'TEMPLATE')")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided")
	return cmd
}

// printRows prints rows with a Docker --format: "table [TEMPLATE]" (a header made from
// the field names, columns aligned), "json" (one object per line) or a bare template.
func printRows[T any](format string, rows []T, headers map[string]string) error {
	if format == "json" {
		for _, r := range rows {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Println(string(b))
		}
		return nil
	}
	table := false
	if rest, ok := strings.CutPrefix(format, "table"); ok {
		table = true
		format = strings.TrimSpace(rest)
		if format == "" {
			format = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
		}
	}
	format = strings.ReplaceAll(format, `\t`, "\t")
	format = strings.ReplaceAll(format, `\n`, "\n")
	t, err := template.New("format").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return fmt.Errorf("template parsing error: %v", err)
	}
	var w *tabwriter.Writer
	out := os.Stdout
	if table {
		w = tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
		hdr := regexp.MustCompile(`\{\{\s*\.(\w+)\s*\}\}`).ReplaceAllStringFunc(format, func(m string) string {
			name := regexp.MustCompile(`\w+`).FindString(m)
			if h, ok := headers[name]; ok {
				return h
			}
			return strings.ToUpper(name)
		})
		fmt.Fprintln(w, hdr)
	}
	for _, r := range rows {
		var sb strings.Builder
		if err := t.Execute(&sb, r); err != nil {
			return fmt.Errorf("template: %v", err)
		}
		if w != nil {
			fmt.Fprintln(w, sb.String())
		} else {
			fmt.Fprintln(out, sb.String())
		}
	}
	if w != nil {
		return w.Flush()
	}
	return nil
}

func newContainerPruneCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !confirm(force, "WARNING! This will remove all stopped containers.") {
				return nil
			}
			e, err := openEngine()
			if err != nil {
				return err
			}
			ids, reclaimed, err := e.ContainerPrune()
			if len(ids) > 0 {
				fmt.Println("Deleted Containers:")
				for _, id := range ids {
					fmt.Println(id)
				}
				fmt.Println()
			}
			fmt.Printf("Total reclaimed space: %s\n", image.HumanSize(reclaimed))
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}
